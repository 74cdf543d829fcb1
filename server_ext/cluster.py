"""Cluster engines through the API: the launcher calls of `cellpipe submit` and of `cellpipe
status | logs | cancel | delete` (cellpipe.launcher: cluster, kfp_engine, training, gpus,
tracking), with the request's choices where the commands take options.

At POST time (on a worker thread, before the 202): the notebook compiled, its parameters
typed, the GPU choices applied, a training job planned, so that a wrong request is a 4xx with
the CLI's words. Then off the request thread (ClusterSubmit.run): the GPU choices checked
against the cluster's nodes, the image built (or the request's `image` used as it is), the
pipeline or job planned and submitted. As with the CLI, the run is recorded (Pending) before
anything is sent, and one that never reaches its engine is kept, Failed, with its error.

Secrets (the KFP token or cookie, registry credentials) are read where they are used and are
never kept with a run nor answered. The server submits to the Kubeflow Pipelines it is
configured for: a request may not name another address (its credentials would go there).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellpipe.converter import CompileOptions, Pipeline
from cellpipe.launcher import RunRecord, RunStore, StepRecord
from cellpipe.launcher.cluster import SubmitRequest, notebook_hash
from cellpipe.launcher.gpus import GpuChoiceError, GpuType, apply_gpu_choices, configured_types
from cellpipe.launcher.k8s import ClusterError, KubeSettings
from cellpipe.launcher.store import new_run_id

from .builds import BUILD_LOCK
from .core import ApiError

SUBMIT_BUILDERS = ("append", "engine")


class RunFailed(Exception):
    """A cluster run stopped before its engine, for a reason that is the user's to fix; the
    message (the CLI's words) becomes the run's error."""


class RunCancelled(Exception):
    """The run was cancelled before anything was sent."""


# --- settings ----------------------------------------------------------------------------------


def kube_settings(namespace: str | None = None) -> KubeSettings:
    """The Kubernetes API as kubectl finds it ($KUBECONFIG, ~/.kube/config, or in a pod)."""
    return KubeSettings(None, None, namespace)


def kfp_settings(config: Any, namespace: str | None = None, experiment: str | None = None) -> Any:
    from cellpipe.launcher.kfp_engine import KfpSettings

    return KfpSettings.from_environment(
        host=config.kfp_host,
        token=config.kfp_token,
        namespace=namespace,
        experiment=experiment,
        kube=kube_settings(),
    )


def tracker(config: Any, record: RunRecord, store: RunStore, home: Path) -> Any:
    """What follows a cluster run: its engine (tracking.tracker_for, as `cellpipe status`)."""
    from cellpipe.launcher.tracking import tracker_for

    kube = kube_settings()
    return tracker_for(record, store, home, kube=kube, kfp=kfp_settings(config))


def refresh(config: Any, record: RunRecord, store: RunStore, home: Path) -> str | None:
    """Ask the engine for the run's status (the record is updated in place and in the store);
    None, or why the engine could not say (the record then holds the last known status)."""
    try:
        tracker(config, record, store, home).refresh(record)
    except ClusterError as exc:
        return str(exc)
    return None


def read_logs(config: Any, record: RunRecord, store: RunStore, home: Path, step: str | None) -> str:
    """What the run's pods printed so far, through its engine (as `cellpipe logs`)."""
    try:
        return "".join(tracker(config, record, store, home).logs(record, step, False))
    except ClusterError as exc:
        raise ApiError(502, "cluster_error", f"run {record.run_id}: {exc}") from None


def default_builder(config: Any) -> str:
    """As `cellpipe submit`: c.CellPipe.builder when a config file sets it, else append."""
    from cellpipe.submit_command import configured

    return str(config.builder) if configured(config, "builder") else "append"


# --- the request -------------------------------------------------------------------------------


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, "bad_request", f"'{key}' must be text")
    return value


def _number(body: dict[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "bad_request", f"'{key}' must be a whole number")
    if value < minimum:
        words = "cannot be negative" if minimum == 0 else f"must be at least {minimum}"
        raise ApiError(400, "bad_request", f"'{key}' {words}")
    return value


def gpu_overrides(given: Any) -> list[str]:
    """`{"STEP": "N[:TYPE]"}` (or a number N) as the CLI's `--gpu STEP=N[:TYPE]` choices."""
    if given is None:
        return []
    if not isinstance(given, dict):
        raise ApiError(400, "bad_request", "'gpus' must be an object {step: \"N[:TYPE]\"}")
    overrides = []
    for step, choice in given.items():
        if isinstance(choice, bool) or not isinstance(choice, (int, str)):
            raise ApiError(400, "bad_gpus", f'\'gpus\' for step {step!r}: write "N" or "N:TYPE"')
        overrides.append(f"{step}={choice}")
    return overrides


def check_kfp_host(config: Any, body: dict[str, Any]) -> None:
    asked = _text(body, "kfp_host")
    configured = config.kfp_host or os.environ.get("KF_PIPELINES_ENDPOINT") or ""
    if asked is not None and asked.rstrip("/") != configured.rstrip("/"):
        where = f"c.CellPipe.kfp_host is {configured}" if configured else "none is configured"
        raise ApiError(
            400,
            "kfp_host",
            f"this server submits to the Kubeflow Pipelines it is configured for ({where}); "
            "it does not send its credentials to an address a request names",
        )


def content_hash(notebook: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(notebook, sort_keys=True).encode()).hexdigest()


@dataclass
class ClusterSubmit:
    """A cluster run checked at POST time; `run` submits it, off the request thread."""

    name: str  # the notebook's API path: messages name it so
    notebook: dict[str, Any]
    request: SubmitRequest
    engine: Any  # KfpEngine or TrainingEngine
    config: Any
    types: list[GpuType]
    image: str | None  # given: used as it is, nothing built
    builder: str | None  # else: how the image is built

    def placeholder(self, home: Path) -> RunRecord:
        """What GET /runs/ID answers until the engine has recorded the run."""
        request, pipeline = self.request, self.request.pipeline
        return RunRecord(
            run_id=request.run_id,
            notebook=str(request.notebook.resolve()),
            pipeline=pipeline.settings.name,
            engine=self.engine.name,
            status="Pending",
            created=time.time(),
            outputs=str(home / "runs" / request.run_id),
            parameters=request.parameters,
            steps={s.name: StepRecord(s.name, s.task) for s in pipeline.steps},
            notebook_hash=request.notebook_hash,
            image=self.image,
            gpus=dict(request.gpus),
            external={"namespace": request.namespace} if request.namespace else {},
        )

    def run(self, say: Callable[[str], None], cancelled: Callable[[], bool]) -> RunRecord:
        """Check the GPUs, build, plan, submit: the record as the engine left it. RunFailed
        for what the user must change (nothing was sent); RunCancelled when cancelled first."""
        self._check_gpus(say)
        if cancelled():
            raise RunCancelled
        if self.image is None:
            self.request.images = self._build(say)
        if cancelled():
            raise RunCancelled
        submission = self._plan()
        say(f"submitting to {self.engine.name}")
        record: RunRecord = self.engine.submit(self.request, submission)
        return record

    def cancel_sent(self, record: RunRecord) -> None:
        """Cancelled while it was being sent: stop it in its engine."""
        if record.status in ("Succeeded", "Failed", "Cancelled"):
            return
        try:
            self.engine.cancel(record)
        except ClusterError as exc:  # kept with the run; POST .../cancel can try again
            record.error = f"cancelling it in {self.engine.name} failed: {exc}"
            self.engine.store.update_run(record)

    def _plan(self) -> Any:
        from cellpipe.launcher.training import TrainingError

        try:
            return self.engine.plan(self.request)
        except TrainingError as exc:
            raise RunFailed(f"{self.name}: {exc}") from None

    def _check_gpus(self, say: Callable[[str], None]) -> None:
        """Refuse what no node can ever satisfy, as `cellpipe submit` does."""
        from cellpipe.launcher import gpus

        config = self.config
        if self.engine.name == "kfp":
            asks = gpus.asks_of(self.request.pipeline, config.gpu_resource)
        else:
            self._plan()
            asks = self.engine.last_plan.asks()
        if not asks:
            return
        say("checking the GPU choices against the cluster's nodes")
        inventory = gpus.cluster_inventory(
            self.request.kube, self.types, config.gpu_resource, config.gpu_label
        )
        problems = gpus.check_asks(asks, inventory)
        if problems:
            raise RunFailed(f"{self.name}: " + f"\n{self.name}: ".join(problems))
        if inventory.message:
            say(f"GPU choices not checked against the nodes: {inventory.message}")

    def _build(self, say: Callable[[str], None]) -> dict[str, str]:
        """Build the image (or find it built: the tag is a content hash); step -> image."""
        from cellpipe.launcher.build import BuildError, BuildRequest, build_image
        from cellpipe.launcher.registry import RegistryError

        pipeline = self.request.pipeline
        request = BuildRequest(
            pipeline,
            self.request.notebook,
            self.notebook,
            registry=pipeline.settings.registry,
            builder=self.builder or "append",
        )
        if BUILD_LOCK.locked():
            say("waiting for another build to end")
        with BUILD_LOCK:
            try:
                results = build_image(request, say)
            except (BuildError, RegistryError) as exc:
                raise RunFailed(f"{self.name}: {exc}") from None
        for warning in results[0].warnings:
            say(f"warning: {warning}")
        return {name: result.image for result in results for name in result.steps}


def prepare(
    config: Any,
    store: RunStore,
    home: Path,
    body: dict[str, Any],
    engine_name: str,
    *,
    name: str,
    notebook_path: Path,
    notebook: dict[str, Any],
    pipeline: Pipeline,
    options: CompileOptions,
    parameters: dict[str, Any],
) -> ClusterSubmit:
    """Everything `cellpipe submit` checks before it sends, from the request's choices:
    ApiError (4xx) for what is wrong with the request."""
    check_kfp_host(config, body)
    types = configured_types(config.gpu_types, config.gpu_resource)
    try:
        gpus = apply_gpu_choices(
            pipeline, gpu_overrides(body.get("gpus")), types, config.gpu_resource
        )
    except GpuChoiceError as exc:
        raise ApiError(400, "bad_gpus", f"{name}: {exc}") from None
    namespace = _text(body, "namespace") or config.namespace
    kube = kube_settings(namespace)
    image = _text(body, "image")
    builder = None
    if image is None:
        if not pipeline.settings.registry:
            raise ApiError(
                400,
                "no_registry",
                f"{name}: a cluster pulls the image from a registry: give 'registry' (or "
                "metadata.cellpipe.registry, or c.CellPipe.registry), or 'image'",
            )
        builder = _text(body, "builder") or default_builder(config)
        if builder == "kaniko":
            raise ApiError(
                400,
                "unknown_builder",
                "the kaniko builder builds inside the cluster: build with POST /builds "
                "(builder kaniko), apply its Job, then submit with 'image'",
            )
        if builder not in SUBMIT_BUILDERS:
            raise ApiError(
                400,
                "unknown_builder",
                f"unknown builder {builder!r}: use one of {', '.join(SUBMIT_BUILDERS)}",
            )
    request = SubmitRequest(
        pipeline=pipeline,
        notebook=notebook_path,
        parameters=parameters,
        options=options,
        images={s.name: image or s.image for s in pipeline.steps},
        gpus=gpus,
        namespace=namespace,
        kube=kube,
        run_id=new_run_id(),
        notebook_hash=(content_hash(notebook) if body.get("content") is not None else None)
        or (notebook_hash(notebook_path) if notebook_path.is_file() else None),
    )
    engine = _engine(config, store, home, body, engine_name, kube, namespace)
    submit = ClusterSubmit(name, notebook, request, engine, config, types, image, builder)
    if engine_name != "kfp":
        try:  # the step, workers and GPUs of the job: wrong ones are the request's fault
            submit._plan()
        except RunFailed as exc:
            raise ApiError(400, "bad_training", str(exc)) from None
    return submit


def _engine(
    config: Any,
    store: RunStore,
    home: Path,
    body: dict[str, Any],
    engine_name: str,
    kube: KubeSettings,
    namespace: str | None,
) -> Any:
    if engine_name == "kfp":
        from cellpipe.launcher.kfp_engine import KfpEngine

        settings = kfp_settings(config, namespace, _text(body, "experiment"))
        settings.kube = kube
        return KfpEngine(settings, store, home)
    from cellpipe.launcher.training import TrainingEngine, TrainingOptions

    options = TrainingOptions(
        step=_text(body, "step"),
        workers=_number(body, "workers", 1) or 1,
        gpus_per_worker=_number(body, "gpus_per_worker", 0),
        gpu_type=_text(body, "gpu_type"),
        pvc=_text(body, "pvc"),
        storage_size=_text(body, "storage_size") or "10Gi",
        storage_class=_text(body, "storage_class"),
        runtime=_text(body, "runtime") or "torch-distributed",
        gpu_resource=config.gpu_resource,
        gpu_label=config.gpu_label,
        gpu_tolerations=config.gpu_tolerations,
    )
    return TrainingEngine(engine_name, options, kube, store=store, home=home)
