"""A bare IPython shell with `%load_ext cellpipe`, and a notebook of `%%step` cells."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from tests.notebooks import notebook, write

# Steps written as `%%step` first lines: the tags the converter reads, in the code itself.
STEPS = notebook(
    (["imports"], "import statistics"),
    (["parameters"], "n = 12\nscale = 1.5"),
    ([], '%%step "make data"\ndata = [i * scale for i in range(n)]'),
    ([], '%%step "sum up" --after "make data" --cpu 500m\ntotal = sum(data)'),
    ([], '%%step spread --after "make data"\nspread = statistics.pstdev(data)'),
    ([], '%%step report --after "sum up" spread\nratio = total / (spread + 1)'),
    (["metrics"], "total\nratio"),
)


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A fresh shell, its runs kept under tmp_path, no Jupyter server around."""
    monkeypatch.setenv("CELLPIPE_HOME", str(tmp_path / "cellpipe-home"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "nocolor"
    ip = InteractiveShell(config=config)
    ip.run_line_magic("load_ext", "cellpipe")
    yield ip
    ip.run_line_magic("unload_ext", "cellpipe")
    InteractiveShell.clear_instance()


@pytest.fixture
def steps_notebook(tmp_path: Path) -> Path:
    path: Path = write(tmp_path / "steps.ipynb", STEPS)
    return path
