"""The run display: each step's line when it ends with what it printed under it, in the
vocabulary's words (`Cancelled`, never `skip`); plain lines when piped, a live list of the
unfinished steps on a terminal."""

from __future__ import annotations

import io

import pytest

from cellpipe.commands.progress import (
    MAX_OUTPUT_LINES,
    PlainProgress,
    TerminalProgress,
    progress_for,
)
from cellpipe.launcher import StepRecord


def printed(step: StepRecord) -> str:
    return {"a": "first line\nsecond line\n", "b": ""}.get(step.name, "")


def test_plain_lines_say_each_steps_status_and_show_what_it_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = io.StringIO()
    progress = progress_for(out, ["a", "bb", "c"], printed)
    assert isinstance(progress, PlainProgress)
    step = StepRecord("a", "a")
    progress("started", step)
    step.status, step.seconds = "Failed", 1.5
    progress("finished", step)
    progress("cached", StepRecord("bb", "bb", status="Succeeded"))
    progress("finished", StepRecord("c", "c", status="Cancelled"))
    assert out.getvalue().splitlines() == [
        "  Running    a",
        "  Failed     a   1.50 s",
        "      first line",
        "      second line",
        "  Succeeded  bb  cached",
        "  Cancelled  c",
    ]
    assert "skip" not in out.getvalue()


def test_quiet_shows_the_lines_only() -> None:
    out = io.StringIO()
    progress = progress_for(out, ["a"], printed, quiet=True)
    progress("finished", StepRecord("a", "a", status="Succeeded", seconds=0.25))
    assert out.getvalue() == "  Succeeded  a  0.25 s\n"


def test_a_long_output_keeps_its_end_and_says_where_the_rest_is() -> None:
    out = io.StringIO()
    many = "".join(f"line {n}\n" for n in range(MAX_OUTPUT_LINES + 5))
    progress = PlainProgress(out, ["a"], lambda step: many)
    progress("finished", StepRecord("a", "a", status="Succeeded"))
    lines = out.getvalue().splitlines()
    assert lines[1] == "      ... 5 lines before these (cellpipe logs RUN --step NAME)"
    assert lines[2] == "      line 5" and lines[-1] == f"      line {MAX_OUTPUT_LINES + 4}"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_finished_steps_print_above_the_live_list_of_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = Terminal()
    progress = progress_for(out, ["load", "bad\x1b[2Jname"], printed)
    assert isinstance(progress, TerminalProgress)
    step = StepRecord("load", "load")
    progress("started", step)
    step.status, step.seconds = "Succeeded", 0.25
    progress("finished", StepRecord("a", "a", status="Succeeded", seconds=0.25))
    progress.close()
    text = out.getvalue()
    assert "\x1b[32mSucceeded\x1b[0m" in text  # in colour
    assert "      first line" in text
    assert "\x1b[2J" not in text and "badname" in text
    assert "Pending" in text  # the live list, drawn then cleared (transient)
