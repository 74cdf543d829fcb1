"""Submitting to a cluster, once for every front door: check the GPU choices against the
cluster's nodes, build the image (or take the one given), plan the pipeline or the training
job, record the run, submit.

    submit = plan_submit(prepared, choices, config, store, home)   # what is wrong: UserError
    record = submit.run(say, cancelled)                             # the run as recorded

`plan_submit` checks what can be checked without the cluster (parameters typed, GPU choices
applied, a training job planned), so a wrong request is refused before anything is built;
`run` does the slow part, off a request thread where the front door has one. As in every
engine, the run is recorded (Pending) before anything is sent, and one that never reaches its
engine is kept, Failed, with its error (cluster.fail_submission).

Secrets (the KFP token or cookie, registry credentials) are read where they are used and are
never kept with a run nor returned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gpus
from .build import BuildError, BuildRequest, BuildResult, build_image
from .cluster import ClusterEngine, Submission, SubmitOptions, SubmitRequest
from .config import CellPipe
from .errors import UserError
from .gpus import GpuChoiceError, GpuType, apply_gpu_choices, configured_types
from .k8s import ClusterError, KubeSettings
from .notebooks import Prepared
from .registry import RegistryError, checked_reference
from .requirements import RequirementError
from .store import RunRecord, RunStore, StepRecord, new_run_id
from .training import TrainingError
from .vocabulary import FINISHED, KANIKO_BUILDER, RunStatus

Say = Callable[[str], None]
# Builds from this process share one build cache and pip: one at a time.
BUILD_LOCK = threading.Lock()
NO_REGISTRY_WARNING = "no registry is configured"


class SubmitFailed(UserError):
    """A submit stopped before its engine, for a reason that is the user's to fix; the
    message becomes the run's error."""

    reason = "submit_failed"


class SubmitCancelled(Exception):
    """Cancelled before anything was sent."""


@dataclass
class SubmitChoices:
    """What a front door chose for a submit, beyond the notebook."""

    options: SubmitOptions  # the engine and its own settings
    parameters: dict[str, Any] = field(default_factory=dict)  # typed (Prepared.*_parameters)
    gpus: list[str] = field(default_factory=list)  # `STEP=N[:TYPE]` over the steps' tags
    image: str | None = None  # run in this image, already built: nothing is built
    builder: str | None = None  # else: how the image is built (default c.CellPipe.builder)
    dry_run: bool = False  # plan only: nothing is built, asked of the cluster, or sent


def submit_warnings(prepared: Prepared, choices: SubmitChoices) -> list[Any]:
    """The notebook's warnings that concern this submit (with an image given, or nothing
    built, a missing registry does not matter)."""
    moot = choices.image is not None or choices.dry_run
    return [
        w for w in prepared.pipeline.warnings if not (moot and NO_REGISTRY_WARNING in w.message)
    ]


@dataclass
class ClusterSubmit:
    """A submit checked and ready: `run` does it."""

    prepared: Prepared
    request: SubmitRequest
    engine: ClusterEngine
    config: CellPipe
    types: list[GpuType]
    choices: SubmitChoices
    builder: str | None  # None: an image was given
    summary: list[str] = field(default_factory=list)  # what was sent, for people

    @property
    def name(self) -> str:
        return self.prepared.name

    def placeholder(self, home: Path) -> RunRecord:
        """The run as it stands before its engine has recorded it (Pending)."""
        request, pipeline = self.request, self.request.pipeline
        return RunRecord(
            run_id=request.run_id,
            notebook=str(request.notebook.resolve()),
            pipeline=pipeline.settings.name,
            engine=self.engine.name,
            status=RunStatus.PENDING,
            created=time.time(),
            outputs=str(home / "runs" / request.run_id),
            parameters=request.parameters,
            steps={s.name: StepRecord(s.name, s.task) for s in pipeline.steps},
            notebook_hash=request.notebook_hash,
            image=self.choices.image,
            gpus=dict(request.gpus),
            external={"namespace": request.namespace} if request.namespace else {},
        )

    def run(self, say: Say, cancelled: Callable[[], bool] = lambda: False) -> RunRecord:
        """Check the GPUs, build, plan, submit: the record as the engine left it.
        SubmitFailed for what the user must change (nothing was sent); SubmitCancelled when
        cancelled first."""
        self.check_gpus(say)
        if cancelled():
            raise SubmitCancelled
        if self.builder is not None:
            self.request.images = self.build(say)
        if cancelled():
            raise SubmitCancelled
        submission = self.plan()
        self.summary = list(submission.summary)
        say(f"submitting to {self.engine.name}")
        return self.engine.submit(self.request, submission)

    def plan(self) -> Submission:
        """What will be sent (the compiled pipeline, or the job's objects)."""
        try:
            return self.engine.plan(self.request)
        except TrainingError as exc:
            raise SubmitFailed(f"{self.name}: {exc}", reason="bad_training") from None

    def check_gpus(self, say: Say) -> None:
        """Refuse, before anything is built or sent, what no node can ever satisfy. A dry run
        asks nothing of the cluster: the configured GPU types stand in for its nodes."""
        try:
            asks = self.engine.gpu_asks(self.request)
        except TrainingError as exc:
            raise SubmitFailed(f"{self.name}: {exc}", reason="bad_training") from None
        if not asks:
            return
        config = self.config
        if self.choices.dry_run:
            inventory = gpus.from_configuration(self.types, config.gpu_resource, config.gpu_label)
        else:
            say("checking the GPU choices against the cluster's nodes")
            inventory = gpus.cluster_inventory(
                self.request.kube, self.types, config.gpu_resource, config.gpu_label
            )
        problems = gpus.check_asks(asks, inventory)
        if problems:
            raise SubmitFailed(f"{self.name}: " + f"\n{self.name}: ".join(problems))
        if inventory.message and not self.choices.dry_run:
            say(f"note: GPU choices not checked against the nodes: {inventory.message}")

    def build(self, say: Say) -> dict[str, str]:
        """Build the image (or find it built: the tag is a content hash); step -> image."""
        assert self.builder is not None
        prepared = self.prepared
        results = build(
            BuildRequest(
                prepared.pipeline,
                self.request.notebook,
                prepared.notebook,
                registry=prepared.pipeline.settings.registry,
                builder=self.builder,
            ),
            self.config,
            say,
            name=self.name,
        )
        for warning in results[0].warnings:
            say(f"warning: {warning}")
        return {step: result.image for result in results for step in result.steps}

    def cancel_sent(self, record: RunRecord) -> None:
        """Cancelled while it was being sent: stop it in its engine."""
        if record.status in FINISHED:
            return
        try:
            self.engine.cancel(record)
        except ClusterError as exc:  # kept with the run; a later cancel can try again
            record.error = f"cancelling it in {self.engine.name} failed: {exc}"
            self.engine.store.update_run(record)


def build(
    request: BuildRequest, config: CellPipe, say: Say, *, name: str | None = None
) -> list[BuildResult]:
    """Build (one build at a time in this process); a failure is a UserError naming the
    notebook. The builder class comes from c.CellPipe.builders by the request's name."""
    if BUILD_LOCK.locked():
        say("waiting for another build to end")
    with BUILD_LOCK:
        try:
            return build_image(request, say, config.builders)
        except (BuildError, RegistryError, RequirementError) as exc:
            raise SubmitFailed(
                f"{name or request.notebook_path}: {exc}", reason="build_failed"
            ) from None


def plan_submit(
    prepared: Prepared,
    choices: SubmitChoices,
    config: CellPipe,
    store: RunStore,
    home: Path,
    *,
    run_id: str | None = None,
) -> ClusterSubmit:
    """Everything checked before anything is built or sent; UserError for what is wrong."""
    prepared.raise_for_errors()
    if prepared.path is None:
        raise UserError("a submit needs the notebook's path", reason="bad_path")
    pipeline, options = prepared.pipeline, choices.options
    types = configured_types(config.gpu_types, config.gpu_resource)
    try:
        gpu_choices = apply_gpu_choices(pipeline, choices.gpus, types, config.gpu_resource)
    except GpuChoiceError as exc:
        raise UserError(f"{prepared.name}: {exc}", reason="bad_gpus") from None
    options.namespace = options.namespace or config.namespace
    options.kube = KubeSettings(options.kube.kubeconfig, options.kube.context, options.namespace)
    builder = None
    if choices.image is not None:
        checked_reference(choices.image, "the image to run ('image', --image)")
    if choices.image is None and not choices.dry_run:
        builder = _builder_here(prepared, choices, config)
    request = SubmitRequest(
        pipeline=pipeline,
        notebook=prepared.path,
        parameters=choices.parameters,
        options=prepared.options,
        images={s.name: choices.image or s.image for s in pipeline.steps},
        gpus=gpu_choices,
        namespace=options.namespace,
        kube=options.kube,
        run_id=run_id or new_run_id(),
        notebook_hash=prepared.content_hash(),
    )
    engine = cluster_engine(options, config, store, home)
    submit = ClusterSubmit(prepared, request, engine, config, types, choices, builder)
    if config.trains_one_step(engine.name):  # the job's step, workers and GPUs: plan it now
        submit.plan()
    return submit


def cluster_engine(
    options: SubmitOptions, config: CellPipe, store: RunStore, home: Path
) -> ClusterEngine:
    """The cluster engine `options.engine` names, from the registry (c.CellPipe.engines)."""
    name = options.engine
    if name not in config.engines or config.engine_location(name) != "cluster":
        known = ", ".join(n for n in config.engines if config.engine_location(n) == "cluster")
        raise UserError(
            f"no cluster engine {name!r}; the cluster engines are {known}",
            reason="unknown_engine",
        )
    try:
        engine: ClusterEngine = config.engine_class(name).for_submit(
            name, options, config, store, home
        )
    except TrainingError as exc:
        raise UserError(str(exc), reason="bad_training") from None
    return engine


def _builder_here(prepared: Prepared, choices: SubmitChoices, config: CellPipe) -> str:
    if not prepared.pipeline.settings.registry:
        raise UserError(
            f"{prepared.name}: a cluster pulls the image from a registry: name one (--registry "
            "HOST/REPO or 'registry'; or metadata.cellpipe.registry, or c.CellPipe.registry), "
            "or give an image already built (--image REF or 'image')",
            reason="no_registry",
        )
    builder = config.builder_for(choices.builder)
    if builder == KANIKO_BUILDER:
        raise UserError(
            "the kaniko builder builds inside the cluster: build with it (`cellpipe build "
            "--builder kaniko`, or POST /builds), apply its Job, then submit with the image",
            reason="unknown_builder",
        )
    return builder
