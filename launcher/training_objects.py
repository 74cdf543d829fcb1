"""The training engines' Kubernetes objects, built by pure functions that return the official
SDKs' typed models: the kubernetes client's (PVC, Job, pod templates), kubeflow-training's
(PyTorchJob, TFJob, XGBoostJob, MPIJob) and Kubeflow Trainer's (TrainJob), with DNS-1123,
hash-suffixed names. Nothing here reaches a cluster or reads configuration.

    pytorchjob  tfjob  xgboostjob  mpijob   (the training operator, kubeflow.org/v1)
    trainjob                                (Kubeflow Trainer, trainer.kubeflow.org/v1alpha1)

Every pod of a run mounts the run's claim at /cellpipe/data; a worker's init container (a
TrainJob node's command) waits there for the steps before the trained one.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass, field
from typing import Any

from cellpipe.converter.kfp_ir import DEFAULT_GPU_TOLERATION
from cellpipe.converter.slugs import safe_name

from .k8s import MANAGED_BY, PIPELINE_LABEL, RUN_LABEL, label_value, to_dict

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


def _module(name: str) -> Any:
    """An SDK's models module, typed as Any (the generated models carry no type hints)."""
    return importlib.import_module(name)


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


__all__ = [
    "DATA_MOUNT",
    "KINDS",
    "JobKind",
    "Names",
    "PodSettings",
    "container",
    "gpu_scheduling",
    "names_for",
    "operator_job",
    "pod_template",
    "prepare_job",
    "run_labels",
    "storage_claim",
    "trainer_job",
]
