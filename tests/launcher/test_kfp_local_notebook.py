"""A `kfp-local` run gives back the executed notebook, assembled from exactly the steps'
`cellpipe_report` HTML artifacts (the pages the KFP UI shows), as a cluster run's is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cellpipe.runtime.report_html import REPORT_OUTPUT, read_cells
from tests.launcher.test_local_runs import cellpipe
from tests.notebooks import notebook, write

SHOWS = notebook(
    "# A table and a plot",
    (["imports"], "import pandas as pd\nimport matplotlib.pyplot as plt\n%matplotlib inline"),
    (
        ["step:table", "report:enabled"],
        "df = pd.DataFrame({'x': [1, 2, 3], 'y': ['<b>', '&', '</script>']})\n"
        "display(df)\n"
        "print('rows', len(df))",
    ),
    (
        ["step:plot", "report:enabled"],
        "fig, ax = plt.subplots()\nax.plot(df.x, df.x * 2)\nplt.show()",
    ),
    (["step:quiet", "report:disabled"], "print('not kept')\ntotal = int(df.x.sum())"),
    (["step:divide", "report:enabled"], "print('dividing', total)\nratio = total / 0"),
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "cellpipe-home"


def run(home: Path, path: Path) -> dict[str, Any]:
    result = cellpipe(home, "run", str(path), "--engine", "kfp-local", "--format", "json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def pages(run_dir: Path) -> dict[str, Path]:
    """Each task's report page, where kfp.local keeps the task's outputs."""
    return {p.parent.name: p for p in (run_dir / "kfp").glob(f"*/*/{REPORT_OUTPUT}")}


def test_the_executed_notebook_is_made_of_the_steps_html_reports(
    home: Path, tmp_path: Path
) -> None:
    # Given a notebook that shows a table, draws a figure and prints, with a failing step
    path = write(tmp_path / "shows.ipynb", SHOWS)
    # When it runs under kfp.local
    result = run(home, path)
    # Then the run gives back its notebook, valid nbformat
    assert result["status"] == "Failed"
    nb = nbformat.read(result["notebook"], as_version=4)
    nbformat.validate(nb)
    _, imports, table, plot, quiet, divide = nb.cells
    assert [o.output_type for o in table.outputs] == ["display_data", "stream"]
    assert "<table" in table.outputs[0].data["text/html"]
    assert "&lt;/script&gt;" in table.outputs[0].data["text/html"]
    assert table.outputs[1].text == "rows 3\n"
    assert [o.output_type for o in plot.outputs] == ["display_data"]
    assert plot.outputs[0].data["image/png"]
    # report:disabled: the step ran, and its component keeps no page
    found = pages(Path(result["outputs"]))
    assert set(found) == {"table", "plot", "divide"}
    assert quiet.outputs == [] and quiet.metadata.cellpipe["status"] == "ran, outputs not kept"
    # a failed step's page is written before it fails (kfp writes no executor output for it)
    assert not (found["divide"].parent / "executor_output.json").exists()
    assert [o.output_type for o in divide.outputs] == ["stream", "error"]
    assert divide.outputs[1].ename == "ZeroDivisionError"
    assert divide.metadata.cellpipe["status"] == "failed"
    # every output is the one the step's page holds, and nothing else
    for task, cell in (("table", table), ("plot", plot), ("divide", divide)):
        report = read_cells(found[task].read_text(encoding="utf-8"))
        assert [r["index"] for r in report["cells"]] == [nb.cells.index(cell)]
        assert [dict(o) for o in cell.outputs] == report["cells"][0]["outputs"]
    page = found["plot"].read_text(encoding="utf-8")
    assert '<img src="data:image/png;base64,' in page
    assert imports.execution_count == 1 and imports.metadata.cellpipe["step"] is None


def test_imports_that_fail_are_shown_in_the_first_steps_page(home: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path / "broken.ipynb",
        notebook(
            (["imports"], "import json\nprint('importing')\nimport no_such_module_here"),
            (["step:first", "report:enabled"], "x = 1"),
            (["step:second", "report:enabled"], "y = x + 1"),
        ),
    )
    result = run(home, path)
    assert result["status"] == "Failed"
    page = pages(Path(result["outputs"]))["first"].read_text(encoding="utf-8")
    report = read_cells(page)
    assert report["status"] == "Failed" and report["cells"] == []
    assert "the imports/functions cells failed" in report["error"]
    nb = nbformat.read(result["notebook"], as_version=4)
    nbformat.validate(nb)
    imports, first, second = nb.cells
    assert [o.output_type for o in imports.outputs] == ["stream", "error"]
    assert imports.outputs[1].ename == "ModuleNotFoundError"
    assert first.outputs == [] and second.outputs == []
    assert "ModuleNotFoundError" in page
