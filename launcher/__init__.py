"""cellpipe.launcher: every side effect and every workflow, behind one API (the README's
"The launcher API" lists the modules a front door calls).

Importing the package imports nothing else: `cellpipe.launcher.vocabulary` stays cheap for
the views and the CLI's start. The names below load their module when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .local_engine import LocalEngine, RunRequest
    from .store import RunRecord, RunStore, StepRecord, cellpipe_home

_EXPORTS = {
    "LocalEngine": "local_engine",
    "RunRequest": "local_engine",
    "RunRecord": "store",
    "RunStore": "store",
    "StepRecord": "store",
    "cellpipe_home": "store",
}

__all__ = ["LocalEngine", "RunRecord", "RunRequest", "RunStore", "StepRecord", "cellpipe_home"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
