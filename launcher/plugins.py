"""Engines and builders, found by name: cellpipe's own, then those other packages register.

A third-party package adds one by an entry point, as papermill's engines do:

    [project.entry-points."cellpipe.engines"]
    myengine = "mypackage.engine:MyEngine"

    [project.entry-points."cellpipe.builders"]
    mybuilder = "mypackage.builder:MyBuilder"

An engine runs here (it has `run(request, listener) -> RunRecord`, cellpipe.launcher.
local_engine.LocalEngine is the model) or submits to a cluster (`location = "cluster"` and
the `ClusterEngine` protocol of cellpipe.launcher.cluster, KfpEngine is the model). A builder
follows the `Builder` protocol of cellpipe.launcher.build. Configuration may replace any entry
(`c.CellPipe.engines`, `c.CellPipe.builders`): that is also how tests swap in doubles.

Values are import strings (`package.module.Class`); nothing is imported until it is used, so
listing the names stays cheap.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .vocabulary import (
    APPEND_BUILDER,
    ENGINE_BUILDER,
    KANIKO_BUILDER,
    KFP_ENGINE,
    KFP_LOCAL_ENGINE,
    LOCAL_ENGINE,
    TRAINING_ENGINES,
)

ENGINE_GROUP = "cellpipe.engines"
BUILDER_GROUP = "cellpipe.builders"

BUILTIN_ENGINES: dict[str, str] = {
    LOCAL_ENGINE: "cellpipe.launcher.local_engine.LocalEngine",
    KFP_LOCAL_ENGINE: "cellpipe.launcher.kfp_local.KfpLocalEngine",
    KFP_ENGINE: "cellpipe.launcher.kfp_engine.KfpEngine",
    **{name: "cellpipe.launcher.training.TrainingEngine" for name in TRAINING_ENGINES},
}
BUILTIN_BUILDERS: dict[str, str] = {
    APPEND_BUILDER: "cellpipe.launcher.build_append.AppendBuilder",
    ENGINE_BUILDER: "cellpipe.launcher.build_engine.EngineBuilder",
    KANIKO_BUILDER: "cellpipe.launcher.build_kaniko.KanikoBuilder",
}


def _registered(group: str) -> dict[str, str]:
    """name -> import string of the entry points of `group` (`module:attr` as `module.attr`)."""
    from importlib.metadata import entry_points  # here: a compile never reads the registries

    found = {}
    for point in entry_points(group=group):
        module, _, attr = point.value.partition(":")
        found[point.name] = f"{module}.{attr}" if attr else module
    return found


@cache
def engine_classes() -> dict[str, str]:
    """Every engine known by name: cellpipe's own, then registered ones (which may replace)."""
    return {**BUILTIN_ENGINES, **_registered(ENGINE_GROUP)}


@cache
def builder_classes() -> dict[str, str]:
    """Every builder known by name: cellpipe's own, then registered ones."""
    return {**BUILTIN_BUILDERS, **_registered(BUILDER_GROUP)}


def load_class(import_string: str) -> Any:
    """The class an import string names (`package.module.Class`)."""
    from traitlets.utils.importstring import import_item

    return import_item(import_string)
