"""Checking Kubernetes objects against the real schemas, as the tests and the fakes do.

- Built-in kinds (PersistentVolumeClaim, Job, Pod...): kubernetes-validate, the Kubernetes
  OpenAPI schemas, strict (unknown fields are errors).
- The training operator's kinds (kubeflow.org/v1): the kubeflow-training SDK's models (every
  field known and of its type, required ones present), and each pod template through the
  Kubernetes schema as a PodTemplate.
- Kubeflow Trainer's TrainJob: the kubeflow SDK's pydantic model (strict types), and the
  patched pod spec's parts through the Kubernetes schema.
- Katib's Experiment and Trial (kubeflow.org/v1beta1): Katib's CRDs
  (https://github.com/kubeflow/katib/blob/master/manifests/v1beta1/components/crd/experiment.yaml
  and trial.yaml, v0.19) check nothing (`x-kubernetes-preserve-unknown-fields: true`), so the
  checks are Katib's own: its API models (kubeflow-katib-api 0.19, strict types, no unknown
  field), the rules of its validating webhook (pkg/webhook/v1beta1/experiment/validator/
  validator.go: counts, objective, parameters' feasible spaces, every trial parameter used in
  the template and every placeholder declared, no name or namespace in the template), and the
  trial template, its placeholders filled, through the Kubernetes schema as a batch Job.
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
    from .kserve_schema import KSERVE_MODELS, TableModel

    if name in KSERVE_MODELS:  # KServe's InferenceService (kserve_schema.py)
        return TableModel(KSERVE_MODELS[name])
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
    if kind == "InferenceService":
        from .kserve_schema import inference_service_problems

        return inference_service_problems(obj)
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
    if kind in ("Experiment", "Trial"):
        return katib_problems(obj)
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{kind}: {exc.message} (at {'.'.join(str(p) for p in exc.path)})"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{kind}: no schema for {obj.get('apiVersion')}"]
    return []


_KATIB_ALGORITHMS = {
    "grid",
    "random",
    "tpe",
    "multivariate-tpe",
    "bayesianoptimization",
    "cmaes",
    "hyperband",
    "sobol",
    "enas",
    "darts",
    "pbt",
}
_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")


def katib_problems(obj: dict[str, Any]) -> list[str]:
    """A Katib Experiment or Trial as Katib would refuse it (see the module's docstring)."""
    import json

    import pydantic
    from kubeflow_katib_api import models as katib

    kind = obj["kind"]
    model_class = katib.V1beta1Experiment if kind == "Experiment" else katib.V1beta1Trial
    try:
        model = model_class.from_dict(obj)
    except pydantic.ValidationError as exc:
        return [f"{kind}: {exc}"]
    unknown = _unknown_fields(obj, model.to_dict() if model else {}, kind)
    if unknown or kind == "Trial":
        return unknown
    spec = obj.get("spec") or {}
    found = _katib_counts(spec) + _katib_parameters(spec)
    template = spec.get("trialTemplate") or {}
    for name in (
        "primaryContainerName",
        "successCondition",
        "failureCondition",
        "trialParameters",
        "trialSpec",
    ):
        if not template.get(name):
            found.append(f"spec.trialTemplate.{name}: must be specified")
    if found:
        return found
    text = json.dumps(template["trialSpec"])
    declared = [p["name"] for p in template["trialParameters"]]
    names = {p["name"] for p in spec["parameters"]}
    for parameter in template["trialParameters"]:
        reference = parameter.get("reference", "")
        if reference not in names and not reference.startswith("${trialSpec."):
            found.append(
                f"trialParameters {parameter['name']}: reference {reference} is no parameter"
            )
        if f"${{trialParameters.{parameter['name']}}}" not in text:
            found.append(f"trialParameters {parameter['name']}: not used in the trial template")
    undeclared = sorted(set(_PLACEHOLDER.findall(text)) - set(declared))
    if undeclared:
        found.append(f"the trial template uses undeclared parameters {undeclared}")
    job = json.loads(_PLACEHOLDER.sub("1", text))
    if (job.get("metadata") or {}).get("name") or (job.get("metadata") or {}).get("namespace"):
        found.append("metadata.name and metadata.namespace in the trial template must be omitted")
    try:
        kubernetes_validate.validate(
            {**job, "metadata": {"name": "trial"}}, K8S_VERSION, strict=True
        )
    except kubernetes_validate.ValidationError as exc:
        found.append(f"trial template: {exc.message} (at {'.'.join(str(p) for p in exc.path)})")
    return found


def _unknown_fields(sent: Any, kept: Any, path: str) -> list[str]:
    """Fields of `sent` the model dropped (its `trialSpec` is free-form: not looked into)."""
    if not isinstance(sent, dict) or not isinstance(kept, dict):
        return []
    found = []
    for key, value in sent.items():
        if key not in kept:
            found.append(f"{path}.{key}: unknown field")
        elif key not in ("trialSpec", "metadata", "runSpec"):
            found.extend(_unknown_fields(value, kept[key], f"{path}.{key}"))
            if isinstance(value, list) and isinstance(kept[key], list):
                for i, (a, b) in enumerate(zip(value, kept[key], strict=False)):
                    found.extend(_unknown_fields(a, b, f"{path}.{key}[{i}]"))
    return found


def _katib_counts(spec: dict[str, Any]) -> list[str]:
    found = []
    most, parallel, failed = (
        spec.get(k) for k in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
    )
    if most is not None and most <= 0:
        found.append("spec.maxTrialCount: must be greater than 0")
    if parallel is not None and (parallel <= 0 or (most is not None and parallel > most)):
        found.append("spec.parallelTrialCount: above 0 and at most spec.maxTrialCount")
    if failed is not None and (failed < 0 or (most is not None and failed > most)):
        found.append("spec.maxFailedTrialCount: 0 or more and at most spec.maxTrialCount")
    objective = spec.get("objective") or {}
    if objective.get("type") not in ("minimize", "maximize") or not objective.get(
        "objectiveMetricName"
    ):
        found.append("spec.objective: type minimize|maximize and objectiveMetricName needed")
    if objective.get("objectiveMetricName") in (objective.get("additionalMetricNames") or []):
        found.append("spec.objective.additionalMetricNames: holds the objective")
    if (spec.get("algorithm") or {}).get("algorithmName") not in _KATIB_ALGORITHMS:
        found.append("spec.algorithm.algorithmName: no such algorithm in Katib's config")
    return found


def _katib_parameters(spec: dict[str, Any]) -> list[str]:
    found = []
    if not spec.get("parameters"):
        found.append("spec.parameters must be specified")
    for i, parameter in enumerate(spec.get("parameters") or []):
        kind, space = parameter.get("parameterType"), parameter.get("feasibleSpace") or {}
        where = f"spec.parameters[{i}]"
        if kind not in ("int", "double", "categorical", "discrete"):
            found.append(f"{where}.parameterType: {kind} is not supported")
        if space.get("distribution") not in (
            None,
            "",
            "uniform",
            "logUniform",
            "normal",
            "logNormal",
        ):
            found.append(f"{where}.feasibleSpace.distribution: not supported")
        if not space:
            found.append(f"{where}.feasibleSpace must be specified")
        elif kind in ("int", "double") and (
            space.get("list") or not space.get("min") or not space.get("max")
        ):
            found.append(f"{where}.feasibleSpace: min and max, no list, for {kind}")
        elif kind in ("categorical", "discrete") and (
            space.get("min") or space.get("max") or space.get("step") or not space.get("list")
        ):
            found.append(f"{where}.feasibleSpace: a list, no min, max or step, for {kind}")
    return found
