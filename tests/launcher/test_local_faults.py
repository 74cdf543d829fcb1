"""The local engine under faults (issue 16): two runs of one notebook at once, a killed
`cellpipe run`, a damaged step cache, and a cellpipe home other users could write."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher.results import load
from cellpipe.launcher.store import ResultError
from tests.notebooks import notebook, write


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CELLPIPE_HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home.parent / "jupyter"),
        **extra,
    }


def cellpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def start_run(env: dict[str, str], path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cellpipe.cli", "run", str(path), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def wait_until(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def runs_json(env: dict[str, str]) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(cellpipe(env, "runs", "--format", "json").stdout)[
        "runs"
    ]
    return listed


def step_running(env: dict[str, str], step: str, count: int) -> list[dict[str, Any]] | None:
    """The runs (oldest first) once `count` of them run `step`."""
    runs = runs_json(env)
    if sum(r["steps"][step]["status"] == "Running" for r in runs) >= count:
        return list(reversed(runs))
    return None


# A step that says which run it belongs to and waits for the test to let it go
GATED = notebook(
    (["imports"], "import os, pathlib, time"),
    (
        ["step:slow"],
        "who = os.environ['CELLPIPE_TEST_WHO']\n"
        "print('run', who, flush=True)\n"
        "gate = pathlib.Path(os.environ['CELLPIPE_TEST_GATE'])\n"
        "deadline = time.time() + 90\n"
        "while not gate.exists() and time.time() < deadline:\n"
        "    time.sleep(0.05)",
    ),
    (["step:use"], "seen = who"),
)


def test_two_runs_of_one_notebook_at_once_keep_to_their_own_folders(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write(tmp_path / "gated.ipynb", GATED)
    gate = tmp_path / "go"
    env_a = cli_env(home, CELLPIPE_TEST_WHO="A", CELLPIPE_TEST_GATE=str(gate))
    env_b = cli_env(home, CELLPIPE_TEST_WHO="B", CELLPIPE_TEST_GATE=str(gate))
    first = start_run(env_a, path)
    try:
        wait_until("run A runs its slow step", lambda: step_running(env_a, "slow", 1))
        second = start_run(env_b, path)
        try:
            runs = wait_until("both runs run it", lambda: step_running(env_a, "slow", 2))
            run_a, run_b = (r["run_id"] for r in runs)
            # While both run, each one's log is its own
            for run_id, who in ((run_a, "A"), (run_b, "B")):
                logs = cellpipe(env_a, "logs", run_id, "--step", "slow")
                assert logs.stdout == f"run {who}\n", (run_id, logs)
            gate.touch()
            out_b, err_b = second.communicate(timeout=120)
        finally:
            second.kill()
        out_a, err_a = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0 and second.returncode == 0, (err_a, err_b)
    done_a, done_b = json.loads(out_a), json.loads(out_b)
    for done, who in ((done_a, "A"), (done_b, "B")):
        assert done["status"] == "Succeeded"
        assert not any(step["cached"] for step in done["steps"].values())
        assert load(done["run_id"], "who", home=home) == who
        logs = cellpipe(env_a, "logs", done["run_id"], "--step", "slow")
        assert logs.stdout == f"run {who}\n"
    # The cache holds one complete entry per step, published whole; nothing half-made
    entries = sorted(p.name for p in (home / "cache").iterdir())
    assert [e.split("-")[0] for e in entries] == ["slow", "use"], entries
    for entry in entries:
        result = json.loads((home / "cache" / entry / "cellpipe-result.json").read_text())
        assert result["status"] == "Succeeded"
    # A third run reuses them
    third = json.loads(cellpipe(env_a, "run", str(path), "--format", "json").stdout)
    assert all(step["cached"] for step in third["steps"].values())
    assert third["status"] == "Succeeded"


CHAIN = notebook(
    (["parameters"], "n = 1"),
    (["step:make"], "x = [1, 2, 3]"),
    (["step:add"], "y = sum(x) + n"),
    (["metrics"], "y"),
)


def _entry(home: Path, task: str) -> Path:
    (entry,) = [p for p in (home / "cache").iterdir() if p.name.startswith(f"{task}-")]
    return entry


def test_a_damaged_cache_entry_is_dropped_not_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home)
    path = write(tmp_path / "chain.ipynb", CHAIN)
    assert cellpipe(env, "run", str(path)).returncode == 0
    # A value in the cache that cannot be read: the step that reads it fails, saying so
    (_entry(home, "make") / "x" / "value").write_bytes(b"\x80garbage")
    broken = cellpipe(env, "run", str(path), "-p", "n=2", "--format", "json")
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr
    assert "could not read 'x'" in broken.stderr and "dropped from the step cache" in broken.stderr
    # and the entry is gone, so the next run makes it again
    again = json.loads(cellpipe(env, "run", str(path), "-p", "n=2", "--format", "json").stdout)
    assert again["status"] == "Succeeded" and again["metrics"] == {"y": 8.0}
    assert not again["steps"]["make"]["cached"]
    # A result file that is garbage: the step runs again, no traceback
    (_entry(home, "make") / "cellpipe-result.json").write_text("{not json")
    rerun = cellpipe(env, "run", str(path), "-p", "n=2", "--format", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert not json.loads(rerun.stdout)["steps"]["make"]["cached"]


def _private(path: Path) -> bool:
    mode = path.stat().st_mode
    return stat.S_IMODE(mode) & 0o077 == 0


def test_the_home_is_private_and_a_cache_others_can_write_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home)
    path = write(tmp_path / "chain.ipynb", CHAIN)
    done = json.loads(cellpipe(env, "run", str(path), "--format", "json").stdout)
    for folder in (home, home / "runs", home / "cache", home / "runs" / done["run_id"]):
        assert _private(folder), f"{folder} is {oct(folder.stat().st_mode)}"
    assert load(done["run_id"], "x", home=home) == [1, 2, 3]
    # A home opened up (as a shared CELLPIPE_HOME might be) with a cache folder another
    # user can write: neither the engine nor load reads from it
    home.chmod(0o755)
    (home / "cache").chmod(0o777)
    refused = cellpipe(env, "run", str(path))
    assert refused.returncode == 2
    assert str(home / "cache") in refused.stderr and "other users" in refused.stderr
    (home / "cache").chmod(0o700)
    run_dir = home / "runs" / done["run_id"]
    for folder in (home / "runs", run_dir, run_dir / "steps"):
        folder.chmod(0o755)
    (run_dir / "steps" / "make").chmod(0o777)
    with pytest.raises(ResultError, match="other users"):
        load(done["run_id"], "x", home=home)
    # Inside a folder others cannot enter, nothing can be written by them
    home.chmod(0o700)
    assert load(done["run_id"], "x", home=home) == [1, 2, 3]


# A step that starts a child that ignores SIGTERM, and (when asked) one that leaves the
# run's process group as a daemon would; it writes their pids, then works for a long time
KILLABLE = notebook(
    (["imports"], "import os, pathlib, signal, subprocess, sys, time"),
    (["step:first"], "x = 1"),
    (
        ["step:slow"],
        "stubborn = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "time.sleep(300)'\n"
        "child = subprocess.Popen([sys.executable, '-c', stubborn])\n"
        "pids = [os.getpid(), child.pid]\n"
        "if os.environ.get('CELLPIPE_TEST_DAEMON'):\n"
        "    pids.append(subprocess.Popen([sys.executable, '-c', stubborn],\n"
        "                                 start_new_session=True).pid)\n"
        "pathlib.Path(os.environ['CELLPIPE_TEST_PIDS']).write_text(' '.join(map(str, pids)))\n"
        "time.sleep(300)\n"
        "y = x",
    ),
    (["step:after"], "z = y"),
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def processes_with(variable: bytes) -> list[int]:
    """Live processes whose environment holds `variable` (NAME=VALUE)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if variable in environ and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line holds `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, UnicodeDecodeError):
                continue
            if text in command and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def start_killable(tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path, Any, list[int]]:
    home = tmp_path / "home"
    pids_file = tmp_path / "pids"
    env = cli_env(home, CELLPIPE_TEST_PIDS=str(pids_file), **extra)
    path = write(tmp_path / "killable.ipynb", KILLABLE)
    running = start_run(env, path)
    wait_until("the slow step started its children", pids_file.exists)
    time.sleep(0.2)  # the file is written whole
    return env, home, running, [int(p) for p in pids_file.read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.parametrize("signum", ["SIGKILL", "SIGTERM"])
def test_killing_cellpipe_run_leaves_no_process_of_the_run(tmp_path: Path, signum: str) -> None:
    env, home, running, pids = start_killable(tmp_path)
    of_the_run = set(pids)
    try:
        run_id = runs_json(env)[0]["run_id"]
        marker = f"CELLPIPE_RUN_ID={run_id}".encode()
        executors = processes_naming(str(home / "runs" / run_id / "plan.json"))
        assert executors, "the run's executor was not found"
        of_the_run |= {*executors, *processes_with(marker)}
        running.send_signal(getattr(signal, signum))
        running.wait(30)
        wait_until(
            "no process of the run is left",
            lambda: not any(alive(p) for p in of_the_run) and not processes_with(marker),
            timeout=30,
        )
    finally:
        running.kill()
        running.communicate()
        for pid in of_the_run:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    # Nothing of it reached the cache, and the run is not left Running
    assert not [p for p in (home / "cache").iterdir() if not p.name.startswith("first-")]
    status = json.loads(cellpipe(env, "status", run_id, "--format", "json").stdout)
    assert status["status"] == "Failed"
    assert status["steps"]["slow"]["status"] == "Cancelled"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_cancel_stops_what_a_killed_run_left_running(tmp_path: Path) -> None:
    env, _, running, pids = start_killable(tmp_path, CELLPIPE_TEST_DAEMON="1")
    step, child, daemon = pids
    try:
        run_id = runs_json(env)[0]["run_id"]
        running.kill()
        running.wait(30)
        wait_until("the step and its child stop", lambda: not alive(step) and not alive(child))
        assert alive(daemon)  # it left the run's process group: only cancel finds it
        status = json.loads(cellpipe(env, "status", run_id, "--format", "json").stdout)
        assert status["status"] == "Failed"
        cancelled = cellpipe(env, "cancel", run_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.strip() == f"run {run_id}: Cancelled"
        wait_until("the daemon stops", lambda: not alive(daemon), timeout=15)
        again = cellpipe(env, "cancel", run_id)
        assert again.returncode != 0 and "already ended" in again.stderr
    finally:
        running.kill()
        running.communicate()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
