# One entry point for newcomers and CI: `make test`, `make demo`, `make bench`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# An editable install leaves out data files (PEP 660): put the file that enables the server
	# extension where a wheel install puts it.
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	cp jupyter-config/jupyter_server_config.d/cellpipe.json $(VENV)/etc/jupyter/jupyter_server_config.d/
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check converter runtime launcher extension server_ext tests benchmarks
	$(BIN)/ruff format --check converter runtime launcher extension server_ext tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# The main job on the embedded default: compile the example notebook, then run it here as a
# pipeline (steps forked from one warm process) and print its metrics.
demo: $(STAMP)
	mkdir -p out
	$(BIN)/cellpipe compile examples/iris_cellpipe.ipynb -o out/iris_cellpipe.yaml
	$(BIN)/cellpipe run examples/iris_cellpipe.ipynb

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_compile.py
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .mypy_cache .ruff_cache
