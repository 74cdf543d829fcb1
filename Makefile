# One entry point for newcomers and CI: `make test`, `make demo`, `make bench`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench clean labextension chp dist

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

install: $(STAMP) labextension

# The JupyterLab sidebar (labextension/, package.json): node_modules from package-lock.json,
# the prebuilt extension built into labextension/prebuilt (what the wheel ships as
# share/jupyter/labextensions/cellpipe), and linked to that place in the venv, as
# `jupyter labextension develop` does (an editable install leaves data files out).
NPM ?= npm
NODE_STAMP := node_modules/.installed
LABEXT := labextension/prebuilt/package.json
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/cellpipe
LABEXT_SOURCES := package.json tsconfig.json $(shell find labextension/src labextension/style labextension/schema -type f 2>/dev/null)

$(NODE_STAMP): package-lock.json
	$(NPM) ci --no-audit --no-fund
	touch $(NODE_STAMP)

$(LABEXT): $(NODE_STAMP) $(STAMP) $(LABEXT_SOURCES)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(NPM) run build:prod

labextension: $(LABEXT)
	mkdir -p $(dir $(LABEXT_LINK))
	if [ -e $(LABEXT_LINK) ] && [ ! -L $(LABEXT_LINK) ]; then rm -r $(LABEXT_LINK); fi
	ln -sfn $(CURDIR)/labextension/prebuilt $(LABEXT_LINK)

# The spawner's hub tests (tests/spawner): JupyterHub's proxy, configurable-http-proxy from npm,
# in its own folder beside the venv (not a dependency of the sidebar's package.json).
CHP_VERSION := 5.3.0
CHP := $(VENV)/chp/node_modules/.bin/configurable-http-proxy

$(CHP):
	$(NPM) install --prefix $(VENV)/chp --no-audit --no-fund configurable-http-proxy@$(CHP_VERSION)

chp: $(CHP)

lint: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check converter runtime launcher extension server_ext spawner tests benchmarks tools
	$(BIN)/ruff format --check converter runtime launcher extension server_ext spawner tests benchmarks tools
	$(BIN)/python tools/mypy_cellpipe.py
	$(NPM) run --silent lint:check

test: lint labextension $(CHP)
	$(NPM) test --silent
	$(BIN)/python -m pytest

# The main job on the embedded default: compile the example notebook, then run it here as a
# pipeline (steps forked from one warm process) and print its metrics.
demo: $(STAMP)
	mkdir -p out
	$(BIN)/cellpipe compile examples/iris_cellpipe.ipynb -o out/iris_cellpipe.yaml
	$(BIN)/cellpipe run examples/iris_cellpipe.ipynb

# The compiler's property test, long and random: notebooks generated from the whole grammar
# must compile or get user errors, never a crash (CI runs a short, derandomized sample of it).
# FUZZ_EXAMPLES sets how many; a failure prints the notebook and how to reproduce it.
FUZZ_EXAMPLES ?= 20000
.PHONY: fuzz
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=cellpipe-fuzz CELLPIPE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/python -m pytest tests/converter/test_fuzz.py -p no:cacheprovider -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_compile.py
	$(BIN)/python benchmarks/bench_run.py
	$(BIN)/python benchmarks/bench_cells.py
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_tune.py
	$(BIN)/python benchmarks/bench_serve.py

# The sdist (Python sources, the sidebar's sources and its prebuilt extension) and the wheel built
# from it, as `python -m build` makes them: dist/cellpipe-0.1.0.tar.gz and the .whl. setup.py
# builds the sidebar first if labextension/prebuilt is missing or older than its sources.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) out build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
