"""What the REST API does, without tornado: requests in (JSON dicts), JSON or ApiError out.

A thin adapter over the launcher (cellpipe.launcher): this module turns a JSON body into the
launcher's requests, keeps notebook paths inside the server's root, and presents records as
JSON. Long work (a run, a submit to a cluster, a build) goes to the launcher's
BackgroundRunner (builds: builds.py) and is answered at once with its id.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import nbformat

from cellpipe.launcher.background import BackgroundRunner
from cellpipe.launcher.build import BuildRequest
from cellpipe.launcher.config import CellPipe, without_credentials
from cellpipe.launcher.errors import Conflict, UserError
from cellpipe.launcher.gpus import gpu_inventory
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.local_engine import machine_has_gpu
from cellpipe.launcher.notebooks import Prepared, checked_content, prepare, read
from cellpipe.launcher.requirements import DEFAULT_MAX_FILE_BYTES
from cellpipe.launcher.run_logs import run_log
from cellpipe.launcher.store import RunRecord
from cellpipe.launcher.submitting import plan_submit, submit_warnings
from cellpipe.launcher.tracking import Runs, find_step
from cellpipe.launcher.vocabulary import FINISHED
from cellpipe.runtime.version import VERSION as __version__

from . import API_NAMESPACE
from .builds import BuildManager
from .cluster import check_kfp_host, submit_choices, text_field
from .fields import check_fields
from .tunes import TuneManager, check_tune_body

_read_notebook: Any = nbformat.reads  # nbformat is untyped


class ApiError(Exception):
    """A request refused: HTTP status, a short machine reason, words for people, extra JSON."""

    # The HTTP status of a launcher UserError, by its reason (others are 400).
    STATUS_OF_REASON: ClassVar[dict[str, int]] = {
        "not_found": 404,
        "outside_root": 403,
        "conflict": 409,
        "finished": 409,
        "running": 409,
        "not_cancellable": 409,
        "not_started_here": 409,
        "cluster_error": 502,
        "store_unavailable": 503,
    }

    def __init__(self, status: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.extra = extra

    @classmethod
    def from_user_error(cls, error: UserError) -> ApiError:
        status = cls.STATUS_OF_REASON.get(error.reason, 400)
        return cls(status, error.reason, error.message, **error.details)

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
    """Everything the REST API offers, over the launcher."""

    def __init__(
        self,
        config: CellPipe,
        root: Path,
        *,
        allow_hidden: bool = False,
        log: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.root = root.resolve()
        self.allow_hidden = allow_hidden
        self.log = log or logging.getLogger(__name__)
        self.runs = BackgroundRunner(config, log=self.log)
        self.tracking = Runs(config, home=self.runs.home, store=self.runs.store)
        self.builds = BuildManager(
            config.builders, log=self.log, folder=self.runs.home / "builds", root=self.root
        )
        self.tunes = TuneManager(config, self.root, self.runs.home, self.runs.store, self.log)
        from cellpipe.launcher.services import Services

        from .serving import ServingApi  # /services and /runs/ID/models (issue 19)

        self.serving = ServingApi(Services(self.runs.home, self.runs.store), self._record)

    # -- compile ----------------------------------------------------------------------------
    def compile(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /compile: {"path"} or {"content", "path"?}, optional "registry", "base_image",
        "yaml" (true: the KFP pipeline YAML too)."""
        check_fields(body, "compile")
        prepared = self._prepared(body, local_only=False)
        result: dict[str, Any] = prepared.pipeline.to_json()
        if body.get("yaml"):
            result["yaml"] = prepared.yaml()
        return result

    def _prepared(self, body: dict[str, Any], *, local_only: bool) -> Prepared:
        """The notebook of the request (the saved file, or the content sent), compiled with
        the request's registry and base image over its metadata and c.CellPipe; its errors
        are a 400 with the compile JSON."""
        content = body.get("content")
        ref = None
        if content is None or body.get("path") is not None:
            ref = resolve_notebook(
                self.root,
                body.get("path"),
                allow_hidden=self.allow_hidden,
                must_exist=content is None,
            )
        name = ref.api_path if ref else "notebook.ipynb"
        if content is None:
            assert ref is not None
            notebook = read(ref.os_path, ref.api_path)
        else:
            notebook = checked_content(content, name)
        prepared = prepare(
            notebook,
            self.config,
            path=ref.os_path if ref else None,
            name=name,
            registry=text_field(body, "registry"),
            base_image=text_field(body, "base_image"),
            local_only=local_only,
            content_given=content is not None,
        )
        return prepared.raise_for_errors()

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /runs: {"path", "content"?, "engine"?, "parameters"?: {name: value},
        "use_cache"?: true, "require_gpus"?: false}; the run goes on in the background.

        A cluster engine (kfp, pytorchjob, tfjob, xgboostjob, mpijob, trainjob) takes what
        `cellpipe submit` takes: "gpus"?: {STEP: "N[:TYPE]"}, "image"? (no build), "registry"?,
        "builder"? (append | engine), "namespace"?, "experiment"? (kfp); "step"?, "workers"?,
        "gpus_per_worker"?, "gpu_type"?, "pvc"?, "storage_size"?, "storage_class"?, "runtime"?
        (training engines)."""
        check_fields(body, "runs")
        engine = body.get("engine") or self.config.default_engine
        self._check_offered(engine)
        if body.get("path") is None:
            raise ApiError(400, "bad_path", "name the notebook: a run needs its 'path'")
        if self.config.engine_location(engine) == "cluster":
            return self._start_cluster_run(body, engine)
        prepared = self._prepared(body, local_only=True)
        parameters = prepared.json_parameters(body.get("parameters"))
        warnings = [d.to_json() for d in prepared.pipeline.warnings]
        no_gpus = prepared.gpus_here(bool(body.get("require_gpus")))
        if no_gpus:
            message = no_gpus.removeprefix(f"{prepared.name}: ")
            warnings.append({"message": message, "cell_index": None, "cell_id": None, "step": None})
        record = self.runs.submit(
            prepared, engine, parameters, use_cache=body.get("use_cache", True) is not False
        )
        return {**self.run_json(record), "warnings": warnings}

    def _check_offered(self, engine: str) -> None:
        offered = self.config.offered_engines()
        if engine in offered:
            return
        if engine in self.config.engines and self.config.engine_location(engine) == "cluster":
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
            400, "unknown_engine", f"no engine {engine!r}; the engines are {', '.join(offered)}"
        )

    def _start_cluster_run(self, body: dict[str, Any], engine: str) -> dict[str, Any]:
        check_kfp_host(self.config, body)
        prepared = self._prepared(body, local_only=False)
        choices = submit_choices(body, engine)
        choices.parameters = prepared.json_parameters(body.get("parameters"))
        warnings = [d.to_json() for d in submit_warnings(prepared, choices)]
        # a training job that cannot be planned as asked is the launcher's `bad_training`: 400
        submit = plan_submit(prepared, choices, self.config, self.runs.store, self.runs.home)
        record = self.runs.submit_cluster(submit)
        return {**self.run_json(record), "warnings": warnings}

    # -- tunes (tunes.py) ---------------------------------------------------------------------
    def start_tune(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /tunes (see tunes.py); the trials go on in the background."""
        check_tune_body(body)
        ref = resolve_notebook(self.root, body.get("path"), allow_hidden=self.allow_hidden)
        return self.tunes.start(ref.os_path, ref.api_path, body)

    def list_tunes(self, notebook: str | None) -> dict[str, Any]:
        """GET /tunes[?notebook=PATH]: newest first."""
        os_path = None
        if notebook:
            os_path = resolve_notebook(
                self.root, notebook, allow_hidden=self.allow_hidden, must_exist=False
            ).os_path
        return self.tunes.list(os_path)

    def list_runs(self, notebook: str | None) -> dict[str, Any]:
        """GET /runs[?notebook=PATH]: newest first."""
        os_path = None
        if notebook:
            os_path = resolve_notebook(
                self.root, notebook, allow_hidden=self.allow_hidden, must_exist=False
            ).os_path
        records = [r for r in self.runs.records(os_path) if self._under_root(r)]
        return {"runs": [self.run_json(r) for r in records]}

    def get_run(self, run_id: str) -> dict[str, Any]:
        """GET /runs/ID. A cluster run's status is asked of its engine first (as `cellpipe
        status`); when the engine cannot say, the last known status, and `refresh_error`."""
        record = self._record(run_id)
        if not self._on_cluster(record):
            return self.run_json(record)
        problem = None
        refreshed = False
        if record.status not in FINISHED and not self.runs.is_active(run_id):
            problem = self._refresh(record)
            refreshed = problem is None
        return {**self.run_json(record), "refreshed": refreshed, "refresh_error": problem}

    def _on_cluster(self, record: RunRecord) -> bool:
        return self.config.engine_location(record.engine) == "cluster"

    def _refresh(self, record: RunRecord) -> str | None:
        try:
            return self.tracking.refresh(record)[1]
        except Exception as exc:  # never an error: the last known status stands
            self.log.warning("cellpipe: refreshing run %s failed", record.run_id, exc_info=True)
            return f"{type(exc).__name__}: {exc}"

    def _record(self, run_id: str) -> RunRecord:
        """The run `run_id`, if its notebook is under the root: the runs the CLI made of
        notebooks elsewhere are not this server's to show or change (404, as if none)."""
        record = self.runs.get(run_id)
        if record is None or not self._under_root(record):
            raise ApiError(404, "not_found", f"no run {run_id}")
        return record

    def _under_root(self, record: RunRecord) -> bool:
        return Path(os.path.normpath(record.notebook)).is_relative_to(self.root)

    def run_json(self, record: RunRecord) -> dict[str, Any]:
        """The run as the CLI's --format json shows it, plus its notebook's API path (and,
        while this server submits a cluster run, its `progress` messages so far)."""
        result: dict[str, Any] = record.to_json()
        for key in ("external", "links"):  # a KFP address, never with its credentials
            result[key] = {k: without_credentials(v) for k, v in (result.get(key) or {}).items()}
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

    def executed_notebook(self, run_id: str) -> dict[str, Any]:
        """GET /runs/ID/notebook: the run's executed notebook (nbformat v4 JSON: each cell's
        outputs and `metadata.cellpipe`), read from its run folder. 404 while the run has none:
        it is written when the run ends (a cluster run's when its steps' reports could be
        read; `external.notebook_note` says why not)."""
        record = self._record(run_id)
        path = record.executed_notebook
        if path is None:
            raise ApiError(404, "no_notebook", self._no_notebook(record))
        try:
            text = Path(path).read_text(encoding="utf-8")
            # as Jupyter's contents API reads a notebook: multi-line strings joined again
            notebook = _read_notebook(text, as_version=4)
        except (OSError, ValueError) as exc:
            self.log.warning("cellpipe: the executed notebook of run %s: %s", run_id, exc)
            raise ApiError(
                404,
                "no_notebook",
                f"run {run_id}: its executed notebook cannot be read "
                f"({type(exc).__name__}); `cellpipe status {run_id}` names the file",
            ) from None
        if not isinstance(notebook, dict):
            raise ApiError(
                404, "no_notebook", f"run {run_id}: its executed notebook is not a notebook"
            )
        return dict(notebook)

    def _no_notebook(self, record: RunRecord) -> str:
        run_id = record.run_id
        if record.status not in FINISHED:
            return f"run {run_id} is {record.status}: its executed notebook is written when it ends"
        note = record.external.get("notebook_note")  # a cluster run's: why it has none
        if isinstance(note, str) and note:
            return f"run {run_id} has no executed notebook: {note}"
        return (
            f"run {run_id} ({record.status}) has no executed notebook: runs made before "
            "cellpipe wrote one, and runs whose notebook could not be kept, have none"
        )

    def cancel_run(self, run_id: str) -> Future[None] | None:
        """POST /runs/ID/cancel: a run this server runs is stopped here (the future ends when
        it has ended); a cluster run is cancelled in its engine (None: done)."""
        ended = self.runs.cancel(run_id)
        if ended is not None:
            return ended
        record = self._record(run_id)
        if self._on_cluster(record):
            self.tracking.cancel(record)
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
        if not self._on_cluster(record) and record.status not in FINISHED and not force:
            raise ApiError(
                409,
                "running",
                f"run {run_id} is {record.status} in another process (the CLI?); stop it "
                "there first, or delete with force=true if that process is gone",
            )
        try:
            self.tracking.delete(record, force=force, keep_remote=keep_remote)
        except Conflict as exc:
            raise ApiError(409, exc.reason, exc.message.replace("(force)", "force=true")) from None
        except UserError as exc:
            if exc.reason != "cluster_error":
                raise
            raise ApiError(
                502, exc.reason, f"{exc.message} (keep_remote=true forgets it here only)"
            ) from None

    def run_logs(self, run_id: str, step_name: str | None) -> dict[str, Any]:
        """GET /runs/ID/logs[?step=NAME]: what the step printed (its log, tracebacks included);
        without a step, the run's whole log (launcher.run_logs: its text, and its `sections`,
        the run's own part then each step's in order); a cluster run's from its pods, through
        its engine."""
        record = self._record(run_id)
        if self._on_cluster(record) and self.runs.is_active(run_id):
            step = find_step(record, step_name) if step_name else None
            text = "the run is being submitted; its pods have printed nothing yet\n"
            waiting = {"text": text, "source": "cluster", "truncated": False}
            return self._log_json(record, step.name if step else None, waiting)
        if step_name is None:
            # the run's whole log: its own part, then each step's output in order (one
            # assembly for the CLI's `cellpipe logs RUN` and the sidebar's log panel)
            whole = run_log(self.tracking, record).to_json()
            return {**self._log_json(record, None, whole), "source": "run"}
        step, tail = self.tracking.log_tail(record, step_name)
        return self._log_json(record, step.name if step else None, tail.to_json())

    def _log_json(
        self, record: RunRecord, step_name: str | None, tail: dict[str, Any]
    ) -> dict[str, Any]:
        step = record.steps.get(step_name) if step_name else None
        answer: dict[str, Any] = {
            "run_id": record.run_id,
            "step": step.name if step else None,
            "task": step.task if step else None,
            "status": step.status if step else record.status,
        }
        if step is not None and not self._on_cluster(record):
            answer["cached"] = step.cached
        return {**answer, **tail}

    # -- builds -----------------------------------------------------------------------------
    def start_build(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /builds: {"path", "content"?, "registry"?, "builder"? (append | engine |
        kaniko), "base"?, "max_file_size"? (MB)}; defaults from metadata.cellpipe, then
        c.CellPipe (registry, base_image, builder). The build goes on in the background;
        kaniko writes its Job and context to cellpipe-build/ beside the notebook."""
        check_fields(body, "builds")
        builder = self.config.builder_for(body.get("builder") or None)
        size = body.get("max_file_size")
        if body.get("path") is None:
            raise ApiError(400, "bad_path", "name the notebook: a build needs its 'path'")
        base = body.get("base") or None
        prepared = self._prepared({**body, "base_image": base}, local_only=True)
        assert prepared.path is not None
        registry = prepared.pipeline.settings.registry
        if not registry:
            raise ApiError(
                400,
                "no_registry",
                f"{prepared.name}: no registry to push to: give 'registry', "
                "metadata.cellpipe.registry or c.CellPipe.registry",
            )
        request = BuildRequest(
            prepared.pipeline,
            prepared.path,
            prepared.notebook,
            registry=registry,
            builder=builder,
            base=base,
            max_file_bytes=int(size * 1e6) if size is not None else DEFAULT_MAX_FILE_BYTES,
        )
        warnings = [d.to_json() for d in prepared.pipeline.warnings]
        return self.builds.submit(request, prepared.name, warnings).to_json()

    def get_build(self, build_id: str) -> dict[str, Any]:
        """GET /builds/ID."""
        build = self.builds.get(build_id)
        if build is None:
            raise ApiError(
                404,
                "not_found",
                f"no build {build_id}",
            )
        return build

    def list_builds(self) -> dict[str, Any]:
        """GET /builds: the builds of notebooks under the root, newest first (kept across
        restarts: the last ones)."""
        return {"builds": self.builds.list()}

    # -- the rest ---------------------------------------------------------------------------
    def gpus(self) -> dict[str, Any]:
        """GET /gpus: the cluster's GPU inventory, as `cellpipe gpus --format json` (types,
        totals, free counts, nodes); where the nodes cannot be read, the configured types
        with counts unknown and `message` saying why. Never an error."""
        inventory = gpu_inventory(self.config, KubeSettings())
        result: dict[str, Any] = inventory.to_json()
        result["this_machine"] = {"has_gpu": machine_has_gpu()}
        return result

    def config_json(self) -> dict[str, Any]:
        """GET /config: every setting but the secrets; `engines` are the engines a client
        may choose (those here, then the cluster engines that are configured), `vocabulary`
        the names a client offers and understands, and `capabilities` the routes beyond
        compile and runs."""
        public: dict[str, Any] = self.config.public()
        public["engines"] = self.config.offered_engines()
        return {
            "version": __version__,
            "api": API_NAMESPACE,
            **public,
            "vocabulary": self.config.vocabulary(),
            "capabilities": ["builds"],
            # why the run routes answer 503 (a damaged run store), None when they work
            "store_error": self.runs.store_error,
        }
