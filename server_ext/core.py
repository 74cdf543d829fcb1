"""What the REST API does, without tornado: requests in (JSON dicts), JSON or ApiError out.

The handlers (handlers.py) only parse, authorise and write; everything they answer comes from
here, over the converter and the launcher. Long work (a run) goes to a thread pool; a run is
answered at once with its id, and followed through the run store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellpipe import __version__
from cellpipe.converter import (
    NotebookError,
    Pipeline,
    build_pipeline,
    check_notebook,
    read_notebook,
)
from cellpipe.converter.params import ParameterError, parameter_values
from cellpipe.launcher import RunRecord, RunRequest, RunStore, StepRecord, cellpipe_home
from cellpipe.launcher.local_engine import LOG_FILE, machine_has_gpu
from cellpipe.launcher.store import new_run_id
from cellpipe.runtime.step import REPORT_FILE

from . import API_NAMESPACE

FINISHED = ("Succeeded", "Failed", "Cancelled")
LOG_LIMIT = 1 << 20  # the last MiB of a log; `truncated` says when there was more
# kfp.local keeps its settings process-wide and the engine redirects sys.stdout while it
# runs, so runs of these engines go one at a time.
ONE_AT_A_TIME = frozenset({"kfp-local"})


class ApiError(Exception):
    """A request refused: HTTP status, a short machine reason, words for people, extra JSON."""

    def __init__(self, status: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "message": self.message, "reason": self.reason}


# --- notebooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookRef:
    """A notebook named by its Jupyter API path (relative to the server root, '/'-separated)."""

    api_path: str
    os_path: Path


def resolve_notebook(
    root: Path, path: Any, *, allow_hidden: bool = False, must_exist: bool = True
) -> NotebookRef:
    """The file an API path names, refusing anything that leaves the root.

    As in Jupyter's contents API, a path is relative to the server root and a leading '/'
    means the root: `/etc/passwd` is ROOT/etc/passwd. `..` that climbs out of the root, and
    symbolic links that lead out of it, are refused (403); hidden files are not found unless
    the contents manager allows them.
    """
    if not isinstance(path, str) or not path.strip("/"):
        raise ApiError(400, "bad_path", "name the notebook: 'path' is its path under the root")
    if "\0" in path:
        raise ApiError(400, "bad_path", f"{path!r}: not a valid path")
    relative = path.lstrip("/")
    root = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ApiError(
            403,
            "outside_root",
            f"{path}: outside the server's root; notebook paths are relative to the root",
        )
    api_path = target.relative_to(root).as_posix()
    if not allow_hidden and any(part.startswith(".") for part in Path(api_path).parts):
        raise ApiError(404, "not_found", f"{path}: no such notebook")
    if must_exist and not target.is_file():
        raise ApiError(404, "not_found", f"{path}: no such notebook")
    return NotebookRef(api_path, target)


# --- the service -------------------------------------------------------------------------------


class CellPipeService:
    """Everything the REST API offers. `config` is a cellpipe.config.CellPipe."""

    def __init__(
        self,
        config: Any,
        root: Path,
        *,
        allow_hidden: bool = False,
        log: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.root = root.resolve()
        self.allow_hidden = allow_hidden
        self.log = log or logging.getLogger(__name__)
        self.runs = RunManager(config, log=self.log)

    # -- compile ----------------------------------------------------------------------------
    def compile(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /compile: {"path"} or {"content", "path"?}, optional "registry", "base_image",
        "yaml" (true: the KFP pipeline YAML too)."""
        pipeline, _, options = self._pipeline(body, local_only=False)
        result: dict[str, Any] = pipeline.to_json()
        if body.get("yaml"):
            from cellpipe.converter import compile_yaml

            result["yaml"] = compile_yaml(pipeline, options)
        return result

    def _load(self, body: dict[str, Any]) -> tuple[dict[str, Any], NotebookRef | None, str]:
        """The notebook (as a dict), where it lives, and the name people see in messages."""
        content = body.get("content")
        if content is None:
            saved = resolve_notebook(self.root, body.get("path"), allow_hidden=self.allow_hidden)
            try:
                return read_notebook(saved.os_path), saved, saved.api_path
            except NotebookError as exc:
                raise ApiError(400, "not_a_notebook", f"{saved.api_path}: {exc}") from None
        ref = None
        if body.get("path") is not None:
            ref = resolve_notebook(
                self.root, body["path"], allow_hidden=self.allow_hidden, must_exist=False
            )
        name = ref.api_path if ref else "notebook.ipynb"
        try:
            check_notebook(content)
        except NotebookError as exc:
            raise ApiError(400, "not_a_notebook", f"{name}: {exc}") from None
        return content, ref, name

    def _options(self, body: dict[str, Any], notebook: Any, local_only: bool) -> Any:
        metadata = notebook.get("metadata") if isinstance(notebook, dict) else None
        explicit = {key: body.get(key) for key in ("registry", "base_image")}
        for key, value in explicit.items():
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "bad_request", f"'{key}' must be text")
        return self.config.compile_options(metadata or {}, **explicit, local_only=local_only)

    def _pipeline(
        self, body: dict[str, Any], *, local_only: bool
    ) -> tuple[Pipeline, NotebookRef | None, Any]:
        """The compiled pipeline, where its notebook lives, and the CompileOptions used."""
        notebook, ref, name = self._load(body)
        options = self._options(body, notebook, local_only)
        pipeline = build_pipeline(notebook, ref.api_path if ref else name, options)
        if pipeline.errors:
            raise ApiError(
                400,
                "notebook_errors",
                "\n".join(error.for_people(name) for error in pipeline.errors),
                **pipeline.to_json(),
            )
        return pipeline, ref, options

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /runs: {"path", "content"?, "engine"?, "parameters"?: {name: value},
        "use_cache"?: true, "require_gpus"?: false}; the run goes on in the background."""
        engine = body.get("engine") or self.config.default_engine
        if engine not in self.config.engines:
            raise ApiError(
                400,
                "unknown_engine",
                f"no engine {engine!r}; the engines are {', '.join(self.config.engines)}",
            )
        if body.get("path") is None:
            raise ApiError(400, "bad_path", "name the notebook: a run needs its 'path'")
        pipeline, ref, _ = self._pipeline(body, local_only=True)
        assert ref is not None
        parameters = self._parameters(ref.api_path, pipeline, body.get("parameters"))
        warnings = [d.to_json() for d in pipeline.warnings]
        gpu_steps = [s for s in pipeline.steps if s.resources.gpu]
        if gpu_steps and not machine_has_gpu():
            names = ", ".join(
                f"{s.name!r} ({s.resources.gpu.count})" for s in gpu_steps if s.resources.gpu
            )
            if body.get("require_gpus"):
                raise ApiError(
                    400,
                    "no_gpus",
                    f"{ref.api_path}: steps {names} ask for GPUs and this machine has none",
                )
            warnings.append(
                {
                    "message": f"steps {names} ask for GPUs; this machine has none, so they run "
                    "on the CPU (require_gpus makes this an error)",
                    "cell_index": None,
                    "cell_id": None,
                    "step": None,
                }
            )
        record = self.runs.submit(
            pipeline,
            ref.os_path,
            engine,
            parameters,
            use_cache=body.get("use_cache", True) is not False,
        )
        return {**self.run_json(record), "warnings": warnings}

    def _parameters(self, name: str, pipeline: Pipeline, given: Any) -> dict[str, Any]:
        """Values typed by their parameter's default, with the CLI's words when they do not fit.

        A string is read as the CLI reads `-p NAME=TEXT`; any other JSON value must be of the
        parameter's type.
        """
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise ApiError(400, "bad_request", "'parameters' must be an object {name: value}")
        assignments = []
        for key, value in given.items():
            if not key.isidentifier():
                known = ", ".join(pipeline.parameters) or "none"
                raise ApiError(
                    400,
                    "bad_parameter",
                    f"{name}: {key!r}: no such parameter; the parameters are {known}",
                )
            text = value if isinstance(value, str) else json.dumps(value)
            assignments.append(f"{key}={text}")
        try:
            values: dict[str, Any] = parameter_values(pipeline.parameters, assignments)
        except ParameterError as exc:
            raise ApiError(400, "bad_parameter", f"{name}: {exc}") from None
        return values

    def list_runs(self, notebook: str | None) -> dict[str, Any]:
        """GET /runs[?notebook=PATH]: newest first."""
        os_path = None
        if notebook:
            os_path = resolve_notebook(
                self.root, notebook, allow_hidden=self.allow_hidden, must_exist=False
            ).os_path
        return {"runs": [self.run_json(r) for r in self.runs.records(os_path)]}

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.run_json(self._record(run_id))

    def _record(self, run_id: str) -> RunRecord:
        record = self.runs.get(run_id)
        if record is None:
            raise ApiError(404, "not_found", f"no run {run_id}")
        return record

    def run_json(self, record: RunRecord) -> dict[str, Any]:
        """The run as the CLI's --format json shows it, plus its notebook's API path."""
        result: dict[str, Any] = record.to_json()
        notebook = Path(record.notebook)
        result["path"] = (
            notebook.relative_to(self.root).as_posix()
            if notebook.is_relative_to(self.root)
            else None
        )
        return result

    def delete_run(self, run_id: str, force: bool = False) -> None:
        """DELETE /runs/ID: the record and its folder (runs/RUN_ID), not shared cached steps."""
        if self.runs.is_active(run_id):
            raise ApiError(409, "running", f"run {run_id} is running; cancel it first")
        record = self._record(run_id)
        if record.status not in FINISHED and not force:
            raise ApiError(
                409,
                "running",
                f"run {run_id} is {record.status} in another process (the CLI?); stop it "
                "there first, or delete with force=true if that process is gone",
            )
        self.runs.store.delete(run_id)

    def run_logs(self, run_id: str, step_name: str | None) -> dict[str, Any]:
        """GET /runs/ID/logs[?step=NAME]: what the step printed (its log, tracebacks included);
        without a step, the run's own log (the executor's, or kfp.local's)."""
        record = self._record(run_id)
        run_dir = Path(record.outputs)
        run_log = run_dir / (
            "kfp-local-log.txt" if record.engine == "kfp-local" else "prelude-log.txt"
        )
        if step_name is None:
            return {
                "run_id": run_id,
                "step": None,
                "task": None,
                "status": record.status,
                **_read_log(run_log, "run"),
            }
        step = record.steps.get(step_name) or next(
            (s for s in record.steps.values() if s.task == step_name), None
        )
        if step is None:
            raise ApiError(
                404,
                "not_found",
                f"run {run_id} has no step {step_name!r}; its steps are "
                f"{', '.join(repr(s) for s in record.steps)}",
            )
        outputs = run_dir / "steps" / step.task
        found = _read_log(outputs / LOG_FILE, "step")
        if found["source"] is None and (outputs / REPORT_FILE).is_file():
            report = json.loads((outputs / REPORT_FILE).read_text(encoding="utf-8"))
            found = {"text": report.get("printed", ""), "source": "report", "truncated": False}
        if found["source"] is None and record.engine == "kfp-local":
            found = _read_log(run_log, "run")  # kfp.local writes one log for the whole run
        return {
            "run_id": run_id,
            "step": step.name,
            "task": step.task,
            "status": step.status,
            "cached": step.cached,
            **found,
        }

    # -- the rest ---------------------------------------------------------------------------
    def gpus(self) -> dict[str, Any]:
        """GET /gpus: the configured GPU types (the cluster's inventory is a later issue)."""
        return {
            "source": "configuration",
            "resource": self.config.gpu_resource,
            "label": self.config.gpu_label,
            "types": self.config.gpu_type_list(),
            "this_machine": {"has_gpu": machine_has_gpu()},
        }

    def config_json(self) -> dict[str, Any]:
        """GET /config: every setting but the secrets."""
        public: dict[str, Any] = self.config.public()
        return {"version": __version__, "api": API_NAMESPACE, **public}


def _read_log(path: Path, source: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_LIMIT))
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return {"text": "", "source": None, "truncated": False}
    return {
        "text": data.decode("utf-8", errors="replace"),
        "source": source,
        "truncated": size > LOG_LIMIT,
    }


# --- runs in the background --------------------------------------------------------------------


@dataclass
class _Active:
    """A run this server started and that has not ended."""

    request: RunRequest
    placeholder: RunRecord  # what GET answers until the engine has recorded the run
    engine: str
    engine_class: Any
    cancel: threading.Event  # the same event as request.cancel
    future: Future[None] | None = None
    started: bool = False


class RunManager:
    """Runs engines off the request thread and tells watchers when a run changes."""

    def __init__(self, config: Any, home: Path | None = None, log: logging.Logger | None = None):
        self.config = config
        self.home = home or cellpipe_home()
        self.store = RunStore(self.home / "runs.sqlite")
        self.log = log or logging.getLogger(__name__)
        self._pool = ThreadPoolExecutor(config.concurrent_runs, thread_name_prefix="cellpipe-run")
        self._serial = ThreadPoolExecutor(1, thread_name_prefix="cellpipe-run-serial")
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._watchers: dict[str, set[Callable[[], object]]] = {}

    def submit(
        self,
        pipeline: Pipeline,
        notebook: Path,
        engine: str,
        parameters: dict[str, Any],
        *,
        use_cache: bool = True,
    ) -> RunRecord:
        """Start a run in the background; its record (Pending) comes back at once."""
        run_id = new_run_id()
        cancel = threading.Event()
        request = RunRequest(
            pipeline, notebook, parameters, use_cache=use_cache, run_id=run_id, cancel=cancel
        )
        placeholder = RunRecord(
            run_id=run_id,
            notebook=str(notebook.resolve()),
            pipeline=pipeline.settings.name,
            engine=engine,
            status="Pending",
            created=time.time(),
            outputs=str(self.home / "runs" / run_id),
            parameters=request.parameters,
            steps={s.name: StepRecord(s.name, s.task) for s in pipeline.steps},
        )
        active = _Active(request, placeholder, engine, self.config.engine_class(engine), cancel)
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
                    self._record_end(active, "Cancelled", "cancelled before it started")
                    return
                active.started = True
            engine = active.engine_class(store=self.store, home=self.home)
            engine.run(active.request, lambda _event, _step: self._notify(run_id))
        except BaseException as exc:  # recorded, never lost: a run ends Failed with its error
            self.log.exception("cellpipe: run %s failed in its engine", run_id)
            self._record_end(active, "Failed", f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._active.pop(run_id, None)
            self._notify(run_id)

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
            )
        if record.status in FINISHED:
            return
        for step in record.steps.values():
            if step.status in ("Pending", "Running"):
                step.status = "Cancelled"
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
        return sorted(records, key=lambda r: r.created, reverse=True)

    def is_active(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._active

    def active_ids(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def cancel(self, run_id: str) -> Future[None]:
        """Stop a run this server started; the future ends when the run has ended."""
        with self._lock:
            active = self._active.get(run_id)
            if active is not None and active.started:
                if not getattr(active.engine_class, "cancellable", False):
                    raise ApiError(
                        409,
                        "not_cancellable",
                        f"run {run_id}: the {active.engine} engine cannot stop a run once it "
                        "has started",
                    )
            elif active is not None and active.future is not None and active.future.cancel():
                # still queued: it will never start, so it ends here
                self._active.pop(run_id)
                self._record_end(active, "Cancelled", "cancelled before it started")
            if active is not None:
                active.cancel.set()  # a worker about to start it records it Cancelled instead
        if active is None:
            record = self.store.get(run_id)
            if record is None:
                raise ApiError(404, "not_found", f"no run {run_id}")
            if record.status in FINISHED:
                raise ApiError(409, "finished", f"run {run_id} has already ended: {record.status}")
            raise ApiError(
                409,
                "not_started_here",
                f"run {run_id} was not started by this server (the CLI?); stop it where it runs",
            )
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
            with contextlib.suppress(ApiError):  # an engine that cannot stop midway goes on
                self.cancel(active.placeholder.run_id)
        deadline = time.monotonic() + wait_seconds
        for active in actives:
            if active.future is not None:
                with contextlib.suppress(Exception):
                    active.future.result(timeout=max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._serial.shutdown(wait=False, cancel_futures=True)
