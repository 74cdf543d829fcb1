"""GET /runs/ID/notebook: a run's executed notebook, with every cell's outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat

from cellpipe.launcher.store import EXECUTED_FILE, open_store
from tests.notebooks import notebook, write

from .conftest import Api, finished, wait_for_run
from .test_confinement import record_a_run_of

SHOWS = notebook(
    (["imports"], "from IPython.display import HTML, display"),
    (
        ["step:show it"],
        "print('hello')\ndisplay(HTML('<b>bold</b>\\n<i>two lines</i>'))\nx = 41\nx + 1",
    ),
    (["step:break it"], "y = x * 2\nraise ValueError('boom')"),
)


async def test_a_finished_run_gives_back_its_notebook_with_the_outputs(
    api: Api, root: Path
) -> None:
    # Given a run whose first step prints, displays and shows a value, and whose second fails
    write(root / "shows.ipynb", SHOWS)
    code, run = await api("POST", "runs", body={"path": "shows.ipynb"})
    assert code == 202, run
    done = await wait_for_run(api, run["run_id"], finished)
    assert done["status"] == "Failed", done

    # When its executed notebook is asked for
    code, executed = await api("GET", "runs", run["run_id"], "notebook")

    # Then it is the notebook that ran, valid nbformat, with each cell's outputs and step
    assert code == 200, executed
    nbformat.validate(nbformat.from_dict(executed))
    assert executed["metadata"]["cellpipe_run"]["run"] == run["run_id"]
    imports, show, broken = executed["cells"]
    assert imports["metadata"]["cellpipe"]["step"] is None
    assert show["metadata"]["cellpipe"]["step"] == "show it"
    assert show["metadata"]["cellpipe"]["status"] == "ran"
    kinds = [o["output_type"] for o in show["outputs"]]
    assert kinds == ["stream", "display_data", "execute_result"]
    # multi-line text joined again, as Jupyter's contents API reads a notebook
    assert show["outputs"][0]["text"] == "hello\n"
    assert show["outputs"][1]["data"]["text/html"] == "<b>bold</b>\n<i>two lines</i>"
    assert show["outputs"][2]["data"]["text/plain"] == "42"
    assert broken["metadata"]["cellpipe"]["step"] == "break it"
    assert broken["metadata"]["cellpipe"]["status"] == "failed"
    assert broken["outputs"][-1]["output_type"] == "error"
    assert broken["outputs"][-1]["evalue"] == "boom"
    # And the run says where it is, in its folder (a path the run already names)
    assert done["executed_notebook"] == str(Path(done["outputs"]) / EXECUTED_FILE)


async def test_no_notebook_yet_and_unknown_runs_are_404_saying_why(
    api: Api, root: Path, cellpipe_home: Path
) -> None:
    # Given a finished run recorded without an executed notebook (a run before cellpipe wrote
    # them)
    write(root / "old.ipynb", SHOWS)
    old = record_a_run_of(root / "old.ipynb", cellpipe_home)

    # Then asking for its notebook is a 404 that says why, in JSON
    code, body = await api("GET", "runs", old, "notebook")
    assert code == 404
    assert body["reason"] == "no_notebook"
    assert f"run {old} (Succeeded) has no executed notebook" in body["message"]

    # And a notebook that cannot be read is no 500 either
    (cellpipe_home / "runs" / old / EXECUTED_FILE).write_text("{not json", encoding="utf-8")
    code, body = await api("GET", "runs", old, "notebook")
    assert code == 404
    assert body["reason"] == "no_notebook"
    assert "cannot be read" in body["message"]

    # And an unknown run is the API's usual 404
    code, body = await api("GET", "runs", "20260101-000000-deadbeef", "notebook")
    assert code == 404
    assert body == {"message": "no run 20260101-000000-deadbeef", "reason": "not_found"}


async def test_a_run_still_going_has_no_notebook_yet(
    api: Api, root: Path, cellpipe_home: Path
) -> None:
    # Given a run recorded as running (by the CLI, say)
    write(root / "busy.ipynb", SHOWS)
    run_id = record_a_run_of(root / "busy.ipynb", cellpipe_home)
    store = open_store(cellpipe_home)
    record = store.get(run_id)
    assert record is not None
    record.status = "Running"
    store.update_run(record)

    # Then its notebook is not there yet, and the answer says when it will be
    code, body = await api("GET", "runs", run_id, "notebook")
    assert code == 404
    assert body["reason"] == "no_notebook"
    assert "written when it ends" in body["message"]


async def test_the_notebook_of_a_run_outside_the_root_is_not_found(
    api: Api, root: Path, tmp_path: Path, cellpipe_home: Path
) -> None:
    # Given a run the CLI made of a notebook outside the root, with an executed notebook
    outside = tmp_path / "elsewhere" / "secret.ipynb"
    outside.parent.mkdir()
    write(outside, SHOWS)
    hidden = record_a_run_of(outside, cellpipe_home)
    executed: Any = nbformat.from_dict(SHOWS)
    nbformat.write(executed, str(cellpipe_home / "runs" / hidden / EXECUTED_FILE))

    # Then the API does not give it out
    code, body = await api("GET", "runs", hidden, "notebook")
    assert code == 404
    assert "secret" not in json.dumps(body)
