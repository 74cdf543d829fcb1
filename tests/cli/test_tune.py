"""`cellpipe tune` as a program: its JSON, its plain lines off a terminal, its table on one,
and user errors as one line and exit 2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellpipe.commands.arguments import build_parser
from cellpipe.commands.tune import tune_command
from tests.notebooks import notebook, write

PEAK = notebook(
    (["parameters"], "x = 1\nsize = 3"),
    (["step:data"], "data = list(range(size))"),
    (["step:score", "after:data"], "score = -(x - 2) ** 2 + len(data)"),
    (["metrics"], "score"),
)


@pytest.fixture
def peak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CELLPIPE_HOME", str(tmp_path / "home"))
    return write(tmp_path / "peak.ipynb", PEAK)


def cellpipe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )


def test_json_is_the_issue_s_shape(peak: Path) -> None:
    done = cellpipe(
        "tune", peak, "--objective", "score", "--maximize", "--search", "x=1..3",
        "--algorithm", "grid", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"tune_id", "objective", "best", "trials", "algorithm", "status"}
    assert result["objective"] == {"metric": "score", "direction": "maximize"}
    assert result["best"]["parameters"] == {"x": 2} and result["best"]["value"] == 3.0
    trial = result["trials"][0]
    assert {"parameters", "value", "status", "run_id", "seconds", "steps_ran"} <= set(trial)
    assert result["algorithm"] == "grid"


def test_plain_lines_off_a_terminal(peak: Path) -> None:
    done = cellpipe(
        "tune", peak, "--objective", "score", "--minimize", "--search", "x=1,3", "--algorithm",
        "grid", "--parallel", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("  trial 1 Succeeded: x=1 -> score 2")
    assert "ran: data, score" in lines[0] and "ran: score" in lines[1]
    assert "best 2 (trial 1)" in lines[1]
    assert "\x1b" not in done.stdout
    assert "run once: data; every trial: score" in done.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_live_table_on_a_terminal(peak: Path) -> None:
    args = build_parser().parse_args(
        ["tune", str(peak), "--objective", "score", "--maximize", "--search", "x=1..3",
         "--algorithm", "grid", "--parallel", "1"]
    )  # fmt: skip
    out, err = Terminal(), io.StringIO()
    outcome = tune_command(args, out, err)
    assert outcome.status == 0
    text = out.getvalue()
    assert "\x1b[2K" in text and "\x1b[4F" in text  # rows redrawn in place
    last = text.rsplit("\x1b[", 1)[0]
    assert "best so far: 3 (trial 2)" in text
    assert "trial  parameters  score" in last.replace("\x1b[2K", "")


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--search", "nope=1..3"], "no parameter 'nope'"),
        (["--search", "x=a..b"], "'a' is not a number"),
        (["--search", "x=1..3", "--objective", "loss"], "no metric 'loss'"),
        (["--search", "x=1..3", "--trials", "0"], "--trials must be at least 1"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(peak: Path, extra: list[str], said: str) -> None:
    args = ["tune", peak, "--objective", "score", "--maximize", *extra]
    if "--objective" in extra:
        args[2:4] = []
    done = cellpipe(*args)
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr


SLOW = notebook(
    (["parameters"], "x = 1"),
    (["step:score"], "import time\ntime.sleep(0.5)\nscore = x"),
    (["metrics"], "score"),
)


def test_runs_status_cancel_and_delete_know_tunes(tmp_path: Path, peak: Path) -> None:
    slow = write(tmp_path / "slow.ipynb", SLOW)
    # Given a tune running in another process
    tuning = subprocess.Popen(
        [sys.executable, "-m", "cellpipe.cli", "tune", str(slow), "--objective", "score",
         "--maximize", "--search", "x=1..20", "--algorithm", "grid", "--parallel", "1",
         "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    try:
        tune_id = None
        while tune_id is None:
            listed = json.loads(cellpipe("runs", "--format", "json").stdout)
            started = [t for t in listed["tunes"] if t["trials"]]
            tune_id = started[0]["tune_id"] if started else None
        # When `cellpipe cancel` names it
        cancelled = cellpipe("cancel", tune_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert "stops after its running trials" in cancelled.stdout
        seen = json.loads(cellpipe("status", tune_id, "--format", "json").stdout)["trials"]
        out, err = tuning.communicate(timeout=120)
    finally:
        tuning.kill()
    # Then it stopped after its running trial, keeping what finished
    result = json.loads(out)
    assert result["status"] == "Cancelled", err
    # the trials seen once cancelled are kept; one at a time, at most one more (starting as the
    # cancel came) runs after them, and none of the 20 starts later
    numbers = [t["trial"] for t in result["trials"]]
    assert numbers[: len(seen)] == [t["trial"] for t in seen]
    assert len(seen) <= len(numbers) <= len(seen) + 1 < 20
    status = json.loads(cellpipe("status", tune_id, "--format", "json").stdout)
    assert status["status"] == "Cancelled" and status["trials"] == result["trials"]
    assert "Cancelled" in cellpipe("status", tune_id).stdout
    # And delete forgets it and its trials' runs
    deleted = cellpipe("delete", tune_id)
    assert deleted.returncode == 0 and "deleted tune" in deleted.stdout
    listed = json.loads(cellpipe("runs", "--format", "json").stdout)
    assert listed["tunes"] == [] and listed["runs"] == []
