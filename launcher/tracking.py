"""Following runs of every engine: find, list, status, logs, cancel and delete (`Runs`, what
every front door uses), and the layout of a run's folder, here once.

Cluster runs (kfp and the training engines) ask their engine; runs on this machine (`local`,
`kfp-local`) are followed through the run store and their folder (runs/RUN_ID), and stopped
by signalling the processes that run their steps. A local run whose process died is not left
Running forever: its record names the process that made it (store.owner_alive), and
cancelling it stops whatever of it is still running (each of its processes carries the run's
id in its environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellpipe.runtime.local import LOG_FILE, RUN_ID_VARIABLE
from cellpipe.runtime.step import REPORT_FILE

from .cluster import set_status
from .config import CellPipe
from .errors import ClusterUnreachable, Conflict, NotFound
from .k8s import ClusterError, KubeSettings
from .store import (
    RunNotFound,
    RunRecord,
    RunStore,
    StepRecord,
    cellpipe_home,
    find_run,
    open_store,
    owner_alive,
)
from .vocabulary import FINISHED, LOCAL_ENGINES, UNFINISHED, RunStatus

# A run's own log (beside the steps' logs, runs/RUN_ID/steps/TASK/cellpipe-log.txt).
RUN_LOGS = {"local": "prelude-log.txt", "kfp-local": "kfp-local-log.txt"}
LOG_LIMIT = 1 << 20  # the last MiB of a log is shown; `truncated` says when there was more


class LocalTracker:
    """Runs of the `local` and `kfp-local` engines, followed from any process."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def refresh(self, record: RunRecord) -> RunRecord:
        if record.status in FINISHED:
            return record
        if owner_alive(record.owner) is False:
            for step in record.steps.values():
                if step.status in UNFINISHED:
                    step.status = "Cancelled"
                    step.error = "the process running the run stopped"
                    self.store.update_step(record.run_id, step)
            set_status(
                self.store,
                record,
                "Failed",
                f"the process that ran it ({record.owner}) stopped before the run ended "
                "(`cellpipe cancel` stops any of its processes still running)",
            )
        return record

    def stop_leftovers(self, record: RunRecord, wait_seconds: float = 5.0) -> int:
        """Stop the processes of an ended run that are still running (the process that ran
        it died and left them): SIGTERM, then SIGKILL. How many there were."""
        found = _run_processes(record)
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_seconds
        alive = list(found)
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [pid for pid in alive if _alive(pid)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return len(found)

    def cancel(self, record: RunRecord, wait_seconds: float = 15.0) -> RunRecord:
        """SIGTERM to the processes running the run's steps; the process that runs the run
        then records its end, which is made Cancelled here."""
        signalled = _signal_run_processes(record)
        deadline = time.monotonic() + wait_seconds
        while signalled and time.monotonic() < deadline:
            current = self.store.get(record.run_id)
            if current is None or current.status in FINISHED:
                break
            time.sleep(0.2)
        current = self.store.get(record.run_id) or record
        if current.status != "Succeeded":
            for step in current.steps.values():
                if step.status in UNFINISHED:
                    step.status, step.error = RunStatus.CANCELLED, "cancelled"
                    self.store.update_step(current.run_id, step)
            current.status, current.error = "Cancelled", "cancelled"
            current.finished = current.finished or time.time()
            self.store.update_run(current)
        return current

    def delete(self, record: RunRecord) -> list[str]:
        return []

    def logs(self, record: RunRecord, step: str | None, follow: bool) -> Iterator[str]:
        """The step's log (or the run's own), followed while the run goes on."""
        run_dir = Path(record.outputs)
        if step is None:
            path = run_dir / RUN_LOGS.get(record.engine, "prelude-log.txt")
        else:
            found = next((s for s in record.steps.values() if step in (s.name, s.task)), None)
            if found is None:
                names = ", ".join(repr(s) for s in record.steps)
                yield f"run {record.run_id} has no step {step!r}; its steps are {names}\n"
                return
            path = run_dir / "steps" / found.task / LOG_FILE
            report = run_dir / "steps" / found.task / REPORT_FILE
            printed = _printed(report)
            if not follow and not path.is_file() and printed is not None:
                yield printed
                return
        yield from _follow_file(path, lambda: self._ended(record.run_id), follow)

    def _ended(self, run_id: str) -> bool:
        current = self.store.get(run_id)
        if current is None:
            return True
        return self.refresh(current).status in FINISHED


def _printed(report: Path) -> str | None:
    """What a step's report kept of its output; None when there is no readable report."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    printed = data.get("printed", "") if isinstance(data, dict) else None
    return printed if isinstance(printed, str) else None


def _follow_file(path: Path, ended: Any, follow: bool, poll: float = 0.5) -> Iterator[str]:
    position = 0
    while True:
        finished = ended() if follow else True  # asked before reading: nothing is missed
        if path.is_file():
            with open(path, "rb") as handle:
                handle.seek(position)
                data = handle.read()
                position += len(data)
            if data:
                yield data.decode("utf-8", errors="replace")
        if finished:
            return
        time.sleep(poll)


def _run_processes(record: RunRecord) -> dict[int, int]:
    """The live processes of a run here, pid -> parent pid: those whose command line names
    the run's folder (the local executor; kfp.local's step processes) or whose environment
    carries its id (everything a local run started), never this process."""
    marker = str(Path(record.outputs))
    variable = f"{RUN_ID_VARIABLE}={record.run_id}".encode()
    matching: dict[int, int] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        after_name = stat.rsplit(")", 1)[1].split()
        if after_name[0] == "Z":
            continue  # ended, not yet reaped
        ours = marker in command
        if not ours:
            with contextlib.suppress(OSError):
                ours = variable in (entry / "environ").read_bytes().split(b"\0")
        if ours:
            matching[int(entry.name)] = int(after_name[1])
    return matching


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_run_processes(record: RunRecord) -> list[int]:
    """SIGTERM to the top processes of a run here (the local executor, which stops its
    steps; kfp.local's step processes), never to this process."""
    matching = _run_processes(record)
    tops = [pid for pid, parent in matching.items() if parent not in matching]
    for pid in tops:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    return tops


def tracker_for(
    record: RunRecord,
    store: RunStore,
    home: Path,
    config: CellPipe,
    kube: KubeSettings | None = None,
) -> Any:
    """What follows this run: its cluster engine (from the registry), or the local tracker."""
    if config.engine_location(record.engine) == "cluster" and record.engine in config.engines:
        engine_class = config.engine_class(record.engine)
        return engine_class.for_tracking(record.engine, config, kube or KubeSettings(), store, home)
    return LocalTracker(store)


def refresh_quietly(tracker: Any, record: RunRecord) -> tuple[RunRecord, str | None]:
    """Refresh a run; when its engine cannot be reached, the stored record and why."""
    try:
        return tracker.refresh(record), None
    except ClusterError as exc:
        return record, str(exc)


def find_step(record: RunRecord, name: str) -> StepRecord:
    """The run's step by its name or task name; NotFound naming the steps otherwise."""
    found = record.steps.get(name) or next(
        (s for s in record.steps.values() if name in (s.name, s.task)), None
    )
    if found is None:
        names = ", ".join(repr(s) for s in record.steps)
        raise NotFound(f"run {record.run_id} has no step {name!r}; its steps are {names}")
    return found


@dataclass
class LogTail:
    """The end of a log: its text, where it came from (`step`, `report`, `run`, `cluster`,
    or None when there is none yet), and whether more came before."""

    text: str
    source: str | None
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "source": self.source, "truncated": self.truncated}


def _tail(path: Path, source: str) -> LogTail:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_LIMIT))
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return LogTail("", None, False)
    return LogTail(data.decode("utf-8", errors="replace"), source, size > LOG_LIMIT)


def local_log_tail(record: RunRecord, step: StepRecord | None) -> LogTail:
    """What a run on this machine printed: the step's log (else what its report kept), or
    the run's own log (the executor's, or kfp.local's, which also holds its steps')."""
    run_dir = Path(record.outputs)
    run_log = run_dir / RUN_LOGS.get(record.engine, RUN_LOGS["local"])
    if step is None:
        return _tail(run_log, "run")
    outputs = run_dir / "steps" / step.task
    found = _tail(outputs / LOG_FILE, "step")
    printed = _printed(outputs / REPORT_FILE) if found.source is None else None
    if printed is not None:
        found = LogTail(printed, "report", False)
    if found.source is None and record.engine == "kfp-local":
        found = _tail(run_log, "run")
    return found


class Runs:
    """Runs of every engine, as the front doors see them: found by id (or its start),
    listed, refreshed from their engine, cancelled, deleted, their logs read."""

    def __init__(
        self,
        config: CellPipe,
        *,
        home: Path | None = None,
        store: RunStore | None = None,
        kube: KubeSettings | None = None,
    ) -> None:
        self.config = config
        self.home = home or cellpipe_home()
        self.store = store or open_store(self.home)
        self.kube = kube or KubeSettings()

    def find(self, text: str) -> RunRecord:
        try:
            return find_run(self.store, text)
        except RunNotFound as exc:
            raise NotFound(str(exc)) from None

    def tracker(self, record: RunRecord) -> Any:
        return tracker_for(record, self.store, self.home, self.config, self.kube)

    def refresh(self, record: RunRecord) -> tuple[RunRecord, str | None]:
        """Ask the run's engine for its status; when it cannot say, the stored record and
        why (never an error: the last known status stands)."""
        if record.status in FINISHED:
            return record, None
        return refresh_quietly(self.tracker(record), record)

    def list_runs(
        self,
        notebook: str | None = None,
        *,
        engine: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        refresh: bool = False,
    ) -> tuple[list[RunRecord], list[str]]:
        """Runs newest first, and a warning for each whose engine could not be asked. Runs
        here are always refreshed (a run whose process died is not left Running); cluster
        runs with `refresh`."""
        shown: list[RunRecord] = []
        warnings = []
        for record in self.store.list(notebook):
            if engine and record.engine != engine:
                continue
            if refresh or record.engine in LOCAL_ENGINES:
                record, problem = self.refresh(record)
                if problem:
                    warnings.append(f"{record.run_id}: {problem}")
            if status and record.status != status:
                continue
            shown.append(record)
            if limit is not None and len(shown) >= limit:
                break
        return shown, warnings

    def cancel(self, record: RunRecord) -> RunRecord:
        """Stop the run where it runs (its engine, or its processes here)."""
        tracker = self.tracker(record)
        record, _ = refresh_quietly(tracker, record)
        if record.status in FINISHED:
            if isinstance(tracker, LocalTracker) and tracker.stop_leftovers(record):
                return self._stopped_leftovers(record)
            raise Conflict(
                f"run {record.run_id} has already ended: {record.status}", reason="finished"
            )
        try:
            cancelled: RunRecord = tracker.cancel(record)
        except ClusterError as exc:
            raise ClusterUnreachable(f"cannot cancel run {record.run_id}: {exc}") from None
        return cancelled

    def _stopped_leftovers(self, record: RunRecord) -> RunRecord:
        """A run whose process died but left some of its processes running, now stopped."""
        if record.status != RunStatus.SUCCEEDED:
            record.status = RunStatus.CANCELLED
        note = "cancelled: the process that ran it had stopped; what it left running was stopped"
        record.error = f"{record.error}\n{note}" if record.error else note
        self.store.update_run(record)
        return record

    def delete(
        self, record: RunRecord, *, force: bool = False, keep_remote: bool = False
    ) -> list[str]:
        """Forget the run here (record and folder) and, unless `keep_remote`, delete what it
        made in its engine; what was deleted there, for people."""
        tracker = self.tracker(record)
        record, _ = refresh_quietly(tracker, record)
        if record.status not in FINISHED and not force:
            raise Conflict(
                f"run {record.run_id} is {record.status}; cancel it first, or delete it anyway "
                "(force)",
                reason="running",
            )
        deleted: list[str] = []
        if not keep_remote:
            try:
                deleted = tracker.delete(record)
            except ClusterError as exc:
                raise ClusterUnreachable(
                    f"run {record.run_id} is kept: deleting it in its engine failed: {exc}"
                ) from None
        self.store.delete(record.run_id)
        return deleted

    def logs(self, record: RunRecord, step: str | None, follow: bool = False) -> Iterator[str]:
        """What the run (or its step) printed, followed while it goes on with `follow`."""
        if step is not None:
            find_step(record, step)
        try:
            yield from self.tracker(record).logs(record, step, follow)
        except ClusterError as exc:
            raise ClusterUnreachable(f"run {record.run_id}: {exc}") from None

    def log_tail(self, record: RunRecord, step: str | None) -> tuple[StepRecord | None, LogTail]:
        """The end of what the run (or its step) printed: files here, the pods' logs there."""
        found = find_step(record, step) if step is not None else None
        if self.config.engine_location(record.engine) != "cluster":
            return found, local_log_tail(record, found)
        text = "".join(self.logs(record, step))
        data = text.encode("utf-8")
        truncated = len(data) > LOG_LIMIT
        if truncated:
            text = data[-LOG_LIMIT:].decode("utf-8", errors="replace")
        return found, LogTail(text, "cluster", truncated)


__all__ = [
    "LocalTracker",
    "LogTail",
    "RunNotFound",
    "Runs",
    "find_run",
    "refresh_quietly",
    "tracker_for",
]
