"""KServe's InferenceService (serving.kserve.io/v1beta1) as the fake API server checks it:
the kserve SDK's models' field table (kserve_v1beta1_models.json, made from kserve 0.21 by
make_kserve_models.py; kserve itself cannot be imported by the tests: it pins pandas < 3),
a predictor with exactly one of a model or containers, and its pod parts through the
Kubernetes schema (schemas.py).

Not KServe's CRD file itself (config/crd/full/serving.kserve.io_inferenceservices.yaml, 1 MB,
not on any package index this machine reaches): the SDK's models are generated from the same
Go API types, so field names and types agree; the CRD's enums and defaults are not checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KSERVE_MODELS: dict[str, dict[str, str]] = json.loads(
    (Path(__file__).with_name("kserve_v1beta1_models.json")).read_text()
)["models"]
# a ModelSpec's own fields; the rest of it is a Kubernetes container's
_MODEL_FIELDS = ("modelFormat", "runtime", "storageUri", "storage", "protocolVersion")


class TableModel:
    """A kserve model as its field table says it (attribute_map and openapi_types)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.attribute_map = {key: key for key in fields}
        self.openapi_types = dict(fields)


def inference_service_problems(obj: dict[str, Any]) -> list[str]:
    from .schemas import _pod_template_problems, check_model

    found = check_model(obj, "V1beta1InferenceService", "InferenceService")
    predictor = (obj.get("spec") or {}).get("predictor")
    if found or not isinstance(predictor, dict):
        return found or ["InferenceService: spec.predictor is required"]
    model, containers = predictor.get("model"), predictor.get("containers")
    if (model is None) == (containers is None):
        return ["InferenceService: the predictor needs exactly one of model or containers"]
    if model is not None:
        if not (model.get("modelFormat") or {}).get("name") or not model.get("storageUri"):
            return ["InferenceService: a predictor model needs modelFormat.name and storageUri"]
        container = {k: v for k, v in model.items() if k not in _MODEL_FIELDS}
        containers = [{"name": "kserve-container", "image": "runtime", **container}]
    pod = {
        k: predictor[k]
        for k in ("nodeSelector", "tolerations", "serviceAccountName")
        if k in predictor
    }
    template = {"metadata": {}, "spec": {**pod, "containers": containers}}
    return _pod_template_problems(template, "InferenceService predictor")
