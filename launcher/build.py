"""Building a pipeline's image: the request, the result, and the choice of builder.

    build_image(request, progress) -> BuildResult

finds the requirements, plans the layers (images.py), and hands the plan to a builder:
`append` (no daemon: layers added to the base through the registry API), `engine` (a Docker
Engine API: Docker or podman) or `kaniko` (a Job for building inside the cluster). An image
whose tag (a content hash) is already in the registry is not built again.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellpipe.converter.model import Pipeline

from .images import ImagePlan, plan_image
from .registry import ImageRef, RegistryClient, RegistryError
from .requirements import DEFAULT_MAX_FILE_BYTES, Requirements, find_requirements
from .store import cellpipe_home

BUILDERS = ("append", "engine", "kaniko")
Progress = Callable[[str], None]


class BuildError(Exception):
    """A build that cannot be done as asked; the message says why and what to change."""


@dataclass
class BuildRequest:
    pipeline: Pipeline
    notebook_path: Path
    notebook: dict[str, Any]
    registry: str | None
    builder: str = "append"
    base: str | None = None  # overrides the notebook's base image
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    output_dir: Path | None = None  # kaniko: where the Job and its context are written


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


def run_pip(arguments: list[str], doing: str) -> None:
    """pip, with this interpreter; a failure is a BuildError with pip's last lines and a hint."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", *arguments, "--quiet", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        tail = "\n".join(line for line in result.stderr.strip().splitlines()[-6:] if line.strip())
        raise BuildError(
            f"{doing} the requirements failed:\n{tail}\n(check the names and versions; "
            "`cellpipe requirements NOTEBOOK` shows where each came from)"
        )


def host_platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return "linux", arch


def build_cache() -> Path:
    return cellpipe_home() / "build-cache"


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


def build_image(request: BuildRequest, progress: Progress | None = None) -> list[BuildResult]:
    """Build (or find already built) the image of every base the pipeline uses."""
    say = progress or (lambda message: None)
    if request.builder not in BUILDERS:
        raise BuildError(f"unknown builder {request.builder!r}: use one of {', '.join(BUILDERS)}")
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
        results.append(_build_one(request, plan, steps, say))
    for result in results:
        result.warnings = list(requirements.warnings)
    if results:  # the first image's time includes finding the requirements they share
        results[0].seconds += finding_seconds
    return results


def _build_one(
    request: BuildRequest, plan: ImagePlan, steps: list[str], say: Progress
) -> BuildResult:
    start = time.perf_counter()
    base_ref = ImageRef.parse(plan.base)
    plan.base_digest = _base_digest(base_ref) if request.builder != "kaniko" else ""
    target = ImageRef.parse(plan.reference)
    if request.builder != "kaniko":
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
    if request.builder == "append":
        from .build_append import AppendBuilder

        digest, pushed = AppendBuilder(plan, build_cache(), say).build()
        files: list[str] = []
    elif request.builder == "engine":
        from .build_engine import EngineBuilder

        digest, pushed = EngineBuilder(plan, build_cache(), say).build()
        files = []
    else:
        from .build_kaniko import write_kaniko_build

        out = request.output_dir or (request.notebook_path.resolve().parent / "cellpipe-build")
        files = [str(p) for p in write_kaniko_build(plan, out, request.pipeline)]
        digest, pushed = None, 0
    return BuildResult(
        plan.reference,
        digest,
        time.perf_counter() - start,
        pushed,
        False,
        request.builder,
        plan.base,
        steps,
        files=files,
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
    from .images import LABEL_PREFIX

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
