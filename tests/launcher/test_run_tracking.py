"""The run store's versioned schema and concurrent writers, and following local runs from
another process: status, logs, cancel, delete."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

from cellpipe.launcher.errors import StoreError
from cellpipe.launcher.store import SCHEMA_VERSION, RunStore
from cellpipe.launcher.tracking import LocalTracker, find_run
from tests.notebooks import notebook, write

V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, notebook TEXT NOT NULL, pipeline TEXT NOT NULL,
    engine TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, finished REAL,
    parameters TEXT NOT NULL, metrics TEXT NOT NULL DEFAULT '{}', error TEXT,
    outputs TEXT NOT NULL);
CREATE TABLE steps (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name TEXT NOT NULL, task TEXT NOT NULL, status TEXT NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0, seconds REAL, error TEXT, details TEXT, outputs TEXT,
    PRIMARY KEY (run_id, task));
INSERT INTO runs VALUES ('old-run', '/nb.ipynb', 'p', 'local', 'Succeeded', 1.0, 2.0, '{}',
    '{"acc": 0.9}', NULL, '/runs/old-run');
INSERT INTO steps VALUES ('old-run', 'a', 'a', 'Succeeded', 0, 1.0, NULL, NULL, NULL);
PRAGMA user_version = 1;
"""


def test_a_store_of_the_first_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    store = RunStore(path)
    old = store.get("old-run")
    assert old is not None and old.metrics == {"acc": 0.9} and old.external == {}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    new = store.create(
        "/nb.ipynb",
        "p",
        "kfp",
        {"x": 1},
        [("a", "a")],
        tmp_path,
        notebook_hash="abc",
        image="r/p:1",
        compiled="yaml",
        gpus={"a": {"count": 1}},
        external={"run_id": "k1"},
        links={"kfp_ui": "http://ui"},
    )
    again = RunStore(path).get(new.run_id)  # a restart: a new store on the same file
    assert again is not None
    assert (again.image, again.compiled, again.gpus, again.external, again.links) == (
        "r/p:1",
        "yaml",
        {"a": {"count": 1}},
        {"run_id": "k1"},
        {"kfp_ui": "http://ui"},
    )
    assert again.owner and again.owner.split(":")[1] == str(os.getpid())


def _write_runs(path: str, writer: int) -> None:
    store = RunStore(Path(path))
    for n in range(15):
        record = store.create(
            f"/nb{writer}.ipynb", "p", "local", {}, [("a", "a")], Path("/x"), f"w{writer}-{n}"
        )
        record.status = "Succeeded"
        store.update_run(record)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"  # created by the writers themselves, all at once
    context = get_context("fork")
    writers = [context.Process(target=_write_runs, args=(str(path), w)) for w in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    runs = RunStore(path).list()
    assert len(runs) == 60 and {r.status for r in runs} == {"Succeeded"}
    assert find_run(RunStore(path), "w3-14").run_id == "w3-14"


def test_a_local_run_whose_process_died_is_failed_not_running(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    record = store.create("/nb.ipynb", "p", "local", {}, [("a", "a")], tmp_path)
    record.status = "Running"
    store.update_run(record)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with sqlite3.connect(store.path) as db:
        host, _, start = (record.owner or "").split(":")
        db.execute(
            "UPDATE runs SET owner = ? WHERE run_id = ?",
            (f"{host}:{dead.stdout.strip()}:{start}", record.run_id),
        )
    refreshed = LocalTracker(store).refresh(store.get(record.run_id))  # type: ignore[arg-type]
    assert refreshed.status == "Failed"
    assert "stopped before the run ended" in (refreshed.error or "")
    assert refreshed.steps["a"].status == "Cancelled"


def cellpipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_status_logs_cancel_and_delete_of_a_local_run_from_another_process(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "CELLPIPE_HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter"),
    }
    nb = write(
        tmp_path / "slow.ipynb",
        notebook(
            (["step:first"], "print('first done', flush=True)\nx = 1"),
            (["step:wait"], "import time\nprint('waiting', flush=True)\ntime.sleep(60)\ny = x"),
        ),
    )
    running = subprocess.Popen(
        [sys.executable, "-m", "cellpipe.cli", "run", str(nb), "--format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            listed = json.loads(cellpipe("runs", "--format", "json", env=env).stdout)["runs"]
            if listed and listed[0]["steps"]["wait"]["status"] == "Running":
                break
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.3)
        run_id = listed[0]["run_id"]
        status = cellpipe("status", run_id, env=env)
        assert f"run {run_id}: Running (local)" in status.stdout
        assert "step first [first]: Succeeded" in status.stdout
        logs = cellpipe("logs", run_id, "--step", "first", env=env)
        assert logs.stdout == "first done\n"
        refused = cellpipe("delete", run_id, env=env)
        assert refused.returncode == 2 and "cancel it first" in refused.stderr
        cancelled = cellpipe("cancel", run_id, env=env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.strip() == f"run {run_id}: Cancelled"
        running.wait(30)
        assert running.returncode == 1
    finally:
        running.kill()
        running.wait()
    final = json.loads(cellpipe("status", run_id, "--format", "json", env=env).stdout)
    assert final["status"] == "Cancelled"
    assert final["steps"]["first"]["status"] == "Succeeded"
    assert final["steps"]["wait"]["status"] == "Cancelled"
    deleted = cellpipe("delete", run_id, env=env)
    assert deleted.returncode == 0 and not (tmp_path / "home" / "runs" / run_id).exists()


# --- a damaged store (issue 16: runs under faults) ---------------------------------------------


def _cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CELLPIPE_HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter"),
    }


def _damaged_stores(tmp_path: Path) -> dict[str, Path]:
    """A file that is not SQLite, one cut short, and one written by a newer cellpipe."""
    stores = {}
    garbage = tmp_path / "garbage" / "runs.sqlite"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a database\n" * 200)
    stores["garbage"] = garbage
    truncated = tmp_path / "truncated" / "runs.sqlite"
    full = RunStore(truncated)
    for n in range(200):
        full.create("/nb.ipynb", "p" * 200, "local", {"n": n}, [("a", "a")], tmp_path, f"r{n}")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    stores["truncated"] = truncated
    newer = tmp_path / "newer" / "runs.sqlite"
    RunStore(newer)
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    stores["newer"] = newer
    return stores


def test_a_damaged_store_is_a_clear_error_naming_the_file_and_kept_as_it_is(
    tmp_path: Path,
) -> None:
    for kind, path in _damaged_stores(tmp_path).items():
        before = path.read_bytes()
        try:
            store = RunStore(path)
            store.list()
        except StoreError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"a {kind} store was used without an error")
        assert str(path) in message, message
        if kind == "newer":
            assert "newer cellpipe" in message and "upgrade" in message
        else:
            assert "damaged" in message and "move it aside" in message
        assert path.read_bytes() == before, f"the {kind} store was changed"
        assert sorted(p.name for p in path.parent.iterdir()) == ["runs.sqlite"]


def test_the_cli_says_what_is_wrong_with_a_damaged_store_without_a_traceback(
    tmp_path: Path,
) -> None:
    env = _cli_env(tmp_path)
    store = tmp_path / "home" / "runs.sqlite"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"\0garbage" * 100)
    for command in (["runs"], ["status", "abc"]):
        result = cellpipe(*command, env=env)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        assert str(store) in result.stderr and "move it aside" in result.stderr


def test_a_malformed_row_is_shown_with_what_is_wrong_not_a_traceback(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    good = store.create("/nb.ipynb", "p", "local", {"n": 1}, [("a", "a")], tmp_path, "good")
    store.create("/nb.ipynb", "p", "local", {"n": 2}, [("a", "a")], tmp_path, "bad")
    with sqlite3.connect(store.path) as db:
        db.execute(
            "UPDATE runs SET parameters = '{not json', metrics = '[1', created = 'soon', "
            "gpus = 'null' WHERE run_id = 'bad'"
        )
    bad = store.get("bad")
    assert bad is not None
    assert bad.parameters == {} and bad.metrics == {} and bad.gpus == {}
    assert "damaged" in (bad.error or "") and "parameters" in (bad.error or "")
    assert {r.run_id for r in store.list()} == {"good", "bad"}
    assert store.get("good") == good


def test_a_garbage_report_file_is_no_traceback(tmp_path: Path) -> None:
    from cellpipe.launcher.tracking import local_log_tail

    store = RunStore(tmp_path / "runs.sqlite")
    record = store.create("/nb.ipynb", "p", "kfp-local", {}, [("a", "a")], tmp_path / "runs")
    outputs = Path(record.outputs) / "steps" / "a"
    outputs.mkdir(parents=True)
    (outputs / "cellpipe-report.json").write_bytes(b"\x00{garbage")
    tail = local_log_tail(record, record.steps["a"])
    assert tail.source != "report"
    assert "".join(LocalTracker(store).logs(record, "a", follow=False)) == ""
