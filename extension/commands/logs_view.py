"""How `cellpipe logs RUN` prints a run's whole log (launcher/run_logs.py): the run's summary,
then each section under a header coloured by its status; followed with `-f`."""

from __future__ import annotations

from typing import TextIO

from cellpipe.launcher.run_logs import (
    LogSection,
    RunLog,
    follow_run_log,
    header_line,
    run_summary,
)
from cellpipe.launcher.store import RunRecord
from cellpipe.launcher.tracking import Runs

from .terminal import STATUS_STYLES, console_for, safe_text


def _header_style(section: LogSection | None) -> str:
    status = STATUS_STYLES.get(section.status, "") if section else ""
    return f"bold {status}".strip()


def print_run_log(log: RunLog, out: TextIO) -> None:
    """The whole log, each header line in its step's status colour."""
    console = console_for(out)
    for kind, section, text in log.parts():
        style = _header_style(section) if kind == "header" else ""
        console.print(safe_text(text, style), end="")
    out.flush()


def print_followed_log(runs: Runs, record: RunRecord, out: TextIO) -> None:
    """The log as it grows: a step's header whenever the output moves to it or its status
    changes, then what it printed since; the run's status when it ends."""
    console = console_for(out)
    for line in run_summary(record):
        console.print(safe_text(line))
    shown: tuple[str, str] | None = None
    for section, text in follow_run_log(runs, record):
        if (section.key, section.status) != shown and (text or section.step is not None):
            console.print(safe_text(header_line(section), _header_style(section)), end="")
            shown = (section.key, section.status)
        console.print(safe_text(text), end="")
        out.flush()
    final = runs.store.get(record.run_id) or record
    console.print(safe_text(run_summary(final)[0], _header_style(_run_section(final))))


def _run_section(record: RunRecord) -> LogSection:
    return LogSection(None, None, record.status, "", None)
