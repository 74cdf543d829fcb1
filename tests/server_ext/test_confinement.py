"""The API sees the runs of notebooks under its root only, and records what it ran."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher.store import open_store
from tests.notebooks import notebook, write

from .conftest import Api, finished, wait_for_run

TWO_STEPS = notebook((["step:a"], "x = 1"), (["step:b"], "y = x + 1"), (["metrics"], "y"))


def record_a_run_of(notebook_path: Path, home: Path) -> str:
    """A finished run of `notebook_path` in the store, as the CLI records one."""
    store = open_store(home)
    record = store.create(str(notebook_path), "elsewhere", "local", {}, [("a", "a")], home / "runs")
    record.status = "Succeeded"
    store.update_run(record)
    (home / "runs" / record.run_id).mkdir(parents=True)
    return record.run_id


async def test_runs_of_notebooks_outside_the_root_are_invisible(
    api: Api, root: Path, tmp_path: Path, cellpipe_home: Path
) -> None:
    # Given a run the CLI made of a notebook outside the server's root, and one inside it
    outside = tmp_path / "elsewhere" / "secret.ipynb"
    outside.parent.mkdir()
    write(outside, TWO_STEPS)
    hidden = record_a_run_of(outside, cellpipe_home)
    write(root / "mine.ipynb", TWO_STEPS)
    mine = record_a_run_of(root / "mine.ipynb", cellpipe_home)

    # Then the list holds only the run under the root
    code, listed = await api("GET", "runs")
    assert code == 200
    assert [r["run_id"] for r in listed["runs"]] == [mine]

    # And the outside run is not found, whatever is asked of it
    for verb, *path in (
        ("GET", "runs", hidden),
        ("GET", "runs", hidden, "logs"),
        ("GET", "runs", hidden, "events"),
        ("POST", "runs", hidden, "cancel"),
        ("DELETE", "runs", hidden),
    ):
        code, body = await api(verb, *path, params={"force": "true"} if verb == "DELETE" else None)
        assert code == 404, (verb, path, body)
        assert "secret" not in json.dumps(body)

    # And it is still there (the API forgot nothing it cannot see)
    assert open_store(cellpipe_home).get(hidden) is not None
    assert (cellpipe_home / "runs" / hidden).is_dir()
    # while the run under the root is the API's to show and delete
    assert (await api("GET", "runs", mine))[0] == 200
    assert (await api("DELETE", "runs", mine))[0] == 204


@pytest.fixture
def cellpipe_config() -> dict[str, Any]:
    return {"concurrent_runs": 1}


@pytest.mark.parametrize("engine", ["local", "kfp-local"])
async def test_a_run_of_unsaved_content_records_the_hash_of_what_ran(
    api: Api, root: Path, engine: str
) -> None:
    # Given a saved notebook and an unsaved edit of it
    write(root / "two.ipynb", TWO_STEPS)
    edited = notebook((["step:a"], "x = 10"), (["step:b"], "y = x + 1"), (["metrics"], "y"))
    saved_hash = hashlib.sha256((root / "two.ipynb").read_bytes()).hexdigest()
    sent_hash = hashlib.sha256(json.dumps(edited, sort_keys=True).encode()).hexdigest()

    # When the edit is run
    code, run = await api(
        "POST", "runs", body={"path": "two.ipynb", "content": edited, "engine": engine}
    )
    assert code == 202, run
    done = await wait_for_run(api, run["run_id"], finished, timeout=120)

    # Then what ran was the edit, and the record's hash is the edit's, not the saved file's
    assert done["status"] == "Succeeded", done
    assert done["metrics"] == {"y": 11.0}
    assert done["notebook_hash"] == sent_hash != saved_hash
