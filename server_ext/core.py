"""What the REST API does, without tornado: requests in (JSON dicts), JSON or ApiError out.

The handlers (handlers.py) only parse, authorise and write; everything they answer comes from
here, over the converter and the launcher. Long work (a run, a submit to a cluster, a build)
goes to a thread pool; it is answered at once with its id. Runs are followed through the run
store (cluster runs through their engine, as `cellpipe status` does: cluster.py); builds live
in this process's memory (builds.py).
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
from cellpipe.launcher.vocabulary import CLUSTER_ENGINES
from cellpipe.runtime.step import REPORT_FILE

from . import API_NAMESPACE
from .builds import BuildManager

FINISHED = ("Succeeded", "Failed", "Cancelled")
LOG_LIMIT = 1 << 20  # the last MiB of a log; `truncated` says when there was more
PROGRESS_LIMIT = 500  # a cluster run's messages kept while it is submitted (the last ones)
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
        self.builds = BuildManager(log=self.log)

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
        pipeline, ref, options, _ = self._compiled(body, local_only=local_only)
        return pipeline, ref, options

    def _compiled(
        self, body: dict[str, Any], *, local_only: bool
    ) -> tuple[Pipeline, NotebookRef | None, Any, dict[str, Any]]:
        """As _pipeline, and the notebook itself (as a dict)."""
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
        return pipeline, ref, options, notebook

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /runs: {"path", "content"?, "engine"?, "parameters"?: {name: value},
        "use_cache"?: true, "require_gpus"?: false}; the run goes on in the background.

        A cluster engine (kfp, pytorchjob, tfjob, xgboostjob, mpijob, trainjob) takes what
        `cellpipe submit` takes: "gpus"?: {STEP: "N[:TYPE]"}, "image"? (no build), "registry"?,
        "builder"? (append | engine), "namespace"?, "experiment"? (kfp); "step"?, "workers"?,
        "gpus_per_worker"?, "gpu_type"?, "pvc"?, "storage_size"?, "storage_class"?, "runtime"?
        (training engines)."""
        engine = body.get("engine") or self.config.default_engine
        offered = self.config.offered_engines()
        if engine not in offered:
            if engine in CLUSTER_ENGINES:
                raise ApiError(
                    400,
                    "unknown_engine",
                    f"the {engine} engine is not configured on this server: "
                    + (
                        "set c.CellPipe.kfp_host, or give the server a kubeconfig"
                        if engine == "kfp"
                        else "give the server a kubeconfig ($KUBECONFIG or ~/.kube/config)"
                    ),
                )
            raise ApiError(
                400,
                "unknown_engine",
                f"no engine {engine!r}; the engines are {', '.join(offered)}",
            )
        if body.get("path") is None:
            raise ApiError(400, "bad_path", "name the notebook: a run needs its 'path'")
        if engine in CLUSTER_ENGINES:
            return self._start_cluster_run(body, engine)
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

    def _start_cluster_run(self, body: dict[str, Any], engine: str) -> dict[str, Any]:
        from .cluster import prepare

        if body.get("registry") is not None and not isinstance(body["registry"], str):
            raise ApiError(400, "bad_request", "'registry' must be text")
        pipeline, ref, options, notebook = self._compiled(body, local_only=False)
        assert ref is not None
        parameters = self._parameters(ref.api_path, pipeline, body.get("parameters"))
        warnings = [
            d.to_json()
            for d in pipeline.warnings
            # an image given makes the registry moot, as for `cellpipe submit --image`
            if not (body.get("image") and "no registry is configured" in d.message)
        ]
        submit = prepare(
            self.config,
            self.runs.store,
            self.runs.home,
            body,
            engine,
            name=ref.api_path,
            notebook_path=ref.os_path,
            notebook=notebook,
            pipeline=pipeline,
            options=options,
            parameters=parameters,
        )
        record = self.runs.submit_cluster(submit)
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
        """GET /runs/ID. A cluster run's status is asked of its engine first (as `cellpipe
        status`); when the engine cannot say, the last known status, and `refresh_error`."""
        record = self._record(run_id)
        if record.engine not in CLUSTER_ENGINES:
            return self.run_json(record)
        problem = None
        refreshed = False
        if record.status not in FINISHED and not self.runs.is_active(run_id):
            problem = self._refresh(record)
            refreshed = problem is None
        return {**self.run_json(record), "refreshed": refreshed, "refresh_error": problem}

    def _refresh(self, record: RunRecord) -> str | None:
        from .cluster import refresh

        try:
            return refresh(self.config, record, self.runs.store, self.runs.home)
        except Exception as exc:  # never an error: the last known status stands
            self.log.warning("cellpipe: refreshing run %s failed", record.run_id, exc_info=True)
            return f"{type(exc).__name__}: {exc}"

    def _tracker(self, record: RunRecord) -> Any:
        from .cluster import tracker

        return tracker(self.config, record, self.runs.store, self.runs.home)

    def _record(self, run_id: str) -> RunRecord:
        record = self.runs.get(run_id)
        if record is None:
            raise ApiError(404, "not_found", f"no run {run_id}")
        return record

    def run_json(self, record: RunRecord) -> dict[str, Any]:
        """The run as the CLI's --format json shows it, plus its notebook's API path (and,
        while this server submits a cluster run, its `progress` messages so far)."""
        result: dict[str, Any] = record.to_json()
        notebook = Path(record.notebook)
        result["path"] = (
            notebook.relative_to(self.root).as_posix()
            if notebook.is_relative_to(self.root)
            else None
        )
        progress = self.runs.progress(record.run_id)
        if progress is not None:
            result["progress"] = progress
        return result

    def cancel_run(self, run_id: str) -> Future[None] | None:
        """POST /runs/ID/cancel: a run this server runs is stopped here (the future ends when
        it has ended); a cluster run is cancelled in its engine (None: done)."""
        ended = self.runs.cancel(run_id)
        if ended is not None:
            return ended
        record = self._record(run_id)
        if record.engine in CLUSTER_ENGINES:
            from cellpipe.launcher.k8s import ClusterError

            tracker = self._tracker(record)
            if record.status not in FINISHED:
                self._refresh(record)
            if record.status in FINISHED:
                raise ApiError(409, "finished", f"run {run_id} has already ended: {record.status}")
            try:
                tracker.cancel(record)
            except ClusterError as exc:
                raise ApiError(502, "cluster_error", f"cannot cancel run {run_id}: {exc}") from None
            self.runs.notify(run_id)
            return None
        if record.status in FINISHED:
            raise ApiError(409, "finished", f"run {run_id} has already ended: {record.status}")
        raise ApiError(
            409,
            "not_started_here",
            f"run {run_id} was not started by this server (the CLI?); stop it where it runs",
        )

    def delete_run(self, run_id: str, force: bool = False, keep_remote: bool = False) -> None:
        """DELETE /runs/ID: the record and its folder (runs/RUN_ID), not shared cached steps;
        a cluster run is deleted in its engine too (as `cellpipe delete`) unless keep_remote."""
        if self.runs.is_active(run_id):
            raise ApiError(409, "running", f"run {run_id} is running; cancel it first")
        record = self._record(run_id)
        if record.engine in CLUSTER_ENGINES:
            self._delete_cluster_run(record, force, keep_remote)
            return
        if record.status not in FINISHED and not force:
            raise ApiError(
                409,
                "running",
                f"run {run_id} is {record.status} in another process (the CLI?); stop it "
                "there first, or delete with force=true if that process is gone",
            )
        self.runs.store.delete(run_id)

    def _delete_cluster_run(self, record: RunRecord, force: bool, keep_remote: bool) -> None:
        from cellpipe.launcher.k8s import ClusterError

        run_id = record.run_id
        if record.status not in FINISHED:
            self._refresh(record)
        if record.status not in FINISHED and not force:
            raise ApiError(
                409,
                "running",
                f"run {run_id} is {record.status}; cancel it first, or delete it anyway with "
                "force=true",
            )
        if not keep_remote:
            try:
                self._tracker(record).delete(record)
            except ClusterError as exc:
                raise ApiError(
                    502,
                    "cluster_error",
                    f"run {run_id} is kept: deleting it in its engine failed: {exc} "
                    "(keep_remote=true forgets it here only)",
                ) from None
        self.runs.store.delete(run_id)

    def run_logs(self, run_id: str, step_name: str | None) -> dict[str, Any]:
        """GET /runs/ID/logs[?step=NAME]: what the step printed (its log, tracebacks included);
        without a step, the run's own log (the executor's, or kfp.local's)."""
        record = self._record(run_id)
        if record.engine in CLUSTER_ENGINES:
            return self._cluster_logs(record, step_name)
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

    def _cluster_logs(self, record: RunRecord, step_name: str | None) -> dict[str, Any]:
        """A cluster run's logs, from its pods through its engine (as `cellpipe logs`)."""
        from .cluster import read_logs

        step = None
        if step_name is not None:
            step = next((s for s in record.steps.values() if step_name in (s.name, s.task)), None)
            if step is None:
                raise ApiError(
                    404,
                    "not_found",
                    f"run {record.run_id} has no step {step_name!r}; its steps are "
                    f"{', '.join(repr(s) for s in record.steps)}",
                )
        if self.runs.is_active(record.run_id):
            text = "the run is being submitted; its pods have printed nothing yet\n"
        else:
            text = read_logs(self.config, record, self.runs.store, self.runs.home, step_name)
        data = text.encode("utf-8")
        truncated = len(data) > LOG_LIMIT
        if truncated:
            text = data[-LOG_LIMIT:].decode("utf-8", errors="replace")
        return {
            "run_id": record.run_id,
            "step": step.name if step else None,
            "task": step.task if step else None,
            "status": step.status if step else record.status,
            "text": text,
            "source": "cluster",
            "truncated": truncated,
        }

    # -- builds -----------------------------------------------------------------------------
    def start_build(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /builds: {"path", "content"?, "registry"?, "builder"? (append | engine |
        kaniko), "base"?, "max_file_size"? (MB)}; defaults from metadata.cellpipe, then
        c.CellPipe (registry, base_image; builder when a config file sets it, else append, as
        `cellpipe submit`). The build goes on in the background; kaniko writes its Job and
        context to cellpipe-build/ beside the notebook."""
        from cellpipe.launcher.build import BUILDERS, BuildRequest
        from cellpipe.launcher.requirements import DEFAULT_MAX_FILE_BYTES

        from .cluster import default_builder

        for key in ("registry", "base", "builder"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise ApiError(400, "bad_request", f"'{key}' must be text")
        builder = body.get("builder") or default_builder(self.config)
        if builder not in BUILDERS:
            raise ApiError(
                400,
                "unknown_builder",
                f"unknown builder {builder!r}: use one of {', '.join(BUILDERS)}",
            )
        size = body.get("max_file_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float))):
            raise ApiError(400, "bad_request", "'max_file_size' must be a number of MB")
        if body.get("path") is None:
            raise ApiError(400, "bad_path", "name the notebook: a build needs its 'path'")
        base = body.get("base") or None
        pipeline, ref, _, notebook = self._compiled({**body, "base_image": base}, local_only=True)
        assert ref is not None
        registry = pipeline.settings.registry
        if not registry:
            raise ApiError(
                400,
                "no_registry",
                f"{ref.api_path}: no registry to push to: give 'registry', "
                "metadata.cellpipe.registry or c.CellPipe.registry",
            )
        request = BuildRequest(
            pipeline,
            ref.os_path,
            notebook,
            registry=registry,
            builder=builder,
            base=base,
            max_file_bytes=int(size * 1e6) if size is not None else DEFAULT_MAX_FILE_BYTES,
        )
        warnings = [d.to_json() for d in pipeline.warnings]
        return self.builds.submit(request, ref.api_path, warnings).to_json()

    def get_build(self, build_id: str) -> dict[str, Any]:
        """GET /builds/ID."""
        build = self.builds.get(build_id)
        if build is None:
            raise ApiError(
                404,
                "not_found",
                f"no build {build_id} (builds are kept in the server's memory until it stops)",
            )
        return build

    def list_builds(self) -> dict[str, Any]:
        """GET /builds: the builds this server process knows, newest first."""
        return {"builds": self.builds.list()}

    # -- the rest ---------------------------------------------------------------------------
    def gpus(self) -> dict[str, Any]:
        """GET /gpus: the cluster's GPU inventory, as `cellpipe gpus --format json` (types,
        totals, free counts, nodes); where the nodes cannot be read, the configured types
        with counts unknown and `message` saying why. Never an error."""
        from cellpipe.launcher import gpus

        from .cluster import kube_settings

        config = self.config
        types = gpus.configured_types(config.gpu_types, config.gpu_resource)
        try:
            inventory = gpus.cluster_inventory(
                kube_settings(), types, config.gpu_resource, config.gpu_label
            )
        except Exception as exc:  # the inventory never fails the answer
            self.log.warning("cellpipe: reading the GPU inventory failed", exc_info=True)
            inventory = gpus.from_configuration(
                types, config.gpu_resource, config.gpu_label, f"{exc}; counts unknown"
            )
        result: dict[str, Any] = inventory.to_json()
        result["this_machine"] = {"has_gpu": machine_has_gpu()}
        return result

    def config_json(self) -> dict[str, Any]:
        """GET /config: every setting but the secrets; `engines` are the engines a client
        may choose (c.CellPipe.engines, then the cluster engines that are configured), and
        `capabilities` the routes beyond compile and runs."""
        public: dict[str, Any] = self.config.public()
        public["engines"] = self.config.offered_engines()
        return {
            "version": __version__,
            "api": API_NAMESPACE,
            **public,
            "capabilities": ["builds"],
        }


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

    request: RunRequest | None  # None: a cluster run (`cluster` submits it)
    placeholder: RunRecord  # what GET answers until the engine has recorded the run
    engine: str
    engine_class: Any
    cancel: threading.Event  # the same event as request.cancel
    future: Future[None] | None = None
    started: bool = False
    cluster: Any = None  # cluster.ClusterSubmit
    progress: list[str] | None = None  # a cluster run's messages while it is submitted

    @property
    def cancellable(self) -> bool:
        """Whether a started run can still be stopped (a cluster run: anything not sent yet
        is never sent; what was sent is cancelled in its engine once the submit returns)."""
        return self.cluster is not None or bool(getattr(self.engine_class, "cancellable", False))


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

    def submit_cluster(self, submit: Any) -> RunRecord:
        """Submit a cluster run (a cluster.ClusterSubmit) in the background: its check of the
        GPUs, its build and its submit; the placeholder record (Pending) comes back at once."""
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
            if active.cluster is not None:
                self._submit(active)
            else:
                engine = active.engine_class(store=self.store, home=self.home)
                engine.run(active.request, lambda _event, _step: self._notify(run_id))
        except BaseException as exc:  # recorded, never lost: a run ends Failed with its error
            self.log.exception("cellpipe: run %s failed in its engine", run_id)
            self._record_end(active, "Failed", f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._active.pop(run_id, None)
            self._notify(run_id)

    def _submit(self, active: _Active) -> None:
        """A cluster run: check, build, submit (cluster.ClusterSubmit.run); what stops it
        before its engine is recorded as its end, with the CLI's words."""
        from .cluster import RunCancelled, RunFailed

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
        except RunFailed as exc:
            self.log.info("cellpipe: run %s was not submitted: %s", run_id, exc)
            self._record_end(active, "Failed", str(exc))
        except RunCancelled:
            self._record_end(active, "Cancelled", "cancelled before it was submitted")

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
            with contextlib.suppress(ApiError):  # an engine that cannot stop midway goes on
                self.cancel(active.placeholder.run_id)
        deadline = time.monotonic() + wait_seconds
        for active in actives:
            if active.future is not None:
                with contextlib.suppress(Exception):
                    active.future.result(timeout=max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._serial.shutdown(wait=False, cancel_futures=True)
