"""Runs off the caller's thread, for the front doors that must answer at once (the server,
the widgets): a pool of workers runs engines here and cluster submits; watchers hear of every
change; a run cancelled before it starts never starts; a run the engine did not end is ended
here (Failed with its error, or Cancelled), never lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import CellPipe
from .errors import Conflict
from .local_engine import RunRequest
from .notebooks import Prepared
from .store import (
    RunRecord,
    StepRecord,
    UnavailableStore,
    cellpipe_home,
    new_run_id,
    open_store_or_unavailable,
)
from .submitting import ClusterSubmit, SubmitCancelled, SubmitFailed
from .vocabulary import FINISHED, KFP_LOCAL_ENGINE, UNFINISHED, RunStatus

PROGRESS_LIMIT = 500  # a cluster run's messages kept while it is submitted (the last ones)
# kfp.local keeps its settings process-wide and the engine redirects sys.stdout while it
# runs, so runs of these engines go one at a time.
ONE_AT_A_TIME = frozenset({KFP_LOCAL_ENGINE})


@dataclass
class _Active:
    """A run this server started and that has not ended."""

    request: RunRequest | None  # None: a cluster run (`cluster` submits it)
    placeholder: RunRecord  # what GET answers until the engine has recorded the run
    engine: str
    engine_class: Any
    cancel: threading.Event  # the same event as request.cancel
    future: Future[None] | None = None
    started: bool = False
    cluster: Any = None  # cluster.ClusterSubmit
    progress: list[str] | None = None  # a cluster run's messages while it is submitted
    listener: Callable[[str, StepRecord], None] | None = None  # the caller's, for each step

    @property
    def cancellable(self) -> bool:
        """Whether a started run can still be stopped (a cluster run: anything not sent yet
        is never sent; what was sent is cancelled in its engine once the submit returns)."""
        return self.cluster is not None or bool(getattr(self.engine_class, "cancellable", False))


class BackgroundRunner:
    """Runs engines off the caller's thread and tells watchers when a run changes."""

    def __init__(
        self, config: CellPipe, home: Path | None = None, log: logging.Logger | None = None
    ) -> None:
        self.config = config
        self.home = home or cellpipe_home()
        self.log = log or logging.getLogger(__name__)
        # A store that cannot be used does not stop the runner starting: every use of it
        # answers with why (a StoreError), and `store_error` says so at once.
        self.store = open_store_or_unavailable(self.home)
        self.store_error: str | None = None
        if isinstance(self.store, UnavailableStore):
            self.store_error = self.store.error.message
            self.log.error("cellpipe: %s", self.store_error)
        self._pool = ThreadPoolExecutor(config.concurrent_runs, thread_name_prefix="cellpipe-run")
        self._serial = ThreadPoolExecutor(1, thread_name_prefix="cellpipe-run-serial")
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._watchers: dict[str, set[Callable[[], object]]] = {}

    def submit_cluster(self, submit: ClusterSubmit) -> RunRecord:
        """Submit a cluster run in the background: its check of the
        GPUs, its build and its submit; the placeholder record (Pending) comes back at once."""
        if isinstance(self.store, UnavailableStore):
            raise self.store.error
        placeholder = submit.placeholder(self.home)
        active = _Active(
            None, placeholder, placeholder.engine, None, threading.Event(), cluster=submit
        )
        active.progress = []
        with self._lock:
            self._active[placeholder.run_id] = active
            active.future = self._pool.submit(self._work, active)
        return placeholder

    def submit(
        self,
        prepared: Prepared,
        engine: str,
        parameters: dict[str, Any],
        *,
        use_cache: bool = True,
        listener: Callable[[str, StepRecord], None] | None = None,
    ) -> RunRecord:
        """Start a run here in the background; its record (Pending) comes back at once.
        `listener` hears each step's events (from the engine's thread)."""
        assert prepared.path is not None, "a run needs the notebook's path"
        if isinstance(self.store, UnavailableStore):
            raise self.store.error
        pipeline, notebook = prepared.pipeline, prepared.path
        run_id = new_run_id()
        cancel = threading.Event()
        request = RunRequest(
            pipeline,
            notebook,
            parameters,
            use_cache=use_cache,
            run_id=run_id,
            cancel=cancel,
            notebook_hash=prepared.content_hash(),  # what runs: the content sent, if any
            source=prepared.notebook,
        )
        placeholder = RunRecord(
            run_id=run_id,
            notebook=str(notebook.resolve()),
            pipeline=pipeline.settings.name,
            engine=engine,
            status=RunStatus.PENDING,
            created=time.time(),
            outputs=str(self.home / "runs" / run_id),
            notebook_hash=prepared.content_hash(),
            parameters=request.parameters,
            steps={s.name: StepRecord(s.name, s.task) for s in pipeline.steps},
        )
        active = _Active(request, placeholder, engine, self.config.engine_class(engine), cancel)
        active.listener = listener
        pool = self._serial if engine in ONE_AT_A_TIME else self._pool
        with self._lock:
            self._active[run_id] = active
            active.future = pool.submit(self._work, active)
        return placeholder

    def _work(self, active: _Active) -> None:
        run_id = active.placeholder.run_id
        try:
            with self._lock:
                if active.cancel.is_set():
                    self._record_end(active, RunStatus.CANCELLED, "cancelled before it started")
                    return
                active.started = True
            if active.cluster is not None:
                self._submit(active)
            else:
                engine = active.engine_class(store=self.store, home=self.home)
                engine.run(active.request, self._listener(active))
        except BaseException as exc:  # recorded, never lost: a run ends Failed with its error
            self.log.exception("cellpipe: run %s failed in its engine", run_id)
            self._record_end(active, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._active.pop(run_id, None)
            self._notify(run_id)

    def _listener(self, active: _Active) -> Callable[[str, StepRecord], None]:
        run_id = active.placeholder.run_id

        def listen(event: str, step: StepRecord) -> None:
            if active.listener is not None:
                active.listener(event, step)
            self._notify(run_id)

        return listen

    def _submit(self, active: _Active) -> None:
        """A cluster run: check, build, submit (cluster.ClusterSubmit.run); what stops it
        before its engine is recorded as its end, with the CLI's words."""
        run_id = active.placeholder.run_id

        def say(message: str) -> None:
            with self._lock:
                if active.progress is not None:
                    active.progress.append(message)
                    del active.progress[:-PROGRESS_LIMIT]
            self._notify(run_id)

        try:
            record = active.cluster.run(say, active.cancel.is_set)
            with self._lock:  # from now on a cancel goes to the engine, through tracking
                self._active.pop(run_id, None)
                cancelled = active.cancel.is_set()
            if cancelled:  # asked while it was being sent
                active.cluster.cancel_sent(record)
        except SubmitFailed as exc:
            self.log.info("cellpipe: run %s was not submitted: %s", run_id, exc)
            self._record_end(active, RunStatus.FAILED, str(exc))
        except SubmitCancelled:
            self._record_end(active, RunStatus.CANCELLED, "cancelled before it was submitted")

    def _record_end(self, active: _Active, status: str, error: str) -> None:
        """End a run the engine did not end (or never recorded) with `status` and `error`."""
        run_id = active.placeholder.run_id
        record = self.store.get(run_id)
        if record is None:
            placeholder = active.placeholder
            record = self.store.create(
                placeholder.notebook,
                placeholder.pipeline,
                placeholder.engine,
                placeholder.parameters,
                [(s.name, s.task) for s in placeholder.steps.values()],
                self.home / "runs",
                run_id,
                notebook_hash=placeholder.notebook_hash,
                image=placeholder.image,
                gpus=placeholder.gpus,
                external=placeholder.external,
            )
        if record.status in FINISHED:
            return
        for step in record.steps.values():
            if step.status in UNFINISHED:
                step.status = RunStatus.CANCELLED
                step.error = step.error or "the run ended before this step finished"
                self.store.update_step(run_id, step)
        record.status, record.error, record.finished = status, error, time.time()
        self.store.update_run(record)

    def get(self, run_id: str) -> RunRecord | None:
        record: RunRecord | None = self.store.get(run_id)
        if record is None:
            with self._lock:
                active = self._active.get(run_id)
            if active is not None:
                record = self.store.get(run_id) or active.placeholder
        return record

    def records(self, notebook: Path | None = None) -> list[RunRecord]:
        records: list[RunRecord] = self.store.list(str(notebook) if notebook else None)
        known = {r.run_id for r in records}
        with self._lock:
            waiting = [a.placeholder for a in self._active.values()]
        for placeholder in waiting:
            if placeholder.run_id not in known and (
                notebook is None or placeholder.notebook == str(notebook)
            ):
                records.append(placeholder)
        # a run here is ordered by when it was asked for (its placeholder), not by when its
        # engine recorded it: a run that waited for a slot is newer than the one holding it
        asked = {p.run_id: p.created for p in waiting}
        return sorted(records, key=lambda r: asked.get(r.run_id, r.created), reverse=True)

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Wait until the run ends here (or `timeout` seconds pass); at once if it is not
        running here."""
        with self._lock:
            active = self._active.get(run_id)
        if active is not None and active.future is not None:
            with contextlib.suppress(Exception):
                active.future.result(timeout=timeout)

    def cancellable(self, run_id: str) -> bool:
        """Whether the run, running here, can be stopped midway."""
        with self._lock:
            active = self._active.get(run_id)
            return active is not None and active.cancellable

    def is_active(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._active

    def active_ids(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def progress(self, run_id: str) -> list[str] | None:
        """A cluster run's messages while this server submits it (None: none)."""
        with self._lock:
            active = self._active.get(run_id)
            return list(active.progress) if active and active.progress is not None else None

    def cancel(self, run_id: str) -> Future[None] | None:
        """Stop a run this server runs; the future ends when the run has ended. None: the
        run is not running here (it ended, or another process runs it)."""
        with self._lock:
            active = self._active.get(run_id)
            if active is not None and active.started:
                if not active.cancellable:
                    raise Conflict(
                        f"run {run_id}: the {active.engine} engine cannot stop a run once it "
                        "has started",
                        reason="not_cancellable",
                    )
            elif active is not None and active.future is not None and active.future.cancel():
                # still queued: it will never start, so it ends here
                self._active.pop(run_id)
                self._record_end(active, RunStatus.CANCELLED, "cancelled before it started")
            if active is not None:
                active.cancel.set()  # a worker about to start it records it Cancelled instead
        if active is None:
            return None
        self._notify(run_id)
        assert active.future is not None
        return active.future

    def watch(self, run_id: str, callback: Callable[[], object]) -> Callable[[], object]:
        """Call `callback` (from any thread) whenever the run changes; returns the unwatch."""
        with self._lock:
            self._watchers.setdefault(run_id, set()).add(callback)

        def unwatch() -> None:
            with self._lock:
                callbacks = self._watchers.get(run_id, set())
                callbacks.discard(callback)
                if not callbacks:
                    self._watchers.pop(run_id, None)

        return unwatch

    def notify(self, run_id: str) -> None:
        """Tell the run's watchers it changed (a change made outside the engine's thread)."""
        self._notify(run_id)

    def _notify(self, run_id: str) -> None:
        with self._lock:
            callbacks = list(self._watchers.get(run_id, ()))
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a watcher gone wrong must not stop the run
                self.log.debug("cellpipe: run watcher failed", exc_info=True)

    def shutdown(self, wait_seconds: float = 10.0) -> None:
        """The server stops: cancel every run it started, wait a little for them to end."""
        with self._lock:
            actives = list(self._active.values())
        for active in actives:
            with contextlib.suppress(Conflict):  # an engine that cannot stop midway goes on
                self.cancel(active.placeholder.run_id)
        deadline = time.monotonic() + wait_seconds
        for active in actives:
            if active.future is not None:
                with contextlib.suppress(Exception):
                    active.future.result(timeout=max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._serial.shutdown(wait=False, cancel_futures=True)
