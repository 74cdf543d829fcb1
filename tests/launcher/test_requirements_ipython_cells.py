"""The image's requirements and files from cells that hold IPython lines: a step runs a cell
as written (`%matplotlib inline`, `!python train.py`), and the scan reads it as the compiler
does, so an import or a file named below a magic is not missed."""

from __future__ import annotations

from pathlib import Path

from cellpipe.converter import CompileOptions, build_pipeline, read_notebook
from cellpipe.launcher.requirements import find_requirements, imported_modules
from tests.notebooks import notebook, write

NOTEBOOK = notebook(
    (["imports"], "%matplotlib inline\nimport json\nimport helpers"),
    (["step:prepare"], "!python prepare.py --out data/rows.csv\nrows = open('data/small.csv')"),
    (["step:report"], "%%bash\ncat data/small.csv\npython report.py"),
    (["step:broken"], "%matplotlib inline\nx = (\n"),
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)


def test_imports_and_files_below_ipython_lines_are_found(tmp_path: Path) -> None:
    path = write(tmp_path / "work.ipynb", NOTEBOOK)
    (tmp_path / "helpers.py").write_text("VALUE = 1\n")
    (tmp_path / "prepare.py").write_text("print('prepare')\n")
    (tmp_path / "report.py").write_text("print('report')\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "small.csv").write_text("a,b\n1,2\n")
    raw = read_notebook(path)
    pipeline = build_pipeline(raw, str(path), CompileOptions(local_only=True))
    # the cell that is not Python even so is skipped, not a crash
    assert [e.message for e in pipeline.errors] == [
        "syntax error on line 2: '(' was never closed; fix the cell or tag it 'skip'"
    ]
    assert imported_modules(pipeline) == {
        "json": "import json (cell 1)",
        "helpers": "import helpers (cell 1)",
    }
    found = find_requirements(pipeline, raw, path)
    assert [m.path for m in found.local_modules] == ["helpers.py"]
    assert sorted(f.path for f in found.files) == ["data/small.csv", "prepare.py", "report.py"]
