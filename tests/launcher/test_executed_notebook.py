"""Every run gives back the notebook with its outputs, the same outputs Jupyter gives.

A notebook written as people write them (display(df), a frame's last-line value, a plot with
plt.show() and one left as a cell's value, `!` lines, `%time`, `%%capture`, `%%bash`,
`%%writefile`) runs as a pipeline; its executed notebook is compared cell by cell with the same
notebook run top to bottom in a real kernel (nbclient): output types and text, images by their
presence and format.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.launcher.test_local_runs import cellpipe
from tests.notebooks import notebook, write

SHOWS = notebook(
    "# Squares\nA notebook that shows what it does, as most do.",
    (["imports"], "import pandas as pd\nimport matplotlib.pyplot as plt\n%matplotlib inline"),
    (["parameters"], "rows = 4\nlabel = None"),
    (
        ["step:load"],
        "df = pd.DataFrame({'x': range(rows), 'y': [v * v for v in range(rows)]})\n"
        "display(df.head(2))\n"
        "print(f'{len(df)} rows', label)\n"
        "df.describe()",
    ),
    (
        ["step:plot", "prev:load"],
        "fig, ax = plt.subplots()\nax.plot(df.x, df.y)\nax.set_title('squares')\nplt.show()",
    ),
    ([], "df.plot(x='x', y='y')"),
    (
        ["step:shell", "prev:load"],
        "!echo hello from the shell\n%time total = int(df.y.sum())\ntotal",
    ),
    ([], "%%capture captured\nprint('quietly', total)"),
    ([], "print(captured.stdout.strip())\ntotal * 2"),
    ([], "%%bash\necho bash says hi\necho to stderr >&2"),
    ([], "%%writefile notes.txt\nwritten by a cell magic"),
    (["skip"], "print('left out of the pipeline')"),
    (["pipeline-metrics"], "total"),
)

FAILS = notebook(
    (["imports"], "import pandas as pd"),
    (["step:load"], "df = pd.DataFrame({'a': [1, 2, 3]})\ndf"),
    (
        ["step:divide", "prev:load"],
        "print('dividing')\ndisplay(df)\nratio = len(df) / 0\nprint(ratio)",
    ),
    ([], "print('never reached')"),
    (["step:after", "prev:divide"], "print(ratio)"),
)

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")
_TIMING = re.compile(r"(CPU times|Wall time).*")


def _text(value: Any) -> str:
    text = "".join(value) if isinstance(value, list) else str(value)
    return _TIMING.sub(r"\1", _ADDRESS.sub(" at 0x", text.replace("\r\n", "\n")))


def shown(output: dict[str, Any]) -> tuple[Any, ...]:
    """An output as compared: its type, and its text; an image by its format only."""
    kind = output["output_type"]
    if kind == "stream":
        return (kind, output["name"], _text(output["text"]))
    if kind == "error":
        return (kind, output["ename"], output["evalue"])
    data = output["data"]
    images = sorted(k for k in data if k.startswith("image/"))
    texts = {k: _text(v) for k, v in data.items() if k in ("text/plain", "text/html")}
    return (kind, tuple(images), tuple(sorted(texts.items())))


def shown_all(outputs: list[Any]) -> list[tuple[Any, ...]]:
    """A cell's outputs as compared, consecutive writes to one stream as one output, as
    JupyterLab shows and saves them (nbclient keeps each message apart)."""
    merged: list[tuple[Any, ...]] = []
    for output in map(shown, outputs):
        if merged and output[0] == "stream" and merged[-1][:2] == output[:2]:
            merged[-1] = (*output[:2], merged[-1][2] + output[2])
        else:
            merged.append(output)
    return merged


def top_to_bottom(path: Path) -> Any:
    """The notebook run in a real kernel, as Jupyter's Run All does (skip cells left out)."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if "skip" in cell.metadata.get("tags", []):
            cell.source = ""
    client = NotebookClient(
        nb, timeout=120, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    return nb


def executed(home: Path, path: Path, *args: str) -> tuple[dict[str, Any], Any]:
    result = cellpipe(home, "run", str(path), *args, "--format", "json")
    run = json.loads(result.stdout)
    assert run["notebook"], result.stderr
    nb = nbformat.read(run["notebook"], as_version=4)
    nbformat.validate(nb)
    return run, nb


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "cellpipe-home"


def test_each_cell_shows_what_jupyter_shows(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "squares.ipynb", SHOWS)
    run, ours = executed(home, path)
    assert run["status"] == "Succeeded"
    notes = tmp_path / "notes.txt"
    assert notes.read_text() == "written by a cell magic\n"
    notes.unlink()  # so that the kernel's %%writefile says "Writing" too
    theirs = top_to_bottom(path)
    for index, (mine, kernel) in enumerate(zip(ours.cells, theirs.cells, strict=True)):
        tags = mine.metadata.get("tags", [])
        if mine.cell_type != "code" or "skip" in tags or "pipeline-metrics" in tags:
            continue  # the metrics cell is read by the compiler, not run by a step
        assert shown_all(mine.outputs) == shown_all(kernel.outputs), (
            f"cell {index + 1}: {mine.source!r}"
        )
    plot = ours.cells[4]
    assert [o.output_type for o in plot.outputs] == ["display_data"]
    assert "image/png" in plot.outputs[0].data


def test_counts_follow_the_pipeline_and_cells_name_their_step(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "squares.ipynb", SHOWS)
    _, nb = executed(home, path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    # the parameters and metrics cells are read by the compiler, not run; skip cells neither
    assert counts == [1, None, 2, 3, 4, 5, 6, 7, 8, 9, None, None]
    assert [c.metadata.get("cellpipe", {}).get("step") for c in code] == [
        None, None, "load", "plot", "plot", "shell", "shell", "shell", "shell", "shell", None,
        None,
    ]  # fmt: skip
    assert all(c.metadata["cellpipe"]["seconds"] >= 0 for c in code if c.execution_count)
    skipped = code[-2]
    assert skipped.outputs == [] and "cellpipe" not in skipped.metadata
    results = [o for c in code for o in c.outputs if o.output_type == "execute_result"]
    cell_of = {id(o): c for c in code for o in c.outputs}
    assert all(o.execution_count == cell_of[id(o)].execution_count for o in results)
    assert nb.metadata.cellpipe_run["status"] == "Succeeded"
    assert nb.metadata.cellpipe_run["parameters"] == {"rows": 4, "label": None}
    assert "cellpipe" not in nb.metadata  # the notebook's own settings, as they were


def test_a_failing_step_ends_with_its_error_and_leaves_later_cells_empty(
    home: Path, tmp_path: Path
) -> None:
    path = write(tmp_path / "fails.ipynb", FAILS)
    run, nb = executed(home, path)
    assert run["status"] == "Failed"
    load, divide, unreached, after = nb.cells[1:]
    assert [o.output_type for o in load.outputs] == ["execute_result"]
    assert [o.output_type for o in divide.outputs] == ["stream", "display_data", "error"]
    error = divide.outputs[-1]
    assert error.ename == "ZeroDivisionError"
    assert any('"fails.ipynb, cell 3", line 3' in line for line in error.traceback)
    assert divide.metadata.cellpipe["status"] == "failed"
    assert unreached.outputs == [] and unreached.execution_count is None
    assert unreached.metadata.cellpipe["status"] == "not run"
    assert after.outputs == [] and after.metadata.cellpipe["status"] == "not run"


def test_a_cached_step_gives_back_the_outputs_it_made(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "squares.ipynb", SHOWS)
    executed(home, path)  # notes.txt, which the shell step names, is there from now on
    _, first = executed(home, path)
    run, again = executed(home, path)
    assert all(step["cached"] for step in run["steps"].values())
    for before, now in zip(first.cells, again.cells, strict=True):
        if before.cell_type == "code":
            assert [shown(o) for o in now.outputs] == [shown(o) for o in before.outputs]
    assert again.cells[3].metadata.cellpipe["cached"] is True


def test_output_beyond_the_limit_is_cut_and_says_so(home: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path / "loud.ipynb",
        notebook((["step:loud"], "for i in range(60_000):\n    print('line', i)")),
    )
    run, nb = executed(home, path)
    assert run["status"] == "Succeeded"
    text = nb.cells[0].outputs[0].text
    assert text.startswith("line 0\nline 1\n")
    assert "more characters of stdout are not kept here; the step's log has them all" in text
    assert len(text) < 250_000
