"""The training engines: one step of the pipeline as a distributed training job.

    pytorchjob  tfjob  xgboostjob  mpijob   (the training operator, kubeflow.org/v1)
    trainjob                                (Kubeflow Trainer, trainer.kubeflow.org/v1alpha1)

The chosen step runs on every worker, in the pipeline's built image, each worker with its
GPUs, the GPU type's node selector and the GPU tolerations. The steps it needs before it run
once, not on every worker: a Job of their own (`prepare`) runs them and leaves their values on
a PersistentVolumeClaim that every pod of the run mounts at /cellpipe/data; each worker's init
container waits for it. What the step hands on (a model), from the worker of rank 0, stays on
that claim under runs/RUN_ID/outputs as the run's output, and its metrics come back in the
pod's termination message.

Storage: `--pvc NAME` uses an existing claim; otherwise each run gets a claim of its own
(`--storage-size`, `--storage-class`), ReadWriteMany since the workers may land on different
nodes. Deleting the run deletes the claim cellpipe created (and with it the outputs).

Every object comes from a pure builder function returning the official SDKs' typed models:
the kubernetes client's (PVC, Job, pod templates), kubeflow-training's (PyTorchJob, TFJob,
XGBoostJob, MPIJob) and Kubeflow Trainer's (TrainJob), with DNS-1123, hash-suffixed names.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellpipe.converter import Pipeline, Step
from cellpipe.converter.kfp_ir import DEFAULT_GPU_TOLERATION

from .cluster import (
    Submission,
    SubmitRequest,
    fail_submission,
    record_submission,
    set_status,
)
from .gpus import GpuAsk
from .k8s import (
    MANAGED_BY,
    PIPELINE_LABEL,
    REQUEST_TIMEOUT,
    RUN_LABEL,
    STEP_LABEL,
    ClusterError,
    KubeSettings,
    connect,
    explain,
    label_value,
    safe_name,
    to_dict,
)
from .store import RunRecord, RunStore, cellpipe_home, open_store
from .vocabulary import FINISHED

DATA_MOUNT = "/cellpipe/data"
DATA_VOLUME = "cellpipe-data"
ENTRY = ["python3", "-m", "cellpipe.runtime.train_entry"]
TRAINER_MANAGER = "cellpipe.org/submit"


@dataclass(frozen=True)
class JobKind:
    engine: str
    kind: str
    plural: str
    group: str
    version: str
    container: str  # the container name the operator looks for
    roles: tuple[str, ...]  # replica types, the first being the one of rank 0

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


KINDS = {
    "pytorchjob": JobKind(
        "pytorchjob",
        "PyTorchJob",
        "pytorchjobs",
        "kubeflow.org",
        "v1",
        "pytorch",
        ("Master", "Worker"),
    ),
    "tfjob": JobKind("tfjob", "TFJob", "tfjobs", "kubeflow.org", "v1", "tensorflow", ("Worker",)),
    "xgboostjob": JobKind(
        "xgboostjob",
        "XGBoostJob",
        "xgboostjobs",
        "kubeflow.org",
        "v1",
        "xgboost",
        ("Master", "Worker"),
    ),
    "mpijob": JobKind(
        "mpijob", "MPIJob", "mpijobs", "kubeflow.org", "v1", "mpi", ("Launcher", "Worker")
    ),
    "trainjob": JobKind(
        "trainjob",
        "TrainJob",
        "trainjobs",
        "trainer.kubeflow.org",
        "v1alpha1",
        "node",
        ("node",),
    ),
}


class TrainingError(ValueError):
    """A training submission that cannot be made as asked; the message says what to change."""


@dataclass
class TrainingOptions:
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


def _module(name: str) -> Any:
    """An SDK's models module, typed as Any (the generated models carry no type hints)."""
    import importlib

    return importlib.import_module(name)


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


# --- pure builders --------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    job: str
    prepare: str
    pvc: str


def names_for(pipeline_name: str, run_id: str, engine: str) -> Names:
    return Names(
        job=safe_name(pipeline_name, salt=f"{run_id}:{engine}", limit=52),
        prepare=safe_name(f"{pipeline_name}-prepare", salt=run_id, limit=52),
        pvc=safe_name(f"{pipeline_name}-data", salt=run_id),
    )


def run_labels(pipeline_name: str, run_id: str) -> dict[str, str]:
    return {
        MANAGED_BY: "cellpipe",
        RUN_LABEL: label_value(run_id),
        PIPELINE_LABEL: label_value(pipeline_name),
    }


def storage_claim(
    name: str, namespace: str, labels: dict[str, str], size: str, storage_class: str | None
) -> Any:
    """The run's own PVC: ReadWriteMany, since the job's pods may land on different nodes."""
    from kubernetes import client as k8s

    return k8s.V1PersistentVolumeClaim(
        api_version="v1",
        kind="PersistentVolumeClaim",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=k8s.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteMany"],
            resources=k8s.V1VolumeResourceRequirements(requests={"storage": size}),
            storage_class_name=storage_class,
        ),
    )


@dataclass
class PodSettings:
    """What every pod of the run shares, and what its GPUs are."""

    image: str
    claim: str
    run_dir: str
    parameters: dict[str, Any]
    labels: dict[str, str]
    gpus: int = 0
    gpu_type: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    gpu_label: str = "nvidia.com/gpu.product"
    gpu_tolerations: list[dict[str, str]] | None = None
    cpu: tuple[str | None, str | None] = (None, None)  # request, limit
    memory: tuple[str | None, str | None] = (None, None)
    env: dict[str, str] = field(default_factory=dict)
    service_account: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)

    def with_gpus(self, count: int) -> PodSettings:
        import dataclasses

        return dataclasses.replace(self, gpus=count)


def _resources(settings: PodSettings) -> Any:
    from kubernetes import client as k8s

    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for name, (request, limit) in (("cpu", settings.cpu), ("memory", settings.memory)):
        if request:
            requests[name] = request
        if limit:
            limits[name] = limit
    if settings.gpus:
        limits[settings.gpu_resource] = str(settings.gpus)
    if not (requests or limits):
        return None
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def gpu_scheduling(settings: PodSettings) -> tuple[dict[str, str] | None, list[Any] | None]:
    """The node selector of the GPU type and the GPU tolerations (as the compiled pipeline
    has them), or (None, None) for a pod without GPUs."""
    from kubernetes import client as k8s

    if not settings.gpus:
        return None, None
    selector = {settings.gpu_label: settings.gpu_type} if settings.gpu_type else None
    tolerations = settings.gpu_tolerations
    if tolerations is None:
        tolerations = [{"key": settings.gpu_resource, **DEFAULT_GPU_TOLERATION}]
    return selector, [k8s.V1Toleration(**t) for t in tolerations]


def _environment(settings: PodSettings) -> list[Any]:
    from kubernetes import client as k8s

    values = {**settings.env, "CELLPIPE_PARAMETERS": json.dumps(settings.parameters)}
    return [k8s.V1EnvVar(name=k, value=v) for k, v in values.items()]


def _mounts() -> list[Any]:
    from kubernetes import client as k8s

    return [k8s.V1VolumeMount(name=DATA_VOLUME, mount_path=DATA_MOUNT)]


def _volumes(settings: PodSettings) -> list[Any]:
    from kubernetes import client as k8s

    return [
        k8s.V1Volume(
            name=DATA_VOLUME,
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=settings.claim
            ),
        )
    ]


def container(name: str, settings: PodSettings, args: list[str] | None) -> Any:
    from kubernetes import client as k8s

    return k8s.V1Container(
        name=name,
        image=settings.image,
        command=ENTRY if args is not None else None,
        args=args,
        env=_environment(settings),
        resources=_resources(settings),
        volume_mounts=_mounts(),
    )


def pod_template(
    settings: PodSettings,
    main: Any,
    *,
    wait_for: str | None,
    restart_policy: str | None = None,
    timeout: int = 24 * 3600,
) -> Any:
    """A pod template: `main`, the run's volume, GPUs' scheduling, and (with `wait_for`, the
    run folder of a prepare Job) an init container that waits for the steps before."""
    from kubernetes import client as k8s

    selector, tolerations = gpu_scheduling(settings)
    init = None
    if wait_for is not None:
        waiting = settings.with_gpus(0)
        init = [
            k8s.V1Container(
                name="cellpipe-wait",
                image=settings.image,
                command=ENTRY,
                args=["wait", "--run-dir", wait_for, "--timeout", str(timeout)],
                volume_mounts=_mounts(),
                resources=_resources(
                    PodSettings(**{**vars(waiting), "cpu": ("50m", None), "memory": (None, None)})
                ),
            )
        ]
    secrets = [k8s.V1LocalObjectReference(name=s) for s in settings.image_pull_secrets]
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=dict(settings.labels)),
        spec=k8s.V1PodSpec(
            containers=[main],
            init_containers=init,
            volumes=_volumes(settings),
            node_selector=selector,
            tolerations=tolerations,
            restart_policy=restart_policy,
            service_account_name=settings.service_account,
            image_pull_secrets=secrets or None,
        ),
    )


def prepare_job(name: str, namespace: str, settings: PodSettings, tasks: list[str]) -> Any:
    """The Job that runs the steps before the trained one, once."""
    from kubernetes import client as k8s

    main = container(
        "prepare", settings, ["prepare", "--run-dir", settings.run_dir, "--steps", ",".join(tasks)]
    )
    template = pod_template(settings, main, wait_for=None, restart_policy="Never")
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=dict(settings.labels)),
        spec=k8s.V1JobSpec(backoff_limit=0, template=template),
    )


def _train_args(settings: PodSettings, task: str) -> list[str]:
    return ["train", "--run-dir", settings.run_dir, "--step", task]


def operator_job(
    kind: JobKind,
    name: str,
    namespace: str,
    settings: PodSettings,
    task: str,
    workers: int,
    *,
    wait_for: str | None,
    timeout: int = 24 * 3600,
) -> Any:
    """A training-operator job (kubeflow.org/v1) of `workers` pods, each with its GPUs."""
    kf = _module("kubeflow.training.models")
    from kubernetes import client as k8s

    def replica(count: int, pod: PodSettings, args: list[str] | None) -> Any:
        main = container(kind.container, pod, args)
        template = pod_template(pod, main, wait_for=wait_for, timeout=timeout)
        return kf.KubeflowOrgV1ReplicaSpec(
            replicas=count, restart_policy="OnFailure" if args else None, template=template
        )

    metadata = k8s.V1ObjectMeta(name=name, namespace=namespace, labels=dict(settings.labels))
    run_policy = kf.KubeflowOrgV1RunPolicy(clean_pod_policy="None", backoff_limit=3)
    args = _train_args(settings, task)
    if kind.engine == "mpijob":
        slots = max(1, settings.gpus)
        launcher_command = [
            "mpirun",
            "--allow-run-as-root",
            "-np",
            str(workers * slots),
            "-bind-to",
            "none",
            "-map-by",
            "slot",
            *ENTRY,
            *args,
        ]
        launcher_main = container(kind.container, settings.with_gpus(0), None)
        launcher_main.command = launcher_command
        launcher = kf.KubeflowOrgV1ReplicaSpec(
            replicas=1,
            restart_policy="OnFailure",
            template=pod_template(
                settings.with_gpus(0), launcher_main, wait_for=wait_for, timeout=timeout
            ),
        )
        # workers only host MPI processes: the operator starts them and mpirun reaches them
        workers_spec = replica(workers, settings, None)
        workers_spec.restart_policy = "OnFailure"
        return kf.KubeflowOrgV1MPIJob(
            api_version=kind.api_version,
            kind=kind.kind,
            metadata=metadata,
            spec=kf.KubeflowOrgV1MPIJobSpec(
                slots_per_worker=slots,
                main_container=kind.container,
                run_policy=run_policy,
                mpi_replica_specs={"Launcher": launcher, "Worker": workers_spec},
            ),
        )
    specs: dict[str, Any] = {}
    if kind.roles == ("Master", "Worker"):
        specs["Master"] = replica(1, settings, args)
        if workers > 1:
            specs["Worker"] = replica(workers - 1, settings, args)
    else:
        specs["Worker"] = replica(workers, settings, args)
    if kind.engine == "pytorchjob":
        return kf.KubeflowOrgV1PyTorchJob(
            api_version=kind.api_version,
            kind=kind.kind,
            metadata=metadata,
            spec=kf.KubeflowOrgV1PyTorchJobSpec(pytorch_replica_specs=specs, run_policy=run_policy),
        )
    if kind.engine == "tfjob":
        return kf.KubeflowOrgV1TFJob(
            api_version=kind.api_version,
            kind=kind.kind,
            metadata=metadata,
            spec=kf.KubeflowOrgV1TFJobSpec(tf_replica_specs=specs, run_policy=run_policy),
        )
    return kf.KubeflowOrgV1XGBoostJob(
        api_version=kind.api_version,
        kind=kind.kind,
        metadata=metadata,
        spec=kf.KubeflowOrgV1XGBoostJobSpec(xgb_replica_specs=specs, run_policy=run_policy),
    )


def trainer_job(
    name: str,
    namespace: str,
    settings: PodSettings,
    task: str,
    workers: int,
    runtime: str,
    *,
    wait_for: str | None,
    timeout: int = 24 * 3600,
) -> Any:
    """A Kubeflow Trainer TrainJob on the ClusterTrainingRuntime `runtime`: `workers` nodes,
    each with its GPUs; the volume, the GPU scheduling and the wait go in a runtime patch."""
    tr = _module("kubeflow_trainer_api.models")

    def plain(model: Any, cls: Any) -> Any:  # a kubernetes client model as a Trainer model
        return cls.from_dict(to_dict(model))

    selector, tolerations = gpu_scheduling(settings)
    resources = _resources(settings)
    env = [plain(e, tr.IoK8sApiCoreV1EnvVar) for e in _environment(settings)]
    pod_patch = tr.TrainerV1alpha1PodSpecPatch(
        node_selector=selector,
        tolerations=[plain(t, tr.IoK8sApiCoreV1Toleration) for t in tolerations or []] or None,
        volumes=[plain(v, tr.IoK8sApiCoreV1Volume) for v in _volumes(settings)],
        containers=[
            tr.TrainerV1alpha1ContainerPatch(
                name="node",
                volume_mounts=[plain(m, tr.IoK8sApiCoreV1VolumeMount) for m in _mounts()],
            )
        ],
        service_account_name=settings.service_account,
        image_pull_secrets=[
            tr.IoK8sApiCoreV1LocalObjectReference(name=s) for s in settings.image_pull_secrets
        ]
        or None,
    )
    labels = dict(settings.labels)
    patch = tr.TrainerV1alpha1RuntimePatch(
        manager=TRAINER_MANAGER,
        training_runtime_spec=tr.TrainerV1alpha1TrainingRuntimeSpecPatch(
            template=tr.TrainerV1alpha1JobSetTemplatePatch(
                spec=tr.TrainerV1alpha1JobSetSpecPatch(
                    replicated_jobs=[
                        tr.TrainerV1alpha1ReplicatedJobPatch(
                            name="node",
                            template=tr.TrainerV1alpha1JobTemplatePatch(
                                spec=tr.TrainerV1alpha1JobSpecPatch(
                                    template=tr.TrainerV1alpha1PodTemplatePatch(
                                        metadata=tr.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
                                            labels=labels
                                        ),
                                        spec=pod_patch,
                                    )
                                )
                            ),
                        )
                    ]
                )
            )
        ),
    )
    if wait_for is not None:
        # a Trainer runtime patch cannot add an init container of its own: the wait runs
        # first in the node's command instead, so a failed prepare fails every node
        command = [
            "sh",
            "-ec",
            'python3 -m cellpipe.runtime.train_entry wait --run-dir "$0" --timeout "$1" && '
            'exec python3 -m cellpipe.runtime.train_entry train --run-dir "$0" --step "$2"',
            settings.run_dir,
            str(timeout),
            task,
        ]
    else:
        command = [*ENTRY, *_train_args(settings, task)]
    return tr.TrainerV1alpha1TrainJob(
        api_version="trainer.kubeflow.org/v1alpha1",
        kind="TrainJob",
        metadata=tr.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name, namespace=namespace, labels=labels
        ),
        spec=tr.TrainerV1alpha1TrainJobSpec(
            runtime_ref=tr.TrainerV1alpha1RuntimeRef(
                name=runtime, kind="ClusterTrainingRuntime", api_group="trainer.kubeflow.org"
            ),
            trainer=tr.TrainerV1alpha1Trainer(
                image=settings.image,
                command=command,
                env=env,
                num_nodes=workers,
                resources_per_node=plain(resources, tr.IoK8sApiCoreV1ResourceRequirements)
                if resources is not None
                else None,
            ),
            runtime_patches=[patch],
        ),
    )


# --- the plan: everything a training submit sends -------------------------------------------


@dataclass
class TrainingPlan:
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


# --- the engine -----------------------------------------------------------------------------


def _kind_of(obj: dict[str, Any]) -> str:
    return str(obj.get("kind"))


class TrainingEngine:
    """Submits a training job and follows, cancels and deletes it through the Kubernetes API."""

    def __init__(
        self,
        engine: str,
        options: TrainingOptions | None = None,
        kube: KubeSettings | None = None,
        store: RunStore | None = None,
        home: Path | None = None,
    ) -> None:
        if engine not in KINDS:
            raise TrainingError(f"unknown training engine {engine!r}")
        self.name = engine
        self.kind = KINDS[engine]
        self.options = options or TrainingOptions()
        self.kube = kube or KubeSettings()
        self.home = home or cellpipe_home()
        self.store = store or open_store(self.home)
        self.last_plan: TrainingPlan | None = None

    def namespace_for(self, request: SubmitRequest) -> str:
        """The namespace, without reaching the cluster: --namespace, else the kubeconfig
        context's (read from the file), else `default`."""
        if request.namespace or self.kube.namespace:
            return str(request.namespace or self.kube.namespace)
        from .k8s import kubeconfig_path

        path = kubeconfig_path(self.kube)
        if path is not None and path.is_file():
            with contextlib.suppress(Exception):
                from kubernetes import config

                contexts, active = config.list_kube_config_contexts(config_file=str(path))
                if self.kube.context:
                    active = next(c for c in contexts if c["name"] == self.kube.context)
                found = (active.get("context") or {}).get("namespace")
                if found:
                    return str(found)
        return "default"

    def plan(self, request: SubmitRequest) -> Submission:
        from .k8s import to_yaml

        namespace = self.namespace_for(request)
        plan = plan_training(self.name, request, self.options, namespace)
        self.last_plan = plan
        summary = [
            f"{plan.kind.kind} {plan.names.job} in namespace {namespace}: step "
            f"{plan.step.name!r} on {plan.workers} worker(s)"
            + (
                f", {plan.gpus_per_worker} GPU(s) each"
                + (f" of type {plan.gpu_type}" if plan.gpu_type else "")
                if plan.gpus_per_worker
                else ""
            ),
            (
                f"steps before it, run once by Job {plan.names.prepare}: "
                + ", ".join(repr(s.name) for s in plan.before)
            )
            if plan.before
            else "no steps before it",
            f"storage: PVC {plan.claim}"
            + (" (created for this run)" if plan.claim_created else "")
            + f", outputs in runs/{request.run_id}/outputs",
        ]
        skipped = [
            s.name for s in request.pipeline.steps if s is not plan.step and s not in plan.before
        ]
        if skipped:
            summary.append(
                "not part of the job (they do not come before the trained step): "
                + ", ".join(repr(n) for n in skipped)
            )
        external = {
            "namespace": namespace,
            "kind": plan.kind.kind,
            "api_version": plan.kind.api_version,
            "plural": plan.kind.plural,
            "name": plan.names.job,
            "prepare_job": plan.names.prepare if plan.before else None,
            "pvc": plan.claim,
            "pvc_created": plan.claim_created,
            "step": plan.step.name,
            "prepare_steps": [s.name for s in plan.before],
            "workers": plan.workers,
            "kubeconfig": self.kube.kubeconfig,
            "context": self.kube.context,
        }
        objects = [to_dict(o) for o in plan.objects]
        return Submission(self.name, to_yaml(plan.objects), objects, summary, external)

    def _core(self, record: RunRecord | None = None) -> tuple[Any, Any, Any]:
        """(CoreV1Api, BatchV1Api, CustomObjectsApi) for the run's cluster."""
        from kubernetes import client

        settings = KubeSettings(
            kubeconfig=self.kube.kubeconfig
            or (record.external.get("kubeconfig") if record else None),
            context=self.kube.context or (record.external.get("context") if record else None),
            namespace=self.kube.namespace,
        )
        connection = connect(settings)
        api = connection.api_client
        return client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)

    def submit(self, request: SubmitRequest, submission: Submission) -> RunRecord:
        record = record_submission(self.store, self.home, self.name, request, submission)
        try:
            core, batch, custom = self._core(record)
        except ClusterError as exc:
            return fail_submission(self.store, record, str(exc))
        namespace = record.external["namespace"]
        created: list[dict[str, Any]] = []
        try:
            for obj in submission.objects:
                self._create(core, batch, custom, namespace, obj)
                created.append(obj)
        except ClusterError as exc:
            cleaned = self._clean_up(core, batch, custom, namespace, created)
            note = (
                f" (removed what this submit had created: {', '.join(cleaned)})" if cleaned else ""
            )
            return fail_submission(self.store, record, f"{exc}{note}")
        record.status = "Pending"
        self.store.update_run(record)
        return record

    def _create(
        self, core: Any, batch: Any, custom: Any, namespace: str, obj: dict[str, Any]
    ) -> None:
        kind = _kind_of(obj)
        name = obj["metadata"]["name"]
        what = f"creating {kind} {name} in namespace {namespace}"
        try:
            if kind == "PersistentVolumeClaim":
                core.create_namespaced_persistent_volume_claim(
                    namespace, obj, _request_timeout=REQUEST_TIMEOUT
                )
            elif kind == "Job":
                batch.create_namespaced_job(namespace, obj, _request_timeout=REQUEST_TIMEOUT)
            else:
                custom.create_namespaced_custom_object(
                    self.kind.group,
                    self.kind.version,
                    namespace,
                    self.kind.plural,
                    obj,
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except Exception as exc:
            error = explain(exc, what)
            if error.status == 404 and kind == self.kind.kind:
                operator = (
                    "Kubeflow Trainer"
                    if self.name == "trainjob"
                    else "the Kubeflow training operator"
                )
                error = ClusterError(
                    f"{error}. Is {operator} "
                    f"installed (the {self.kind.plural}.{self.kind.group} resource)?",
                    404,
                )
            raise error from None

    def _delete(
        self, core: Any, batch: Any, custom: Any, namespace: str, kind: str, name: str
    ) -> bool:
        """Delete one object; False when it was already gone."""
        try:
            if kind == "PersistentVolumeClaim":
                core.delete_namespaced_persistent_volume_claim(
                    name, namespace, _request_timeout=REQUEST_TIMEOUT
                )
            elif kind == "Job":
                batch.delete_namespaced_job(
                    name,
                    namespace,
                    propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                )
            else:
                custom.delete_namespaced_custom_object(
                    self.kind.group,
                    self.kind.version,
                    namespace,
                    self.kind.plural,
                    name,
                    propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except Exception as exc:
            error = explain(exc, f"deleting {kind} {name}")
            if error.status == 404:
                return False
            raise error from None
        return True

    def _clean_up(
        self, core: Any, batch: Any, custom: Any, namespace: str, created: list[dict[str, Any]]
    ) -> list[str]:
        cleaned = []
        for obj in reversed(created):
            kind, name = _kind_of(obj), obj["metadata"]["name"]
            with contextlib.suppress(ClusterError):
                if self._delete(core, batch, custom, namespace, kind, name):
                    cleaned.append(f"{kind} {name}")
        return cleaned

    # -- follow ---------------------------------------------------------------------------
    def _read(
        self, record: RunRecord
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
        """(the training job, the prepare Job, the run's pods) as plain dicts."""
        core, batch, custom = self._core(record)
        external = record.external
        namespace = external["namespace"]
        job = prepare = None
        try:
            job = custom.get_namespaced_custom_object(
                self.kind.group,
                self.kind.version,
                namespace,
                self.kind.plural,
                external["name"],
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception as exc:
            error = explain(exc, f"reading {self.kind.kind} {external['name']}")
            if error.status != 404:
                raise error from None
        if external.get("prepare_job"):
            try:
                response = batch.read_namespaced_job(
                    external["prepare_job"],
                    namespace,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
                prepare = json.loads(response.data)
            except Exception as exc:
                error = explain(exc, f"reading Job {external['prepare_job']}")
                if error.status != 404:
                    raise error from None
        pods: list[dict[str, Any]] = []
        try:
            response = core.list_namespaced_pod(
                namespace,
                label_selector=f"{RUN_LABEL}={label_value(record.run_id)}",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            pods = json.loads(response.data).get("items") or []
        except Exception as exc:
            error = explain(exc, "listing the run's pods")
            if error.status != 403:
                raise error from None
        return job, prepare, pods

    def refresh(self, record: RunRecord) -> RunRecord:
        if record.status in FINISHED or "name" not in record.external:
            return record
        job, prepare, pods = self._read(record)
        self._apply(record, job, prepare, pods)
        return record

    def _apply(
        self,
        record: RunRecord,
        job: dict[str, Any] | None,
        prepare: dict[str, Any] | None,
        pods: list[dict[str, Any]],
    ) -> None:
        external = record.external
        evicted = [
            f"pod {p['metadata']['name']} was evicted: {p['status'].get('message', '')}".strip()
            for p in pods
            if (p.get("status") or {}).get("reason") == "Evicted"
        ]
        prepare_status: str = "Succeeded"
        prepare_error: str | None = None
        if prepare is not None:
            prepare_status, prepare_error = _job_status(prepare)
        if external.get("prepare_job") and prepare is None:
            prepare_status, prepare_error = "Failed", "the prepare Job is gone from the cluster"
        status: str
        error: str | None
        if job is None:
            status, error = (
                "Failed",
                f"the {self.kind.kind} {external['name']} is gone from the cluster",
            )
        else:
            status, error = _training_status(self.name, job)
        if prepare_status == "Failed":
            status = "Failed"
            error = f"a step before the trained one failed: {prepare_error}"
        elif prepare_status in ("Pending", "Running") and status == "Pending":
            status = "Running" if prepare_status == "Running" else "Pending"
        if evicted and status != "Succeeded":
            error = "; ".join([*(e for e in [error] if e), *evicted])
        for step in record.steps.values():
            if step.name in external.get("prepare_steps", []):
                new = prepare_status
            elif step.name == external.get("step"):
                new = status if prepare_status == "Succeeded" else "Pending"
                if prepare_status == "Failed":
                    new = "Cancelled"
            else:
                new = "Cancelled" if status in FINISHED else "Pending"
            step_error = None
            if new == "Failed":
                step_error = (
                    prepare_error if step.name in external.get("prepare_steps", []) else error
                )
            elif new == "Cancelled" and step.name not in (
                external.get("step"),
                *external.get("prepare_steps", []),
            ):
                step_error = (
                    "not part of the training job (it does not come before the trained step)"
                )
            if (step.status, step.error) != (new, step_error):
                step.status, step.error = new, step_error
                self.store.update_step(record.run_id, step)
        if status == "Succeeded" and not record.metrics:
            record.metrics = _metrics_from_pods(pods)
            if record.metrics:
                self.store.update_run(record)
        set_status(self.store, record, status, error if status != "Succeeded" else None)

    def cancel(self, record: RunRecord) -> RunRecord:
        """Delete the job and the prepare Job (their pods stop); the claim and what is on it
        stay until `cellpipe delete`."""
        core, batch, custom = self._core(record)
        external = record.external
        namespace = external["namespace"]
        self._delete(core, batch, custom, namespace, self.kind.kind, external["name"])
        if external.get("prepare_job"):
            self._delete(core, batch, custom, namespace, "Job", external["prepare_job"])
        for step in record.steps.values():
            if step.status in ("Pending", "Running"):
                step.status, step.error = "Cancelled", "cancelled"
                self.store.update_step(record.run_id, step)
        set_status(self.store, record, "Cancelled", "cancelled")
        return record

    def delete(self, record: RunRecord) -> list[str]:
        """Delete everything the run created in the cluster; what was deleted."""
        core, batch, custom = self._core(record)
        external = record.external
        namespace = external["namespace"]
        deleted = []
        targets = [(self.kind.kind, external.get("name"))]
        if external.get("prepare_job"):
            targets.append(("Job", external["prepare_job"]))
        if external.get("pvc_created"):
            targets.append(("PersistentVolumeClaim", external.get("pvc")))
        for kind, name in targets:
            if name and self._delete(core, batch, custom, namespace, kind, name):
                deleted.append(f"{kind} {name}")
        return deleted

    def logs(self, record: RunRecord, step: str | None, follow: bool) -> Iterator[str]:
        from .kfp_engine import _pod_log

        try:
            core, _, _ = self._core(record)
            _, _, pods = self._read(record)
        except ClusterError as exc:
            yield f"cannot read the run's pods: {exc}\n"
            return
        external = record.external
        wanted = pods
        if step is not None:
            found = next((s for s in record.steps.values() if step in (s.name, s.task)), None)
            if found is None:
                names = ", ".join(repr(s) for s in record.steps)
                yield f"run {record.run_id} has no step {step!r}; its steps are {names}\n"
                return
            label = "prepare" if found.name in external.get("prepare_steps", []) else found.task
            wanted = [
                p for p in pods if (p["metadata"].get("labels") or {}).get(STEP_LABEL) == label
            ]
        if not wanted:
            yield "no pods of this run are there (yet, or any more)\n"
            return
        for pod in sorted(wanted, key=lambda p: p["metadata"]["name"]):
            name = pod["metadata"]["name"]
            containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
            if len(wanted) > 1:
                yield f"==> {name} <==\n"
            try:
                yield from _pod_log(
                    core, name, external["namespace"], containers[0] if containers else None, follow
                )
            except ClusterError as exc:
                yield f"cannot read the log of pod {name}: {exc}\n"


def _condition(
    conditions: list[dict[str, Any]] | None, kinds: tuple[str, ...]
) -> dict[str, Any] | None:
    """The latest condition of one of `kinds` that is True."""
    true = [c for c in conditions or [] if c.get("status") == "True" and c.get("type") in kinds]
    return true[-1] if true else None


def _job_status(job: dict[str, Any]) -> tuple[str, str | None]:
    """A batch/v1 Job's status in the run vocabulary."""
    status = job.get("status") or {}
    conditions = status.get("conditions")
    done = _condition(conditions, ("Complete", "Failed"))
    if done is not None:
        if done["type"] == "Complete":
            return "Succeeded", None
        return "Failed", done.get("message") or done.get("reason") or "the Job failed"
    if status.get("active"):
        return "Running", None
    return "Pending", None


def _training_status(engine: str, job: dict[str, Any]) -> tuple[str, str | None]:
    """A training job's conditions in the run vocabulary."""
    conditions = (job.get("status") or {}).get("conditions")
    if engine == "trainjob":
        done = _condition(conditions, ("Complete", "Failed"))
        if done is not None:
            if done["type"] == "Complete":
                return "Succeeded", None
            return "Failed", done.get("message") or done.get("reason")
        if _condition(conditions, ("Suspended",)):
            return "Pending", "suspended"
        jobs = (job.get("status") or {}).get("jobsStatus") or []
        return ("Running", None) if any(j.get("active") for j in jobs) else ("Pending", None)
    latest = _condition(
        conditions, ("Created", "Running", "Restarting", "Succeeded", "Failed", "Suspended")
    )
    if latest is None:
        return "Pending", None
    kind = latest["type"]
    if kind == "Succeeded":
        return "Succeeded", None
    if kind == "Failed":
        return "Failed", latest.get("message") or latest.get("reason") or "the job failed"
    if kind in ("Running", "Restarting"):
        return "Running", None
    return "Pending", None


def _metrics_from_pods(pods: list[dict[str, Any]]) -> dict[str, float]:
    """Metrics from the termination message of the worker of rank 0."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if not message:
                continue
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                data = json.loads(message)
                if data.get("status") == "Succeeded":
                    return {k: float(v) for k, v in (data.get("metrics") or {}).items()}
    return {}


__all__ = [
    "KINDS",
    "TrainingEngine",
    "TrainingError",
    "TrainingOptions",
    "plan_training",
    "steps_before",
    "trained_step",
]
