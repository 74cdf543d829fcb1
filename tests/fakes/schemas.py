"""Checking Kubernetes objects against the real schemas, as the tests and the fakes do.

- Built-in kinds (PersistentVolumeClaim, Job, Pod...): kubernetes-validate, the Kubernetes
  OpenAPI schemas, strict (unknown fields are errors).
- The training operator's kinds (kubeflow.org/v1): the kubeflow-training SDK's models (every
  field known and of its type, required ones present), and each pod template through the
  Kubernetes schema as a PodTemplate.
- Kubeflow Trainer's TrainJob: the kubeflow SDK's pydantic model (strict types), and the
  patched pod spec's parts through the Kubernetes schema.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import kubernetes_validate

K8S_VERSION = "1.30.0"
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
    "date": (str,),
}
TRAINING_KINDS = {
    "PyTorchJob": "KubeflowOrgV1PyTorchJob",
    "TFJob": "KubeflowOrgV1TFJob",
    "XGBoostJob": "KubeflowOrgV1XGBoostJob",
    "MPIJob": "KubeflowOrgV1MPIJob",
}


def _model_class(name: str) -> Any:
    for module in ("kubeflow.training.models", "kubernetes.client.models"):
        found = getattr(importlib.import_module(module), name, None)
        if found is not None:
            return found
    raise KeyError(name)


def check_model(data: Any, type_name: str, path: str = "") -> list[str]:
    """Problems of `data` (a plain dict as sent) against an openapi-generator model type."""
    if data is None:
        return []
    if type_name in _PRIMITIVES:
        wanted = _PRIMITIVES[type_name]
        if not isinstance(data, wanted) or (type_name == "int" and isinstance(data, bool)):
            return [f"{path or '.'}: {data!r} is not a {type_name}"]
        return []
    match = _LIST.match(type_name)
    if match:
        if not isinstance(data, list):
            return [f"{path}: not a list"]
        return [
            p for i, item in enumerate(data) for p in check_model(item, match[1], f"{path}[{i}]")
        ]
    match = _DICT.match(type_name)
    if match:
        if not isinstance(data, dict):
            return [f"{path}: not an object"]
        return [p for k, v in data.items() for p in check_model(v, match[1], f"{path}.{k}")]
    klass = _model_class(type_name)
    if not isinstance(data, dict):
        return [f"{path}: not an object ({type_name})"]
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    problems = []
    for key, value in data.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        problems.extend(check_model(value, klass.openapi_types[by_json[key]], f"{path}.{key}"))
    return problems


def _pod_template_problems(template: Any, where: str) -> list[str]:
    manifest = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "template"},
        "template": template,
    }
    try:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {exc.message} (at {'.'.join(str(p) for p in exc.path)})"]
    return []


def problems(obj: dict[str, Any]) -> list[str]:
    """Everything wrong with one object, as a real API server (with the CRDs) would see it."""
    kind = obj.get("kind")
    if kind in TRAINING_KINDS:
        found = check_model(obj, TRAINING_KINDS[kind], kind)
        if found:
            return found
        try:  # required fields: the SDK's own constructors refuse what lacks them
            from kubeflow.training import ApiClient

            ApiClient()._ApiClient__deserialize(obj, TRAINING_KINDS[kind])
        except (ValueError, TypeError) as exc:
            return [f"{kind}: {exc}"]
        spec = obj.get("spec") or {}
        replicas = next((v for k, v in spec.items() if k.endswith("ReplicaSpecs")), {})
        if not replicas:
            return [f"{kind}: no replica specs"]
        return [
            p
            for role, replica in replicas.items()
            for p in _pod_template_problems(replica.get("template"), f"{kind} {role}")
        ]
    if kind == "TrainJob":
        import pydantic
        from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

        try:
            model = TrainerV1alpha1TrainJob.from_dict(obj)
        except pydantic.ValidationError as exc:
            return [f"TrainJob: {exc}"]
        if model is None or model.to_dict() != obj:
            return ["TrainJob: fields the Trainer API does not know were dropped"]
        return []
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{kind}: {exc.message} (at {'.'.join(str(p) for p in exc.path)})"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{kind}: no schema for {obj.get('apiVersion')}"]
    return []
