"""The run display: plain lines for logs, a table redrawn in place on a terminal."""

from __future__ import annotations

import io

from cellpipe.commands.progress import PlainProgress, TerminalProgress, progress_for
from cellpipe.launcher import StepRecord


def test_plain_lines_say_when_each_step_starts_and_ends() -> None:
    out = io.StringIO()
    progress = progress_for(out, ["a"])
    assert isinstance(progress, PlainProgress)
    step = StepRecord("a", "a")
    progress("started", step)
    step.status, step.seconds = "Failed", 1.5
    progress("finished", step)
    progress("cached", StepRecord("b", "b"))
    assert out.getvalue().splitlines() == ["  ... a", "  FAIL a 1.50 s", "  ok  b (cached)"]


def test_the_terminal_table_redraws_every_step_in_place_and_strips_control_from_names() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, ["load", "bad\x1b[2Jname"])
    step = StepRecord("load", "load")
    progress("started", step)
    step.status, step.seconds = "Succeeded", 0.25
    progress("finished", step)
    progress.close()
    frames = out.getvalue().split("\x1b[2F")
    assert len(frames) == 4  # first draw, started, finished, final draw on close
    assert "ok   load" in frames[-1] and "0.25 s" in frames[-1]
    assert "\x1b[2J" not in out.getvalue() and "badname" in frames[0]
