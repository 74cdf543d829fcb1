"""The kfp SDK's compile-time parts (kfp.dsl, kfp.compiler), imported without its client.

`import kfp` runs kfp/__init__.py, which imports `kfp.Client` and with it the Kubernetes
client, google-auth and requests: most of a second (seconds where jsonschema's format
checkers are installed) before anything compiles. kfp's own step runtime skips that: its
launch command sets `_KFP_RUNTIME=true`, which kfp/__init__.py reads. This module does the
same for the package's __init__ alone, then imports kfp.dsl and kfp.compiler as usual (their
own __init__ reads the variable too, and must see it unset).

`kfp.Client` and `kfp.components` stay where kfp users look for them: the package gets a
module `__getattr__` (PEP 562) that imports them when first asked for, so a kernel that ran
`%cellpipe compile` can still `import kfp; kfp.Client(...)`.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any

_RUNTIME_VARIABLE = "_KFP_RUNTIME"
_LOCK = threading.Lock()


def _import_kfp_without_its_client() -> None:
    with _LOCK:
        if "kfp" in sys.modules:  # imported already, whole or not: nothing to save
            return
        previous = os.environ.get(_RUNTIME_VARIABLE)
        os.environ[_RUNTIME_VARIABLE] = "true"
        try:
            import kfp
        finally:
            if previous is None:
                os.environ.pop(_RUNTIME_VARIABLE, None)
            else:
                os.environ[_RUNTIME_VARIABLE] = previous
        if "Client" not in vars(kfp):
            kfp.__getattr__ = _imported_when_asked


def _imported_when_asked(name: str) -> Any:
    """What kfp/__init__.py imports at start (`Client`, `components`, `dsl`), on first use."""
    if name == "Client":
        from kfp.client import Client

        return Client
    if name in ("components", "dsl"):
        return importlib.import_module(f"kfp.{name}")
    raise AttributeError(f"module 'kfp' has no attribute {name!r}")


_import_kfp_without_its_client()

from kfp import dsl  # noqa: E402 (after the package, imported above without its client)
from kfp.compiler import pipeline_spec_builder  # noqa: E402
from kfp.dsl import python_component, structures  # noqa: E402

__all__ = ["dsl", "pipeline_spec_builder", "python_component", "structures"]
