"""Runs through the API with the real local engines: submit, follow, logs, cancel, delete."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.notebooks import notebook, write

from .conftest import API, Api, finished, wait_for_run

MEANS = notebook(
    (["imports"], "import statistics"),
    (["parameters"], "n = 5\nscale = 1.5"),
    (["step:make data"], "data = [i * scale for i in range(n)]\nprint('made', len(data))"),
    (["step:summarise"], "mean = statistics.mean(data)"),
    (["metrics"], "mean"),
)

SLOW = notebook(
    (["imports"], "import time"),
    (["parameters"], "seconds = 60"),
    (["step:quick"], "x = 1"),
    (["step:slow"], "print('sleeping', flush=True)\ntime.sleep(seconds)\ny = x"),
    (["step:after"], "z = y"),
    # a metric, so that every step hands something on: under kfp-local a step that hands on
    # nothing fails today (runtime/kfp_entry.py writes its report into a folder never made)
    (["metrics"], "z"),
)


@pytest.fixture
def cellpipe_config() -> dict[str, Any]:
    return {"concurrent_runs": 1}  # one run at a time: a second one waits, Pending


def step_status(run: dict[str, Any]) -> dict[str, str]:
    return {name: step["status"] for name, step in run["steps"].items()}


async def test_a_local_run_followed_to_success_with_its_metrics(
    api: Api, root: Path, cellpipe_home: Path
) -> None:
    write(root / "means.ipynb", MEANS)

    # When a run is submitted, with one parameter as JSON and one as the CLI's text
    started = time.monotonic()
    code, run = await api(
        "POST",
        "runs",
        body={"path": "means.ipynb", "parameters": {"n": 11, "scale": "2"}},
    )

    # Then the answer comes at once, with the run's id
    assert code == 202, run
    assert time.monotonic() - started < 5
    assert run["status"] in ("Pending", "Running")
    assert run["engine"] == "local"
    assert run["path"] == "means.ipynb"
    assert run["parameters"] == {"n": 11, "scale": 2.0}
    assert list(run["steps"]) == ["make data", "summarise"]

    # And polling GET /runs/ID follows it to success, with the notebook's metric
    done = await wait_for_run(api, run["run_id"], finished)
    assert done["status"] == "Succeeded", done
    assert done["metrics"] == {"mean": 10.0}
    assert step_status(done) == {"make data": "Succeeded", "summarise": "Succeeded"}
    assert Path(done["outputs"]).parent == cellpipe_home / "runs"

    # And the run is listed, for its notebook and in all
    _, mine = await api("GET", "runs", params={"notebook": "means.ipynb"})
    _, other = await api("GET", "runs", params={"notebook": "other.ipynb"})
    assert [r["run_id"] for r in mine["runs"]] == [run["run_id"]]
    assert other["runs"] == []


async def test_logs_hold_what_each_step_printed(api: Api, root: Path) -> None:
    write(root / "means.ipynb", MEANS)
    _, run = await api("POST", "runs", body={"path": "means.ipynb", "parameters": {"n": 3}})
    await wait_for_run(api, run["run_id"], finished)

    code, log = await api("GET", "runs", run["run_id"], "logs", params={"step": "make data"})
    assert code == 200, log
    assert log["text"] == "made 3\n"
    assert (log["step"], log["task"], log["status"], log["source"]) == (
        "make data",
        "make-data",
        "Succeeded",
        "step",
    )
    # the task name works too, and the run's own log without a step
    assert (await api("GET", "runs", run["run_id"], "logs", params={"step": "make-data"}))[0] == 200
    code, whole = await api("GET", "runs", run["run_id"], "logs")
    assert code == 200 and whole["source"] == "run"
    # the run's whole log: not empty for a run that succeeded, each step's part in order
    assert (whole["step"], whole["status"]) == (None, "Succeeded")
    parts = [s["step"] for s in whole["sections"] if s["step"] is not None]
    assert parts == ["make data", "summarise"]
    assert "made 3" in whole["text"]
    assert whole["text"].index("step make data") < whole["text"].index("step summarise")
    code, unknown = await api("GET", "runs", run["run_id"], "logs", params={"step": "nope"})
    assert code == 404
    assert "'make data'" in unknown["message"]


async def test_a_failing_step_has_its_traceback_in_its_log(api: Api, root: Path) -> None:
    write(root / "bad.ipynb", notebook((["step:a"], "x = 1"), (["step:b"], "y = x / 0")))
    _, run = await api("POST", "runs", body={"path": "bad.ipynb"})

    done = await wait_for_run(api, run["run_id"], finished)

    assert done["status"] == "Failed"
    assert "ZeroDivisionError" in done["steps"]["b"]["error"]
    _, log = await api("GET", "runs", run["run_id"], "logs", params={"step": "b"})
    assert 'File "bad.ipynb, cell 2", line 1' in log["text"]


async def test_the_event_stream_follows_a_run_to_its_end(
    api: Api, root: Path, jp_fetch: Any
) -> None:
    write(root / "means.ipynb", MEANS)
    _, run = await api("POST", "runs", body={"path": "means.ipynb"})

    chunks: list[bytes] = []
    response = await jp_fetch(
        API, "runs", run["run_id"], "events", streaming_callback=chunks.append
    )

    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = [
        (lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: ")))
        for block in b"".join(chunks).decode().split("\n\n")
        if (lines := block.splitlines()) and lines[0].startswith("event: ")
    ]
    names = [name for name, _ in events]
    assert names[-1] == "end" and set(names[:-1]) == {"run"}
    runs = [data for name, data in events if name == "run"]
    assert runs[-1]["status"] == "Succeeded"
    assert runs[-1]["metrics"] == {"mean": 3.0}
    assert events[-1][1] == {"run_id": run["run_id"], "status": "Succeeded"}
    # each event is a change: no two the same in a row
    assert all(a != b for a, b in itertools.pairwise(runs))


async def test_cancel_stops_a_running_step(api: Api, root: Path) -> None:
    write(root / "slow.ipynb", SLOW)
    _, run = await api("POST", "runs", body={"path": "slow.ipynb"})
    await wait_for_run(api, run["run_id"], lambda r: r["steps"]["slow"]["status"] == "Running")

    started = time.monotonic()
    code, cancelled = await api("POST", "runs", run["run_id"], "cancel")

    assert code == 200, cancelled
    assert time.monotonic() - started < 10
    assert cancelled["status"] == "Cancelled"
    assert step_status(cancelled) == {
        "quick": "Succeeded",
        "slow": "Cancelled",
        "after": "Cancelled",
    }
    # a run that has ended cannot be cancelled again
    code, again = await api("POST", "runs", run["run_id"], "cancel")
    assert (code, again["reason"]) == (409, "finished")


async def test_a_waiting_run_is_cancelled_before_it_starts(api: Api, root: Path) -> None:
    # Given one slow run holding the only slot, and a second one waiting behind it
    write(root / "slow.ipynb", SLOW)
    write(root / "means.ipynb", MEANS)
    _, first = await api("POST", "runs", body={"path": "slow.ipynb"})
    _, second = await api("POST", "runs", body={"path": "means.ipynb"})
    await wait_for_run(api, first["run_id"], lambda r: r["status"] == "Running")
    _, waiting = await api("GET", "runs", second["run_id"])
    assert waiting["status"] == "Pending"
    _, listed = await api("GET", "runs")
    assert [r["run_id"] for r in listed["runs"]] == [second["run_id"], first["run_id"]]

    # When the waiting one is cancelled, then the running one
    code, second_end = await api("POST", "runs", second["run_id"], "cancel")
    await api("POST", "runs", first["run_id"], "cancel")

    # Then the waiting one never ran
    assert code == 200
    assert second_end["status"] == "Cancelled"
    assert second_end["error"] == "cancelled before it started"
    assert set(step_status(second_end).values()) == {"Cancelled"}


async def test_delete_removes_the_record_and_its_folder(api: Api, root: Path) -> None:
    write(root / "means.ipynb", MEANS)
    _, run = await api("POST", "runs", body={"path": "means.ipynb"})
    done = await wait_for_run(api, run["run_id"], finished)
    folder = Path(done["outputs"])
    assert (folder / "bundle.json").is_file()
    cached = list((folder.parent.parent / "cache").iterdir())  # what the run published
    assert len(cached) == len(list((folder / "steps").iterdir()))

    code, body = await api("DELETE", "runs", run["run_id"])

    assert (code, body) == (204, None)
    assert not folder.exists()
    assert all(p.is_dir() for p in cached)  # the step cache, shared by runs, stays
    assert (await api("GET", "runs", run["run_id"]))[0] == 404
    assert (await api("DELETE", "runs", run["run_id"]))[0] == 404
    _, listed = await api("GET", "runs")
    assert listed["runs"] == []


async def test_a_running_run_cannot_be_deleted(api: Api, root: Path) -> None:
    write(root / "slow.ipynb", SLOW)
    _, run = await api("POST", "runs", body={"path": "slow.ipynb"})

    code, body = await api("DELETE", "runs", run["run_id"])

    assert (code, body["reason"]) == (409, "running")
    await api("POST", "runs", run["run_id"], "cancel")
    assert (await api("DELETE", "runs", run["run_id"]))[0] == 204


async def test_bad_runs_are_refused_with_the_cli_words(api: Api, root: Path) -> None:
    write(root / "means.ipynb", MEANS)

    wrong_type = await api(
        "POST", "runs", body={"path": "means.ipynb", "parameters": {"n": "many"}}
    )
    unknown = await api("POST", "runs", body={"path": "means.ipynb", "parameters": {"m": 1}})
    engine = await api("POST", "runs", body={"path": "means.ipynb", "engine": "nope"})
    no_path = await api("POST", "runs", body={"content": MEANS})
    missing_run = await api("GET", "runs", "20260101-000000-deadbeef")

    assert wrong_type == (
        400,
        {
            "message": "means.ipynb: parameter 'n' is an int (its default is 5); 'many' is not one",
            "reason": "bad_parameter",
        },
    )
    assert unknown[0] == 400
    assert "no such parameter; the parameters are n, scale" in unknown[1]["message"]
    assert engine[0] == 400 and "the engines are local, kfp-local" in engine[1]["message"]
    assert no_path[0] == 400 and no_path[1]["reason"] == "bad_path"
    assert missing_run[0] == 404
    assert (await api("GET", "runs"))[1] == {"runs": []}


async def test_a_kfp_local_run_and_what_it_cannot_cancel(api: Api, root: Path) -> None:
    write(root / "means.ipynb", MEANS)
    write(root / "slow.ipynb", SLOW)

    _, run = await api(
        "POST", "runs", body={"path": "means.ipynb", "engine": "kfp-local", "parameters": {"n": 3}}
    )
    done = await wait_for_run(api, run["run_id"], finished, timeout=90)
    assert done["status"] == "Succeeded", done
    assert (done["engine"], done["metrics"]) == ("kfp-local", {"mean": 1.5})

    # kfp.local runs a whole pipeline in one call: a started run cannot be stopped midway
    _, slow = await api(
        "POST",
        "runs",
        body={"path": "slow.ipynb", "engine": "kfp-local", "parameters": {"seconds": 1}},
    )
    await wait_for_run(api, slow["run_id"], lambda r: r["status"] == "Running", timeout=90)
    code, refused = await api("POST", "runs", slow["run_id"], "cancel")
    assert (code, refused["reason"]) == (409, "not_cancellable")
    slow_done = await wait_for_run(api, slow["run_id"], finished, timeout=90)
    assert slow_done["status"] == "Succeeded", slow_done


async def test_a_run_of_unsaved_edits_runs_what_was_sent(api: Api, root: Path) -> None:
    # Given a saved notebook and an edit not saved yet (a bigger scale)
    write(root / "means.ipynb", MEANS)
    edited = notebook(*[(c.metadata.get("tags", []), c.source) for c in MEANS["cells"]])
    edited["cells"][1]["source"] = "n = 5\nscale = 10.0"

    _, run = await api("POST", "runs", body={"path": "means.ipynb", "content": edited})
    done = await wait_for_run(api, run["run_id"], finished)

    assert done["metrics"] == {"mean": 20.0}
    assert done["path"] == "means.ipynb"


async def test_a_client_leaving_the_event_stream_leaves_nothing_behind(
    api: Api, root: Path, jp_fetch: Any, jp_serverapp: Any
) -> None:
    write(root / "slow.ipynb", SLOW)
    _, run = await api("POST", "runs", body={"path": "slow.ipynb"})
    runs = jp_serverapp.web_app.settings["cellpipe_service"].runs

    # When a client follows the run, then goes away before it ends
    with pytest.raises(HTTPClientError) as left:
        await jp_fetch(API, "runs", run["run_id"], "events", request_timeout=1.0)
    assert left.value.code == 599

    # Then the server stops watching for it, and the run goes on until cancelled
    for _ in range(100):
        if not runs._watchers:
            break
        await asyncio.sleep(0.05)
    assert runs._watchers == {}
    assert (await api("GET", "runs", run["run_id"]))[1]["status"] == "Running"
    assert (await api("POST", "runs", run["run_id"], "cancel"))[1]["status"] == "Cancelled"
