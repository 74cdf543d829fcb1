"""`cellpipe logs RUN` prints the run's whole log (issue 20): each step's output in pipeline
order under a header naming its status, for succeeded and failed runs of the `local` and
`kfp-local` engines, and `--follow` streams a run while it goes on. Real runs, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellpipe.launcher.run_logs import kfp_local_task_states, split_kfp_local_log
from tests.notebooks import notebook, write

FAILING = notebook(
    (["imports"], "import math"),
    (["step:load"], "rows = [1, 2, 3]\nprint('loaded', len(rows), 'rows')"),
    (["step:train", "after:load"], "print('training on', rows)\nraise ValueError('diverged')"),
    (["step:report", "after:train"], "print('never printed')"),
)
SUCCEEDING = notebook(
    (["step:load"], "rows = [1, 2, 3]\nprint('loaded', len(rows), 'rows')"),
    (["step:quiet", "after:load"], "total = sum(rows)"),
    (["step:result", "after:quiet"], "print(f'total = {total}')"),
)


def cellpipe(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(home), "NO_COLOR": "", **env},
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def run_id(home: Path, path: Path, *options: str) -> str:
    done = cellpipe(home, "run", str(path), "--format", "json", *options)
    assert done.returncode in (0, 1), done.stderr
    found: str = json.loads(done.stdout)["run_id"]
    return found


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("==> ")]


@pytest.mark.parametrize("engine", ["local", "kfp-local"])
def test_a_failed_runs_log_has_each_steps_output_under_its_header(
    tmp_path: Path, engine: str
) -> None:
    # Given a run whose second step fails
    nb = write(tmp_path / "fails.ipynb", FAILING)
    run = run_id(tmp_path / "home", nb, "--engine", engine)
    # When its log is asked for
    result = cellpipe(tmp_path / "home", "logs", run)
    # Then every step comes in pipeline order, with what it printed and the traceback
    assert result.returncode == 0, result.stderr
    log = result.stdout
    assert log.startswith(f"run {run}: fails, {engine}, Failed\n")
    steps = [h for h in headers(log) if "step " in h]
    assert [h.split(":")[0] for h in steps] == [
        "==> step load",
        "==> step train",
        "==> step report",
    ]
    assert "step train: Failed" in steps[1] and "step report: Cancelled" in steps[2]
    load, train, report = log.split("==> step ")[1:]
    assert "loaded 3 rows" in load
    assert "training on [1, 2, 3]" in train and "ValueError: diverged" in train
    assert 'File "fails.ipynb, cell 3"' in train
    assert "(printed nothing)" in report
    assert "KFP Executor" not in log and "executor_input" not in log


def test_a_succeeded_local_runs_log_is_not_empty_and_says_what_printed_nothing(
    tmp_path: Path,
) -> None:
    nb = write(tmp_path / "fine.ipynb", SUCCEEDING)
    run = run_id(tmp_path / "home", nb)
    log = cellpipe(tmp_path / "home", "logs", run).stdout
    assert headers(log) == [
        "==> step load: Succeeded, " + headers(log)[0].split(", ")[1],
        "==> step quiet: Succeeded, " + headers(log)[1].split(", ")[1],
        "==> step result: Succeeded, " + headers(log)[2].split(", ")[1],
    ]
    assert log.split("==> step quiet")[1].splitlines()[1] == "(printed nothing)"
    assert log.rstrip().endswith("total = 6")
    # a cached run says so in its headers, and still shows what the steps printed then
    again = run_id(tmp_path / "home", nb)
    cached = cellpipe(tmp_path / "home", "logs", again).stdout
    assert "==> step load: Succeeded (cached) <==" in cached
    assert "loaded 3 rows" in cached and "total = 6" in cached


def test_follow_streams_a_running_run_until_it_ends(tmp_path: Path) -> None:
    # Given a run whose first step prints, then waits for a file before ending
    gate = tmp_path / "gate"
    nb = write(
        tmp_path / "slow.ipynb",
        notebook(
            (
                ["step:wait"],
                "import pathlib, time\nprint('waiting', flush=True)\n"
                f"while not pathlib.Path({str(gate)!r}).exists():\n    time.sleep(0.05)\n"
                "print('released')",
            ),
            (["step:after", "after:wait"], "print('second step')"),
        ),
    )
    home = tmp_path / "home"
    env = {**os.environ, "CELLPIPE_HOME": str(home)}
    running = subprocess.Popen(
        [sys.executable, "-m", "cellpipe.cli", "run", str(nb)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run = _wait_for_run(home)
        # When the log is followed while the step waits
        with subprocess.Popen(
            [sys.executable, "-m", "cellpipe.cli", "logs", run, "--follow"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        ) as follower:
            tail = _follow_until_released(follower, run, nb, gate, running)
    finally:
        gate.touch()
        running.wait(timeout=60)
    assert "released\n" in tail and "==> step wait: Succeeded" in tail
    assert "==> step after: Succeeded" in tail and "second step\n" in tail
    assert tail.splitlines()[-1] == f"run {run}: slow, local, Succeeded"


def _follow_until_released(
    follower: subprocess.Popen[str],
    run: str,
    nb: Path,
    gate: Path,
    running: subprocess.Popen[bytes],
) -> str:
    """Then what the running step printed arrives before the run ends; the rest after."""
    assert follower.stdout is not None
    assert follower.stdout.readline() == f"run {run}: slow, local, Running\n"
    assert follower.stdout.readline() == f"notebook: {nb}\n"
    assert follower.stdout.readline() == "==> step wait: Running <==\n"
    assert follower.stdout.readline() == "waiting\n"
    assert running.poll() is None
    gate.touch()
    tail = follower.stdout.read()
    assert follower.wait(timeout=60) == 0
    return tail


def _wait_for_run(home: Path) -> str:
    runs = home / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [p for p in runs.glob("*/steps/wait/cellpipe-log.txt") if p.stat().st_size]
        if found:
            return found[0].parents[2].name
        time.sleep(0.05)
    raise AssertionError("the run did not start")


def test_kfp_locals_log_is_cut_into_tasks_without_its_executors_lines() -> None:
    log = (
        "17:27:28.557 - INFO - Running pipeline: \x1b[95m'p'\x1b[0m\n"
        + "-" * 80
        + "\n17:27:28.563 - INFO - Executing task \x1b[96m'a'\x1b[0m\n"
        "17:27:28.563 - INFO - Streamed logs:\n\n"
        "    [KFP Executor 2026-11-24 17:27:28,701 INFO]: Looking for component\n"
        "    [KFP Executor 2026-11-24 17:27:28,723 INFO]: Got executor_input:\n"
        '    {\n        "inputs": {}\n    }\n'
        "    hello\n      indented\n"
        "    [KFP Executor 2026-11-24 17:27:28,920 INFO]: Wrote executor output file\n    \n\n"
        "17:27:29.019 - INFO - Task \x1b[96m'a'\x1b[0m finished with status SUCCESS\n"
        "17:27:29.020 - INFO - Task 'a' outputs:\n"
        "    x: Artifact( name='x',\n"
        "17:27:29.021 - INFO - Executing task 'b'\n"
        "17:27:29.021 - INFO - Streamed logs:\n\n"
        "    Traceback (most recent call last):\n    ValueError: boom\n    \n\n"
        "17:27:29.475 - ERROR - Task 'b' finished with status FAILURE\n"
    )
    assert kfp_local_task_states(log) == {"a": "Succeeded", "b": "Failed"}
    assert kfp_local_task_states(log.split("finished with status SUCCESS")[0]) == {"a": "Running"}
    own, tasks = split_kfp_local_log(log)
    assert tasks == {
        "a": "hello\n  indented\n",
        "b": "Traceback (most recent call last):\nValueError: boom\n",
    }
    assert own.splitlines() == [
        "17:27:28.557 - INFO - Running pipeline: 'p'",
        "17:27:28.563 - INFO - Executing task 'a'",
        "17:27:29.019 - INFO - Task 'a' finished with status SUCCESS",
        "17:27:29.021 - INFO - Executing task 'b'",
        "17:27:29.475 - ERROR - Task 'b' finished with status FAILURE",
    ]
