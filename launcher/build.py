"""Building a pipeline's image: the request, the result, and the choice of builder.

    build_image(request, progress, builders) -> list[BuildResult]

finds the requirements, plans the layers (images.py), and hands each plan to the builder the
request names, found in the registry (cellpipe.launcher.plugins; `builders` maps more names, or
replaces some, by import string, as `c.CellPipe.builders` does): `append` (no daemon: layers
added to the base through the registry API), `engine` (a Docker Engine API: Docker or podman)
or `kaniko` (a Job for building inside the cluster). An image a builder builds here whose tag
(a content hash) is already in the registry is not built again. The `Builder` protocol and what
the builders share are in builders.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .builders import (
    Builder,
    BuilderClass,
    BuildError,
    BuildRequest,
    BuiltImage,
    Progress,
    build_cache,
)
from .images import LABEL_PREFIX, ImagePlan, plan_image
from .plugins import builder_classes, load_class
from .registry import ImageRef, RegistryClient, RegistryError
from .requirements import Requirements, find_requirements

__all__ = [
    "BuildError",
    "BuildRequest",
    "BuildResult",
    "Builder",
    "BuilderClass",
    "BuiltImage",
    "Progress",
    "build_image",
    "builder_class",
    "describe_difference",
    "plans_for",
]


@dataclass
class BuildResult:
    image: str
    digest: str | None
    seconds: float
    pushed_bytes: int
    cached: bool
    builder: str
    base: str
    steps: list[str] = field(default_factory=list)  # the steps that run in this image
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # what the kaniko builder wrote

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "seconds": round(self.seconds, 3),
            "pushed_bytes": self.pushed_bytes,
            "cached": self.cached,
            "builder": self.builder,
            "base": self.base,
            "steps": self.steps,
            "warnings": self.warnings,
            "files": self.files,
        }


def builder_class(name: str, builders: Mapping[str, str] | None = None) -> BuilderClass:
    """The builder class called `name`: cellpipe's own, registered ones, then `builders`
    (name -> import string), which may add names or replace any."""
    known = {**builder_classes(), **(builders or {})}
    if name not in known:
        raise BuildError(f"unknown builder {name!r}: use one of {', '.join(known)}")
    try:
        found = load_class(known[name])
    except (ImportError, AttributeError, ValueError) as exc:
        raise BuildError(f"the builder {name!r} ({known[name]}) cannot be loaded: {exc}") from None
    if not _is_builder_class(found):
        raise BuildError(
            f"the builder {name!r} ({known[name]}) is not a builder class: one with a "
            "`builds_here` bool (True: it pushes from here; False: it writes what builds "
            "elsewhere) and a `build()` method (cellpipe.launcher.builders.BuilderClass)"
        )
    chosen: BuilderClass = found
    return chosen


def _is_builder_class(found: object) -> bool:
    return (
        isinstance(found, type)
        and isinstance(getattr(found, "builds_here", None), bool)
        and callable(getattr(found, "build", None))
    )


def plans_for(request: BuildRequest, requirements: Requirements) -> dict[str, ImagePlan]:
    """One plan per base image (steps may name their own base with `image:`)."""
    pipeline = request.pipeline
    default_base = request.base or pipeline.settings.base_image or ""
    plans: dict[str, ImagePlan] = {}
    for step in pipeline.steps:
        base = step.base_image or default_base
        if base not in plans:
            plans[base] = plan_image(
                pipeline, request.notebook_path, requirements, base, request.registry
            )
    return plans


def build_image(
    request: BuildRequest,
    progress: Progress | None = None,
    builders: Mapping[str, str] | None = None,
) -> list[BuildResult]:
    """Build (or find already built) the image of every base the pipeline uses.

    Args:
        request: what to build, and with which builder (by name).
        progress: called with a line for people at each stage.
        builders: builder names -> import strings, added to (or replacing) the registry's
            (`c.CellPipe.builders`).

    Raises:
        BuildError: the build cannot be done as asked (an unknown builder, no registry, a
            base that does not fit, pip failing, ...).
        RegistryError: the registry refused or failed a request.
    """
    say = progress or (lambda message: None)
    builder = builder_class(request.builder, builders)
    if not request.registry:
        raise BuildError(
            "no registry to push to: give --registry HOST/REPO, metadata.cellpipe.registry or "
            "c.CellPipe.registry"
        )
    start = time.perf_counter()
    say("finding requirements")
    requirements = find_requirements(
        request.pipeline, request.notebook, request.notebook_path, request.max_file_bytes
    )
    finding_seconds = time.perf_counter() - start
    results = []
    for base, plan in plans_for(request, requirements).items():
        steps = [
            s.name
            for s in request.pipeline.steps
            if (s.base_image or request.base or request.pipeline.settings.base_image) == base
        ]
        results.append(_build_one(request, builder, plan, steps, say))
    for result in results:
        result.warnings = list(requirements.warnings)
    if results:  # the first image's time includes finding the requirements they share
        results[0].seconds += finding_seconds
    return results


def _build_one(
    request: BuildRequest, builder: BuilderClass, plan: ImagePlan, steps: list[str], say: Progress
) -> BuildResult:
    start = time.perf_counter()
    base_ref = ImageRef.parse(plan.base)  # references that cannot be pushed fail here
    ImageRef.parse(plan.reference)
    if builder.builds_here:
        plan.base_digest = _base_digest(base_ref)  # the tag then names the base's content
        target = ImageRef.parse(plan.reference)
        existing = RegistryClient(target.registry).manifest_exists(target)
        if existing:
            say(f"{plan.reference} is already built")
            return BuildResult(
                plan.reference,
                existing,
                time.perf_counter() - start,
                0,
                True,
                request.builder,
                plan.base,
                steps,
            )
    built = builder(plan, build_cache(), say, request).build()
    return BuildResult(
        plan.reference,
        built.digest,
        time.perf_counter() - start,
        built.pushed_bytes,
        False,
        request.builder,
        plan.base,
        steps,
        files=list(built.files),
    )


def _base_digest(ref: ImageRef) -> str:
    try:
        digest = RegistryClient(ref.registry).manifest_exists(ref)
    except RegistryError as exc:
        raise BuildError(f"cannot read the base image {ref}: {exc}") from None
    if digest is None:
        raise BuildError(
            f"the base image {ref} does not exist; push it to the registry, or choose another "
            "with --base or metadata.cellpipe.base_image"
        )
    return digest


def describe_difference(labels: dict[str, str], wanted_labels: dict[str, str]) -> str | None:
    """None when the image was built from this notebook's code; else what differs."""
    built = labels.get(f"{LABEL_PREFIX}.notebook-hash")
    wanted = wanted_labels[f"{LABEL_PREFIX}.notebook-hash"]
    if built == wanted:
        return None
    if built is None:
        return "it carries no cellpipe labels (it was not built by cellpipe)"
    old = json.loads(labels.get(f"{LABEL_PREFIX}.steps", "{}"))
    new = json.loads(wanted_labels[f"{LABEL_PREFIX}.steps"])
    changed = sorted(t for t in new if old.get(t) != new[t] and t in old)
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    parts = []
    if changed:
        parts.append(f"steps changed since it was built: {', '.join(changed)}")
    if added:
        parts.append(f"steps not in it: {', '.join(added)}")
    if removed:
        parts.append(f"steps no longer in the notebook: {', '.join(removed)}")
    version = labels.get(f"{LABEL_PREFIX}.version")
    if not parts:
        parts.append(f"it was built from another version of the notebook (cellpipe {version})")
    return "; ".join(parts)
