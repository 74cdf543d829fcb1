"""What every image builder shares: the request, what a build gives back, the `Builder`
protocol, and the pieces the builders use (pip, this machine's platform, the build cache).

The builders (build_append.py, build_engine.py, build_kaniko.py, and any another package
registers under the entry-point group `cellpipe.builders`) import this module; build.py finds
them by name through the registry (cellpipe.launcher.plugins) and never the other way round.

A builder is a class, constructed once per image and built once:

    built = SomeBuilder(plan, cache, say, request).build()   # -> BuiltImage

`SomeBuilder.builds_here` says what happens around it. A builder that builds here (True: the
image is pushed from this machine) gets a plan whose base is pinned by its digest, and is not
called when the registry already holds the plan's tag. A builder that writes something for
elsewhere to build (False, as kaniko writes a Job) is always called, the tag is computed from
the base's name, and nothing in the registry is read.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cellpipe.converter.model import Pipeline

from .images import ImagePlan
from .requirements import DEFAULT_MAX_FILE_BYTES
from .store import cellpipe_home
from .vocabulary import DEFAULT_BUILDER

Progress = Callable[[str], None]


class BuildError(Exception):
    """A build that cannot be done as asked; the message says why and what to change."""


@dataclass
class BuildRequest:
    pipeline: Pipeline
    notebook_path: Path
    notebook: dict[str, Any]
    registry: str | None
    builder: str = DEFAULT_BUILDER
    base: str | None = None  # overrides the notebook's base image
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    output_dir: Path | None = None  # kaniko: where the Job and its context are written


@dataclass(frozen=True)
class BuiltImage:
    """What one builder's `build()` gives back."""

    digest: str | None  # the pushed manifest's digest; None when the image is built elsewhere
    pushed_bytes: int = 0  # what travelled to the registry from here
    files: list[str] = field(default_factory=list)  # what the builder wrote (kaniko: the Job)


class Builder(Protocol):
    """One image's build, as its builder class constructs it."""

    def build(self) -> BuiltImage:
        """Build (or write what builds) the plan's image; a BuildError says what went wrong."""
        ...


class BuilderClass(Protocol):
    """A builder class as the registry holds it: its constructor and where it builds.

    `plan` is the image to build; `cache` a folder the builder may keep things in between
    builds (wheels, layers); `say` reports progress to people; `request` is the build request
    the plan came from (the notebook, where to write files).
    """

    @property
    def builds_here(self) -> bool:
        """True: built and pushed from this machine. False: written for elsewhere to build."""
        ...

    def __call__(
        self, plan: ImagePlan, cache: Path, say: Progress, request: BuildRequest
    ) -> Builder: ...


class Stopped(BuildError):
    """A command stopped before its end because the build will fail for another reason."""


def run_command(
    command: list[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stop: threading.Event | None = None,
) -> subprocess.CompletedProcess[str]:
    """`command` run to its end, its output captured; when `stop` is set meanwhile, it is
    terminated and Stopped is raised."""
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
    ) as process:
        while True:
            try:
                out, err = process.communicate(timeout=0.05 if stop else None)
                break
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    process.terminate()
                    process.communicate()
                    raise Stopped(f"{command[0]} stopped") from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def run_pip(arguments: list[str], doing: str, stop: threading.Event | None = None) -> None:
    """pip, with this interpreter; a failure is a BuildError with pip's last lines and a hint;
    Stopped when `stop` is set before it ends."""
    result = run_command(
        [sys.executable, "-m", "pip", *arguments, "--quiet", "--disable-pip-version-check"],
        stop=stop,
    )
    if result.returncode != 0:
        tail = "\n".join(line for line in result.stderr.strip().splitlines()[-6:] if line.strip())
        raise BuildError(
            f"{doing} the requirements failed:\n{tail}\n(check the names and versions; "
            "`cellpipe requirements NOTEBOOK` shows where each came from)"
        )


def host_platform() -> tuple[str, str]:
    """This machine's (os, architecture), named as OCI image indexes name them."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return "linux", arch


def build_cache() -> Path:
    """The builders' cache folder (wheels, dependency layers, base images' Pythons)."""
    return cellpipe_home() / "build-cache"
