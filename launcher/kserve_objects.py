"""The InferenceService (serving.kserve.io/v1beta1) of a run's model, built from the kserve
SDK's own models by a pure function (issue 19).

A format KServe serves itself (sklearn, xgboost, lightgbm, pytorch) names its modelFormat and
the storageUri where the artifact lies; any other model gets a custom predictor: KServe's
model server with cellpipe's predictor (runtime/model_server.py) in the notebook's image,
the artifact fetched by KServe's storage initializer (STORAGE_URI) into /mnt/models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cellpipe.converter.slugs import safe_name

from .training_objects import PodSettings, gpu_scheduling

GROUP, VERSION, PLURAL, KIND = (
    "serving.kserve.io",
    "v1beta1",
    "inferenceservices",
    "InferenceService",
)
BUILT_IN_FORMATS = ("sklearn", "xgboost", "lightgbm", "pytorch")
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts STORAGE_URI's files
PREDICTOR_PORT = 8080
CONTAINER_NAME = "kserve-container"  # the predictor's container, as KServe names it


@dataclass
class ServiceSpec:
    """What the InferenceService says: the model, where it lies, where and how it runs."""

    name: str  # the InferenceService's name (a DNS-1123 label)
    namespace: str
    model_name: str  # in the model's URLs (/v1/models/NAME:predict)
    format: str
    storage_uri: str
    image: str | None = None  # the custom predictor's image (formats KServe has no runtime for)
    gpus: int = 0
    gpu_type: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    gpu_label: str = "nvidia.com/gpu.product"
    gpu_tolerations: list[dict[str, str]] | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    service_account: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def service_name(run_id: str, model: str) -> str:
    """A DNS-1123 name for a run's model, unique per (run, model)."""
    return safe_name(f"{model}-serve", salt=run_id, limit=45)


def inference_service(spec: ServiceSpec) -> Any:
    """The kserve SDK's V1beta1InferenceService for `spec`."""
    import kserve
    from kubernetes import client as k8s

    settings = PodSettings(
        image=spec.image or "",
        claim="",
        run_dir="",
        parameters={},
        labels={},
        gpus=spec.gpus,
        gpu_type=spec.gpu_type,
        gpu_resource=spec.gpu_resource,
        gpu_label=spec.gpu_label,
        gpu_tolerations=spec.gpu_tolerations,
    )
    node_selector, tolerations = gpu_scheduling(settings)
    resources = (
        k8s.V1ResourceRequirements(limits={spec.gpu_resource: str(spec.gpus)})
        if spec.gpus
        else None
    )
    predictor = kserve.V1beta1PredictorSpec(
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        service_account_name=spec.service_account,
        node_selector=node_selector,
        tolerations=tolerations,
    )
    if spec.format in BUILT_IN_FORMATS:
        predictor.model = kserve.V1beta1ModelSpec(
            name=CONTAINER_NAME,  # KServe's name for it (the SDK's default is "")
            model_format=kserve.V1beta1ModelFormat(name=spec.format),
            storage_uri=spec.storage_uri,
            resources=resources,
        )
    else:
        predictor.containers = [_custom_container(spec, resources)]
    return kserve.V1beta1InferenceService(
        api_version=f"{GROUP}/{VERSION}",
        kind=KIND,
        metadata=k8s.V1ObjectMeta(
            name=spec.name, namespace=spec.namespace, labels=dict(spec.labels) or None
        ),
        spec=kserve.V1beta1InferenceServiceSpec(predictor=predictor),
    )


def _custom_container(spec: ServiceSpec, resources: Any) -> Any:
    """KServe's model server with cellpipe's predictor, in the notebook's image."""
    from kubernetes import client as k8s

    return k8s.V1Container(
        name=CONTAINER_NAME,
        image=spec.image,
        command=["python", "-m", "cellpipe.runtime.model_server"],
        args=[
            "--model_dir",
            MODEL_MOUNT,
            "--model_name",
            spec.model_name,
            "--http_port",
            str(PREDICTOR_PORT),
        ],
        env=[k8s.V1EnvVar(name="STORAGE_URI", value=spec.storage_uri)],
        ports=[k8s.V1ContainerPort(container_port=PREDICTOR_PORT, protocol="TCP")],
        resources=resources,
    )


def to_body(service: Any) -> dict[str, Any]:
    """The InferenceService as the API server receives it (kserve's own ApiClient: the
    Kubernetes client's sanitizer reads kserve's models by their Python names in newer
    kubernetes releases)."""
    import kserve

    body: dict[str, Any] = kserve.ApiClient().sanitize_for_serialization(service)
    return body
