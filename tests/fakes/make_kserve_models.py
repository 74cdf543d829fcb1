"""Writes kserve_v1beta1_models.json: the field table of the kserve SDK's models that an
InferenceService is made of (each model's JSON keys and their types), which tests/fakes/
schemas.py checks InferenceServices against where kserve cannot be imported (the test
environment; kserve pins pandas < 3). Run it with a Python that has kserve:

    build/serve-venv-0.21.0/bin/python tests/fakes/make_kserve_models.py
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import kserve.models

ROOT_TYPE = "V1beta1InferenceService"
_INNER = re.compile(r"^(?:list\[(.+)\]|dict\(str, (.+)\))$")


def table() -> dict[str, dict[str, str]]:
    """Each kserve model reachable from the InferenceService: JSON key -> type name
    (kubernetes client types are left to the Kubernetes schemas)."""
    found: dict[str, dict[str, str]] = {}
    todo = [ROOT_TYPE]
    while todo:
        name = todo.pop()
        klass = getattr(kserve.models, name, None)
        if name in found or klass is None:
            continue
        fields = {klass.attribute_map[a]: t for a, t in klass.openapi_types.items()}
        found[name] = fields
        for type_name in fields.values():
            while (match := _INNER.match(type_name)) is not None:
                type_name = match[1] or match[2]
            todo.append(type_name)
    return found


if __name__ == "__main__":
    out = Path(__file__).with_name("kserve_v1beta1_models.json")
    data = {
        "source": f"kserve {metadata.version('kserve')} (PyPI), kserve.models' attribute_map "
        "and openapi_types, generated from KServe's Go API types as its CRD is",
        "models": table(),
    }
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"{out}: {len(data['models'])} models")
