"""A run's whole log, assembled here once for every front door (`cellpipe logs RUN`, the
server's GET /runs/ID/logs without a step, the sidebar's log panel).

The whole log is the run's own part (its engine's lines around the steps and the output of
the imports and functions cells, the prelude) followed by each step's output in pipeline
order, each a `LogSection` under a header that says the step's status. Where the text comes
from depends on the engine:

- `local`: each step's log file (runs/RUN_ID/steps/TASK/cellpipe-log.txt, tracebacks
  included; for a cached step the log of the run that made it), else what its report kept;
  the prelude's output from prelude-log.txt.
- `kfp-local`: kfp.local streams every task into one file (kfp-local-log.txt), one task after
  another; each step's part is cut from it, without kfp's own executor lines.
- a cluster engine: each step's pods' logs, through the engine (tracking.Runs.logs).

`follow_run_log` streams the same sections while the run goes on (`cellpipe logs --follow`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellpipe.runtime.local import LOG_FILE
from cellpipe.runtime.step import REPORT_FILE

from .errors import UserError
from .store import RunRecord, StepRecord
from .tracking import LOG_LIMIT, RUN_LOGS, LogTail, Runs, local_log_tail
from .vocabulary import FINISHED, KFP_LOCAL_ENGINE

# kfp.local's own lines: where a task's streamed log starts and ends, its executor's lines
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_STARTS = re.compile(r"^\S+ - \w+ - Executing task '(?P<task>[^']+)'$")
_TASK_ENDS = re.compile(r"^\S+ - \w+ - Task '(?P<task>[^']+)' finished with status")
_EXECUTOR_LINE = re.compile(r"^\[KFP Executor [^\]]*\]: ")
_STREAM_INDENT = "    "
_ENGINE_EVENT = re.compile(r"^\d\d:\d\d:\d\d\.\d+ - \w+ - ")


@dataclass
class LogSection:
    """One part of a run's log: the run's own (`step` None) or one step's."""

    step: str | None
    task: str | None
    status: str
    text: str
    source: str | None  # step | report | run | cluster | None (nothing yet)
    truncated: bool = False
    cached: bool = False
    seconds: float | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        return self.task or ""

    def header(self) -> str:
        """The section's header line, for people (the CLI colours it)."""
        if self.step is None:
            return "run log (the engine, the imports and functions cells)"
        task = f" [{self.task}]" if self.task and self.task != self.step else ""
        facts = [self.status + (" (cached)" if self.cached else "")]
        if self.seconds is not None and not self.cached:
            facts.append(f"{self.seconds:.2f} s")
        return f"step {self.step}{task}: {', '.join(facts)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "task": self.task,
            "status": self.status,
            "cached": self.cached,
            "seconds": self.seconds,
            "error": self.error,
            "header": self.header(),
            "text": self.text,
            "source": self.source,
            "truncated": self.truncated,
        }


@dataclass
class RunLog:
    """A run's whole log: the run's own section first, then each step's in pipeline order."""

    record: RunRecord
    sections: list[LogSection] = field(default_factory=list)

    def parts(self) -> Iterator[tuple[str, LogSection | None, str]]:
        """The log in order, as (kind, section, text): `summary` lines about the run, then
        for each section its `header` line and its `text` (a front door styles each kind)."""
        for line in run_summary(self.record):
            yield "summary", None, f"{line}\n"
        for section in self.sections:
            if section.step is None and not section.text:
                continue  # a run with nothing of its own to say shows its steps only
            yield "header", section, header_line(section)
            yield "text", section, _ended_with_newline(section.text) or "(printed nothing)\n"

    def text(self) -> str:
        """The whole log as one text: each section under its `==> header <==` line."""
        return "".join(text for _, _, text in self.parts())

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.record.run_id,
            "status": self.record.status,
            "text": self.text(),
            "sections": [s.to_json() for s in self.sections],
            "truncated": any(s.truncated for s in self.sections),
        }


def header_line(section: LogSection) -> str:
    return f"==> {section.header()} <==\n"


def run_summary(record: RunRecord) -> list[str]:
    """The lines that open a run's log: what ran where, how it ended, when."""
    lines = [f"run {record.run_id}: {record.pipeline}, {record.engine}, {record.status}"]
    lines.append(f"notebook: {record.notebook}")
    if record.finished:
        lines.append(f"took {record.finished - record.created:.1f} s")
    if record.error and record.status not in ("Succeeded", "Running", "Pending"):
        lines.append(f"error: {record.error}".replace("\n", "\n  "))
    return lines


def run_log(runs: Runs, record: RunRecord) -> RunLog:
    """The run's whole log as it stands now (a running run's so far)."""
    return RunLog(record, _sections(runs, record))


def follow_run_log(
    runs: Runs, record: RunRecord, poll_seconds: float = 0.5
) -> Iterator[tuple[LogSection, str]]:
    """The run's log as it grows, until the run ends: (section, new text) as each section
    gets more; a section also comes (with no text) when its step ends, so its status shows.
    A cluster run streams its pods' logs as its engine gives them, in one section."""
    if runs.config.engine_location(record.engine) == "cluster":
        yield from _follow_cluster(runs, record)
        return
    shown: dict[str, int] = {}
    ended: dict[str, str] = {}
    while True:
        current = runs.store.get(record.run_id) or record
        current, _ = runs.refresh(current)
        finished = current.status in FINISHED  # asked before reading: nothing is missed
        for section in _sections(runs, current):
            text = section.text if finished else _whole_lines(section.text)
            new = text[shown.get(section.key, 0) :]
            if new or (section.status in FINISHED and ended.get(section.key) != section.status):
                shown[section.key] = len(text)
                ended[section.key] = section.status
                yield section, new
        if finished:
            return
        time.sleep(poll_seconds)


def _follow_cluster(runs: Runs, record: RunRecord) -> Iterator[tuple[LogSection, str]]:
    section = LogSection(None, None, record.status, "", "cluster")
    for text in runs.logs(record, None, follow=True):
        yield section, text


def step_output(engine: str, step: StepRecord) -> str:
    """What a step of a run here printed, as soon as the engine says it ended (the display
    of `cellpipe run`), read from its outputs folder: RUN/steps/TASK, or the step cache's
    entry for a cached step (local); RUN/kfp/PIPELINE-RUN/TASK (kfp-local), whose output is
    in the run's kfp.local log."""
    if step.outputs is None:
        return ""
    folder = Path(step.outputs)
    if engine == KFP_LOCAL_ENGINE:
        run_dir = folder.parents[2]
        # a record of this run as far as reading its log goes: its folder, engine and step
        record = RunRecord(run_dir.name, "", "", engine, step.status, 0.0, str(run_dir))
        record.steps = {step.name: step}
        return _kfp_local_sections(record)[1].text
    try:  # the end of the step's log, as `cellpipe logs` shows it
        return (folder / LOG_FILE).read_bytes()[-LOG_LIMIT:].decode("utf-8", errors="replace")
    except OSError:
        pass
    try:  # a step whose log is gone: what its report kept
        report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    printed = report.get("printed") if isinstance(report, dict) else None
    return printed if isinstance(printed, str) else ""


def _sections(runs: Runs, record: RunRecord) -> list[LogSection]:
    if runs.config.engine_location(record.engine) == "cluster":
        return [_cluster_section(runs, record, step) for step in record.steps.values()]
    if record.engine == KFP_LOCAL_ENGINE:
        return _kfp_local_sections(record)
    own = local_log_tail(record, None)
    steps = [_section(step, local_log_tail(record, step)) for step in record.steps.values()]
    return [_section(None, own, record), *steps]


def _section(step: StepRecord | None, tail: LogTail, record: RunRecord | None = None) -> LogSection:
    if step is None:
        status = record.status if record else ""
        return LogSection(None, None, status, tail.text, tail.source, tail.truncated)
    return LogSection(
        step.name,
        step.task,
        step.status,
        tail.text,
        tail.source,
        tail.truncated,
        cached=step.cached,
        seconds=step.seconds,
        error=step.error,
    )


def _cluster_section(runs: Runs, record: RunRecord, step: StepRecord) -> LogSection:
    try:
        text = "".join(runs.logs(record, step.name))
    except UserError as exc:  # the cluster did not answer: say so in the step's place
        text = f"cannot read this step's log: {exc}\n"
    data = text.encode("utf-8")
    truncated = len(data) > LOG_LIMIT
    if truncated:
        text = data[-LOG_LIMIT:].decode("utf-8", errors="replace")
    return _section(step, LogTail(text, "cluster", truncated))


def _kfp_local_sections(record: RunRecord) -> list[LogSection]:
    """kfp.local's one log cut into the run's own lines and each task's streamed output."""
    path = Path(record.outputs) / RUN_LOGS[KFP_LOCAL_ENGINE]
    tail = LogTail("", None, False)
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    else:
        tail = LogTail("", "run", len(data) > LOG_LIMIT)
    text = data[-LOG_LIMIT:].decode("utf-8", errors="replace")
    own, by_task = split_kfp_local_log(text)
    states = kfp_local_task_states(text)  # the record has the steps' only when the run ends
    sections = [_section(None, LogTail(own, tail.source, tail.truncated), record)]
    for step in record.steps.values():
        printed = by_task.get(step.task)
        section = _section(step, LogTail(printed or "", "run" if printed else None, False))
        if step.status not in FINISHED:
            section.status = states.get(step.task, step.status)
        sections.append(section)
    return sections


def kfp_local_task_states(text: str) -> dict[str, str]:
    """Each task's status as kfp.local's log tells it while the run goes on: Running from
    `Executing task`, then Succeeded or Failed from `Task ... finished with status`."""
    states: dict[str, str] = {}
    for line in _ANSI.sub("", text).splitlines():
        if started := _TASK_STARTS.match(line):
            states[started["task"]] = "Running"
        elif ended := _TASK_ENDS.match(line):
            states[ended["task"]] = "Succeeded" if line.endswith("SUCCESS") else "Failed"
    return states


def split_kfp_local_log(text: str) -> tuple[str, dict[str, str]]:
    """kfp.local's log as (its own lines, each task's streamed output): a task's output is
    what its executor printed between kfp.local's `Executing task` and `Task ... finished`
    lines, unindented, without the executor's own lines and the executor input it logs."""
    own: list[str] = []
    by_task: dict[str, list[str]] = {}
    task: str | None = None
    in_executor_input = False
    for raw in text.splitlines(keepends=True):
        line = _ANSI.sub("", raw)
        bare = line.rstrip("\n")
        started, ended = _TASK_STARTS.match(bare), _TASK_ENDS.match(bare)
        if started:
            task = started["task"]
            by_task.setdefault(task, [])
        if started or ended or task is None:
            if started or ended or (_ENGINE_EVENT.match(bare) and not bare.endswith("outputs:")):
                own.append(line)  # kfp.local's events; not its listing of each task's outputs
            task = None if ended else task
            continue
        if not bare.startswith(_STREAM_INDENT):
            continue  # "Streamed logs:" and the blank lines around the stream
        content = line[len(_STREAM_INDENT) :]
        if in_executor_input:
            in_executor_input = content.rstrip("\n") != "}"
        elif _EXECUTOR_LINE.match(content):
            in_executor_input = content.rstrip().endswith("Got executor_input:")
        else:
            by_task[task].append(content)
    texts = {name: "".join(lines).rstrip(" \n") for name, lines in by_task.items()}
    return "".join(own), {name: f"{t}\n" if t else "" for name, t in texts.items()}


def _whole_lines(text: str) -> str:
    """The text up to its last line feed (a line still being written waits)."""
    end = text.rfind("\n")
    return text[: end + 1]


def _ended_with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else f"{text}\n"


__all__ = [
    "LogSection",
    "RunLog",
    "follow_run_log",
    "header_line",
    "kfp_local_task_states",
    "run_log",
    "run_summary",
    "split_kfp_local_log",
    "step_output",
]
