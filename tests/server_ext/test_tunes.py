"""The /tunes routes against a real Jupyter server: a tune started, followed by its event
stream to the CLI's JSON, listed, cancelled, deleted; bad bodies refused with the CLI's words."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tests.notebooks import notebook, write

from .conftest import API, Api

PEAK = notebook(
    (["parameters"], "x = 1\nsize = 3"),
    (["step:data"], "data = list(range(size))"),
    (
        ["step:score", "after:data"],
        "import time\ntime.sleep(0.3 if x > 2 else 0)\nscore = -(x - 2) ** 2 + len(data)",
    ),
    (["metrics"], "score"),
)
TUNE = {
    "path": "peak.ipynb",
    "objective": "score",
    "direction": "maximize",
    "search": {"x": "1..3"},
    "algorithm": "grid",
    "parallel": 1,
}
CONTRACT_KEYS = {
    "tune_id",
    "objective",
    "best",
    "trials",
    "algorithm",
    "status",
    "notebook",
    "engine",
    "search",
}


async def wait_for_tune(api: Api, tune_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, tune = await api("GET", "tunes", tune_id)
        assert code == 200, tune
        if tune["status"] in ("Succeeded", "Failed", "Cancelled"):
            return dict(tune)
        assert time.monotonic() < deadline, tune
        await asyncio.sleep(0.1)


async def test_a_tune_runs_to_the_best_and_is_listed(api: Api, root: Path) -> None:
    write(root / "peak.ipynb", PEAK)
    code, started = await api("POST", "tunes", body=TUNE)
    assert code == 202, started
    assert set(started) >= CONTRACT_KEYS and started["notebook"] == "peak.ipynb"
    tune = await wait_for_tune(api, started["tune_id"])
    assert tune["status"] == "Succeeded"
    assert tune["objective"] == {"metric": "score", "direction": "maximize"}
    assert tune["best"]["parameters"] == {"x": 2} and tune["best"]["value"] == 3.0
    assert [t["parameters"]["x"] for t in tune["trials"]] == [1, 2, 3]
    assert [t["steps_ran"] for t in tune["trials"]] == [["data", "score"], ["score"], ["score"]]
    # each trial is a run the run routes show
    code, run = await api("GET", "runs", tune["best"]["run_id"])
    assert code == 200 and run["metrics"] == {"score": 3.0}
    _, listed = await api("GET", "tunes", params={"notebook": "peak.ipynb"})
    assert [t["tune_id"] for t in listed["tunes"]] == [tune["tune_id"]]
    _, none = await api("GET", "tunes", params={"notebook": "other.ipynb"})
    assert none == {"tunes": []}


async def test_the_event_stream_follows_a_tune_to_its_end(
    api: Api, root: Path, jp_fetch: Any
) -> None:
    write(root / "peak.ipynb", PEAK)
    _, started = await api("POST", "tunes", body=TUNE)
    chunks: list[bytes] = []
    response = await jp_fetch(
        API, "tunes", started["tune_id"], "events", streaming_callback=chunks.append
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = [
        (lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: ")))
        for block in b"".join(chunks).decode().split("\n\n")
        if (lines := block.splitlines()) and lines[0].startswith("event: ")
    ]
    names = [name for name, _ in events]
    assert names[-1] == "end" and set(names[:-1]) == {"tune"}
    last = [data for name, data in events if name == "tune"][-1]
    assert last["status"] == "Succeeded" and len(last["trials"]) == 3
    assert events[-1][1] == {"tune_id": started["tune_id"], "status": "Succeeded"}


async def test_cancel_stops_after_the_running_trial_and_delete_forgets(
    api: Api, root: Path
) -> None:
    write(root / "peak.ipynb", PEAK)
    _, started = await api("POST", "tunes", body={**TUNE, "search": {"x": "3,3,3,3,3"}})
    tune_id = started["tune_id"]
    while not (await api("GET", "tunes", tune_id))[1]["trials"]:
        await asyncio.sleep(0.05)
    code, cancelled = await api("POST", "tunes", tune_id, "cancel")
    assert code in (200, 202), cancelled
    seen: list[dict[str, Any]] = cancelled["trials"]  # as the cancel found them
    tune = await wait_for_tune(api, tune_id)
    assert tune["status"] == "Cancelled"
    # the trials the cancel found are kept; one at a time, at most one more (starting as the
    # cancel came) runs after them, and none of the 5 starts later
    numbers = [t["trial"] for t in tune["trials"]]
    assert numbers[: len(seen)] == [t["trial"] for t in seen]
    assert len(seen) <= len(numbers) <= len(seen) + 1 < 5
    assert all(t["status"] == "Succeeded" for t in tune["trials"])
    code, _ = await api("POST", "tunes", tune_id, "cancel")
    assert code == 409
    run_ids = [t["run_id"] for t in tune["trials"]]
    assert (await api("DELETE", "tunes", tune_id))[0] == 204
    assert (await api("GET", "tunes", tune_id))[0] == 404
    assert all([(await api("GET", "runs", r))[0] == 404 for r in run_ids])


async def test_bad_tunes_are_refused_with_the_cli_words(api: Api, root: Path) -> None:
    write(root / "peak.ipynb", PEAK)
    cases = [
        ({**TUNE, "search": {"y": "1..3"}}, 400, "no parameter 'y'"),
        ({**TUNE, "objective": "loss"}, 400, "no metric 'loss'"),
        ({**TUNE, "search": {"x": "0.5..2"}}, 400, "'x' is an int"),
        ({**TUNE, "direction": "up"}, 400, "direction must be one of"),
        ({**TUNE, "trials": "3"}, 400, "'trials' must be int"),
        ({**TUNE, "search": {}}, 400, "a tune needs 'search'"),
        ({**TUNE, "engine": "kfp"}, 400, "no tuning engine 'kfp'"),
        ({**TUNE, "path": "../outside.ipynb"}, 403, "outside the server's root"),
        ({**TUNE, "path": "missing.ipynb"}, 404, "no such notebook"),
    ]
    for body, status, said in cases:
        code, answer = await api("POST", "tunes", body=body)
        assert code == status, (body, answer)
        assert said in answer["message"], answer
    assert (await api("GET", "tunes", "tune-nothing"))[0] == 404
    assert (await api("GET", "tunes"))[1] == {"tunes": []}
