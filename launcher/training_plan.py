"""The plan of a training submit: which step is trained, which steps run once before it, and
every object the submit creates, as typed models (cellpipe.launcher.training_objects).
Nothing is sent: the engine (cellpipe.launcher.training) sends what the plan holds.

The chosen step runs on every worker, in the pipeline's built image, each worker with its
GPUs, the GPU type's node selector and the GPU tolerations. The steps it needs before it run
once, not on every worker: a Job of their own (`prepare`) runs them and leaves their values on
a PersistentVolumeClaim that every pod of the run mounts; each worker waits for it.

Storage: an existing claim (`pvc`), else a claim of the run's own (`storage_size`,
`storage_class`), ReadWriteMany since the workers may land on different nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cellpipe.converter import Pipeline, Step

from .cluster import SubmitRequest
from .gpus import GpuAsk
from .k8s import STEP_LABEL, label_value
from .training_objects import (
    DATA_MOUNT,
    KINDS,
    JobKind,
    Names,
    PodSettings,
    names_for,
    operator_job,
    prepare_job,
    run_labels,
    storage_claim,
    trainer_job,
)


class TrainingError(ValueError):
    """A training submission that cannot be made as asked; the message says what to change."""


@dataclass
class TrainingOptions:
    """A training submit's choices, and the configured GPU resource, label and tolerations."""

    step: str | None = None  # display or task name; None: the one GPU step, else the last
    workers: int = 1
    gpus_per_worker: int | None = None  # None: the step's own GPU choice
    gpu_type: str | None = None
    pvc: str | None = None  # an existing claim; None: one per run
    storage_size: str = "10Gi"
    storage_class: str | None = None
    runtime: str = "torch-distributed"  # trainjob: the ClusterTrainingRuntime
    gpu_resource: str = "nvidia.com/gpu"
    gpu_label: str = "nvidia.com/gpu.product"
    gpu_tolerations: list[dict[str, str]] | None = None
    service_account: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    wait_timeout: int = 24 * 3600  # how long a worker waits for the steps before it


# --- choosing the step ----------------------------------------------------------------------


def trained_step(pipeline: Pipeline, name: str | None) -> Step:
    """`--step NAME` (a display or task name); without it, the one step that asks for GPUs,
    else the last step."""
    if name is not None:
        for step in pipeline.steps:
            if name in (step.name, step.task):
                return step
        names = ", ".join(repr(s.name) for s in pipeline.steps)
        raise TrainingError(
            f"--step {name!r}: the pipeline has no such step; its steps are {names}"
        )
    gpu_steps = [s for s in pipeline.steps if s.resources.gpu is not None]
    return gpu_steps[0] if len(gpu_steps) == 1 else pipeline.steps[-1]


def steps_before(pipeline: Pipeline, step: Step) -> list[Step]:
    """The steps `step` needs (its ancestors), in an order they can run in."""
    by_name = {s.name: s for s in pipeline.steps}
    needed: set[str] = set()
    waiting = list(step.after)
    while waiting:
        name = waiting.pop()
        if name not in needed:
            needed.add(name)
            waiting.extend(by_name[name].after)
    ordered: list[Step] = []
    done: set[str] = set()
    remaining = [s for s in pipeline.steps if s.name in needed]
    while remaining:
        ready = next(s for s in remaining if all(p in done for p in s.after))
        ordered.append(ready)
        done.add(ready.name)
        remaining.remove(ready)
    return ordered


# --- the plan: everything a training submit sends -------------------------------------------


@dataclass
class TrainingPlan:
    """Everything a training submit creates (typed models) and what it says about them."""

    kind: JobKind
    namespace: str
    names: Names
    step: Step
    before: list[Step]
    workers: int
    gpus_per_worker: int
    gpu_type: str | None
    gpu_resource: str
    claim: str
    claim_created: bool
    objects: list[Any]  # typed models, in the order they are created

    def asks(self) -> list[GpuAsk]:
        """What the job asks of the cluster's GPUs: each worker's, and each step's before."""
        asks = []
        if self.gpus_per_worker:
            asks.append(
                GpuAsk(
                    f"each of the {self.workers} workers of step {self.step.name!r}",
                    self.gpus_per_worker,
                    self.gpu_type,
                    self.gpu_resource,
                )
            )
        for step in self.before:
            gpu = step.resources.gpu
            if gpu is not None:
                asks.append(
                    GpuAsk(
                        f"step {step.name!r}",
                        gpu.count,
                        gpu.type,
                        gpu.resource or self.gpu_resource,
                    )
                )
        return asks


def _largest(values: list[str | None]) -> str | None:
    from kubernetes.utils import parse_quantity

    present = [v for v in values if v]
    return max(present, key=parse_quantity) if present else None


def plan_training(
    engine: str, request: SubmitRequest, options: TrainingOptions, namespace: str
) -> TrainingPlan:
    """Every object a training submit creates, as typed models; nothing is sent."""
    if engine not in KINDS:
        raise TrainingError(f"unknown training engine {engine!r}: use one of {', '.join(KINDS)}")
    if options.workers < 1:
        raise TrainingError("--workers must be at least 1")
    kind = KINDS[engine]
    pipeline = request.pipeline
    step = trained_step(pipeline, options.step)
    before = steps_before(pipeline, step)
    gpu = step.resources.gpu
    gpus = (
        options.gpus_per_worker
        if options.gpus_per_worker is not None
        else (gpu.count if gpu else 0)
    )
    gpu_type = options.gpu_type or (gpu.type if gpu else None)
    resource = (gpu.resource if gpu and gpu.resource else None) or options.gpu_resource
    if gpus == 0 and options.gpu_type:
        raise TrainingError("--gpu-type needs GPUs: give --gpus-per-worker N too")
    names = names_for(pipeline.settings.name, request.run_id, engine)
    claim = options.pvc or names.pvc
    labels = run_labels(pipeline.settings.name, request.run_id)
    run_dir = f"{DATA_MOUNT}/runs/{request.run_id}"
    image = request.images.get(step.name) or request.image
    base = PodSettings(
        image=image,
        claim=claim,
        run_dir=run_dir,
        parameters=dict(request.parameters),
        labels=labels,
        gpu_resource=resource,
        gpu_label=options.gpu_label,
        gpu_tolerations=options.gpu_tolerations,
        service_account=options.service_account,
        image_pull_secrets=list(options.image_pull_secrets),
    )
    objects: list[Any] = []
    if options.pvc is None:
        objects.append(
            storage_claim(names.pvc, namespace, labels, options.storage_size, options.storage_class)
        )
    wait_for = None
    if before:
        # the prepare Job asks for the most any of its steps asks for
        before_gpus = [s.resources.gpu for s in before if s.resources.gpu]
        most = max(before_gpus, key=lambda g: g.count) if before_gpus else None
        prepare_settings = PodSettings(
            **{
                **vars(base),
                "image": request.images.get(before[0].name) or image,
                "labels": {**labels, STEP_LABEL: "prepare"},
                "gpus": most.count if most else 0,
                "gpu_type": most.type if most else None,
                "gpu_resource": (most.resource if most and most.resource else resource),
                "cpu": (
                    _largest([s.resources.cpu_request for s in before]),
                    _largest([s.resources.cpu_limit for s in before]),
                ),
                "memory": (
                    _largest([s.resources.memory_request for s in before]),
                    _largest([s.resources.memory_limit for s in before]),
                ),
                "env": {k: v for s in before for k, v in s.options.env.items()},
            }
        )
        objects.append(
            prepare_job(names.prepare, namespace, prepare_settings, [s.task for s in before])
        )
        wait_for = run_dir
    worker = PodSettings(
        **{
            **vars(base),
            "labels": {**labels, STEP_LABEL: label_value(step.task)},
            "gpus": gpus,
            "gpu_type": gpu_type,
            "cpu": (step.resources.cpu_request, step.resources.cpu_limit),
            "memory": (step.resources.memory_request, step.resources.memory_limit),
            "env": dict(step.options.env),
        }
    )
    if engine == "trainjob":
        job = trainer_job(
            names.job,
            namespace,
            worker,
            step.task,
            options.workers,
            options.runtime,
            wait_for=wait_for,
            timeout=options.wait_timeout,
        )
    else:
        job = operator_job(
            kind,
            names.job,
            namespace,
            worker,
            step.task,
            options.workers,
            wait_for=wait_for,
            timeout=options.wait_timeout,
        )
    objects.append(job)
    return TrainingPlan(
        kind,
        namespace,
        names,
        step,
        before,
        options.workers,
        gpus,
        gpu_type,
        resource,
        claim,
        options.pvc is None,
        objects,
    )


__all__ = [
    "TrainingError",
    "TrainingOptions",
    "TrainingPlan",
    "plan_training",
    "steps_before",
    "trained_step",
]
