"""Following runs of every engine: status, logs, cancel and delete.

Cluster runs (kfp and the training engines) ask their engine; runs on this machine (`local`,
`kfp-local`) are followed through the run store and their folder (runs/RUN_ID), and stopped
by signalling the processes that run their steps. A local run whose process died is not left
Running forever: its record names the process that made it (store.owner_alive).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cluster import set_status
from .k8s import ClusterError, KubeSettings
from .local_engine import LOG_FILE
from .store import RunRecord, RunStore, owner_alive
from .vocabulary import CLUSTER_ENGINES, FINISHED, KFP_ENGINE, TRAINING_ENGINES

RUN_LOGS = {"local": "prelude-log.txt", "kfp-local": "kfp-local-log.txt"}
REPORT_FILE = "cellpipe-report.json"


class RunNotFound(LookupError):
    """No run has that id (or id prefix); the message says so."""


def find_run(store: RunStore, text: str) -> RunRecord:
    """The run with this id, or the one run whose id starts with it."""
    record = store.get(text)
    if record is not None:
        return record
    matches = [r for r in store.list() if r.run_id.startswith(text)] if text else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(r.run_id for r in matches[:5])
        raise RunNotFound(f"{text!r} names {len(matches)} runs ({ids}...); give more of the id")
    raise RunNotFound(f"no run {text!r}; `cellpipe runs` lists them")


class LocalTracker:
    """Runs of the `local` and `kfp-local` engines, followed from any process."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def refresh(self, record: RunRecord) -> RunRecord:
        if record.status in FINISHED:
            return record
        if owner_alive(record.owner) is False:
            for step in record.steps.values():
                if step.status in ("Pending", "Running"):
                    step.status = "Cancelled"
                    step.error = "the process running the run stopped"
                    self.store.update_step(record.run_id, step)
            set_status(
                self.store,
                record,
                "Failed",
                f"the process that ran it ({record.owner}) stopped before the run ended",
            )
        return record

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
                if step.status in ("Pending", "Running"):
                    step.status, step.error = "Cancelled", "cancelled"
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
            if not follow and not path.is_file() and report.is_file():
                import json

                yield json.loads(report.read_text()).get("printed", "")
                return
        yield from _follow_file(path, lambda: self._ended(record.run_id), follow)

    def _ended(self, run_id: str) -> bool:
        current = self.store.get(run_id)
        if current is None:
            return True
        return self.refresh(current).status in FINISHED


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


def _signal_run_processes(record: RunRecord) -> list[int]:
    """SIGTERM to the top processes whose command line names the run's folder (the local
    executor; kfp.local's step processes), never to this process."""
    marker = str(Path(record.outputs))
    matching: dict[int, int] = {}  # pid -> parent pid
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker in command:
            matching[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tops = [pid for pid, parent in matching.items() if parent not in matching]
    for pid in tops:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    return tops


def tracker_for(
    record: RunRecord,
    store: RunStore,
    home: Path,
    *,
    kube: KubeSettings | None = None,
    kfp: Any = None,
) -> Any:
    """What follows this run: its cluster engine, or the local tracker."""
    if record.engine == KFP_ENGINE:
        from .kfp_engine import KfpEngine, KfpSettings

        settings = kfp or KfpSettings.from_environment()
        if kube is not None:
            settings.kube = kube
        return KfpEngine(settings, store, home)
    if record.engine in TRAINING_ENGINES:
        from .training import TrainingEngine

        return TrainingEngine(record.engine, kube=kube, store=store, home=home)
    return LocalTracker(store)


def refresh_quietly(tracker: Any, record: RunRecord) -> tuple[RunRecord, str | None]:
    """Refresh a run; when its engine cannot be reached, the stored record and why."""
    try:
        return tracker.refresh(record), None
    except ClusterError as exc:
        return record, str(exc)


__all__ = [
    "CLUSTER_ENGINES",
    "LocalTracker",
    "RunNotFound",
    "find_run",
    "refresh_quietly",
    "tracker_for",
]
