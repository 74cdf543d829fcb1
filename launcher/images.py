"""What goes into a pipeline's image, in three layers, and the tag that names it.

    base image  →  dependencies layer (/cellpipe/venv, keyed by the requirement set)
                →  code layer (/cellpipe/bundle.json, /cellpipe/lib/cellpipe/runtime,
                               /cellpipe/work: local modules and files the notebook names)

The tag is a hash of the base's digest, the requirement set and the code: nothing changed,
nothing built. Builders (engine, append, kaniko) all assemble this same plan.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cellpipe.converter.bundle import make_bundle
from cellpipe.converter.model import Pipeline
from cellpipe.runtime.version import VERSION as __version__

from .registry import checked_reference
from .requirements import Requirements, confined

ROOT = "/cellpipe"
VENV = f"{ROOT}/venv"
LIB = f"{ROOT}/lib"
WORKDIR = f"{ROOT}/work"
BUNDLE = f"{ROOT}/bundle.json"
LABEL_PREFIX = "org.cellpipe"
IMAGE_FORMAT = "1"  # bump when the layout above changes
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the source tree or site-packages
FIXED_MTIME = 0  # layers are reproducible: same content, same digest


@dataclass
class ImagePlan:
    """One image: its base, what the two layers hold, its labels, environment and tag."""

    pipeline_name: str
    base: str
    requirements: Requirements
    code_files: dict[str, bytes]  # path in the image -> content
    labels: dict[str, str]
    env: dict[str, str]
    base_digest: str = ""
    registry: str | None = None

    @property
    def deps_key(self) -> str:
        content = json.dumps(
            {
                "format": IMAGE_FORMAT,
                "base": self.base_digest or self.base,
                "requirements": sorted(self.requirements.pip_lines()),
            },
            sort_keys=True,
        )
        return hashlib.sha256(content.encode()).hexdigest()

    @property
    def code_key(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.code_files):
            digest.update(path.encode() + b"\0" + hashlib.sha256(self.code_files[path]).digest())
        digest.update(json.dumps([self.labels, self.env], sort_keys=True).encode())
        return digest.hexdigest()

    @property
    def tag(self) -> str:
        return hashlib.sha256(f"{self.deps_key}:{self.code_key}".encode()).hexdigest()[:16]

    def dockerfile_base(self) -> str:
        """The base, for a Dockerfile's `FROM`: checked to be one image reference (a line
        break there would add an instruction of the notebook's choosing)."""
        return checked_reference(self.base, "the base image")

    @property
    def repository(self) -> str:
        if not self.registry:
            return f"cellpipe/{self.pipeline_name}"
        return f"{self.registry.rstrip('/')}/{self.pipeline_name}"

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


def step_hashes(bundle: dict[str, Any]) -> dict[str, str]:
    """A short hash of each step's code (with the prelude), to name what changed."""
    prelude = json.dumps(bundle["prelude"], sort_keys=True)
    return {
        task: hashlib.sha256(
            (prelude + json.dumps(step["cells"], sort_keys=True)).encode()
        ).hexdigest()[:12]
        for task, step in bundle["steps"].items()
    }


def plan_image(
    pipeline: Pipeline,
    notebook_path: Path,
    requirements: Requirements,
    base: str,
    registry: str | None,
) -> ImagePlan:
    bundle = make_bundle(pipeline, None)
    bundle_bytes = json.dumps(bundle, sort_keys=True, indent=1).encode()
    folder = notebook_path.resolve().parent
    files = {BUNDLE: bundle_bytes}
    files.update(runtime_files())
    for baked in requirements.local_modules + requirements.files:
        source = folder / baked.path.rstrip("/")
        paths = sorted(source.rglob("*.py")) if source.is_dir() else [source]
        for path in paths:  # read through links inside the folder only (checked again here)
            content = confined(path, folder, baked.why).read_bytes()
            files[f"{WORKDIR}/{path.relative_to(folder).as_posix()}"] = content
    labels = {
        **code_labels(pipeline),
        f"{LABEL_PREFIX}.pinned-with-python": requirements.python_version,
    }
    env = {
        "CELLPIPE_BUNDLE": BUNDLE,
        "CELLPIPE_WORKDIR": WORKDIR,
        "PYTHONPATH": LIB,
        "VIRTUAL_ENV": VENV,
    }
    return ImagePlan(
        pipeline.settings.name, base, requirements, files, labels, env, registry=registry
    )


def code_labels(pipeline: Pipeline) -> dict[str, str]:
    """Labels that say which notebook code an image holds (checked before running it)."""
    bundle = make_bundle(pipeline, None)
    bundle_bytes = json.dumps(bundle, sort_keys=True, indent=1).encode()
    return {
        f"{LABEL_PREFIX}.version": __version__,
        f"{LABEL_PREFIX}.pipeline": pipeline.settings.name,
        f"{LABEL_PREFIX}.notebook": bundle["notebook"],
        f"{LABEL_PREFIX}.notebook-hash": hashlib.sha256(bundle_bytes).hexdigest()[:16],
        f"{LABEL_PREFIX}.steps": json.dumps(step_hashes(bundle), sort_keys=True),
    }


def runtime_files() -> dict[str, bytes]:
    """The step runtime as it goes into an image: `cellpipe/__init__.py` and `runtime/`."""
    package = _PACKAGE_ROOT
    init = package / "extension" / "__init__.py"
    runtime = package / "runtime"
    if not init.exists():  # installed from a wheel: site-packages/cellpipe/...
        init, runtime = package / "__init__.py", package / "runtime"
    files = {f"{LIB}/cellpipe/__init__.py": init.read_bytes()}
    for path in sorted(runtime.glob("*.py")):
        files[f"{LIB}/cellpipe/runtime/{path.name}"] = path.read_bytes()
    return files


# --- reproducible layers --------------------------------------------------------------------


@dataclass
class Layer:
    """A gzip-compressed tar layer: its blob digest, its uncompressed diff_id, and its size."""

    path: Path
    digest: str
    diff_id: str
    size: int
    media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip"
    extra: dict[str, Any] = field(default_factory=dict)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


class _HashingWriter(io.RawIOBase):
    """Hashes and counts what passes through on its way to `target`."""

    def __init__(self, target: IO[bytes] | gzip.GzipFile) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.hash.update(chunk)
        self.size += len(chunk)
        self.target.write(chunk)
        return len(chunk)


def parent_directories(paths: Iterable[str]) -> list[str]:
    """Every folder above `paths` (tar paths without a leading slash), sorted."""
    parents: set[str] = set()
    for path in paths:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parents.add("/".join(parts[:i]))
    return sorted(parents)


def write_layer(
    destination: Path,
    files: dict[str, bytes] | None = None,
    trees: dict[str, Path] | None = None,
    symlinks: dict[str, str] | None = None,
) -> Layer:
    """A layer holding `files` (image path -> bytes), directory `trees` (image dir -> host
    dir) and `symlinks` (image path -> target): sorted, owned by root, fixed times."""
    files, trees, symlinks = files or {}, trees or {}, symlinks or {}
    entries: dict[str, tuple[str, Any]] = {}
    for image_path, content in files.items():
        entries[image_path.strip("/")] = ("file", content)
    for image_dir, host_dir in trees.items():
        for host_path in host_dir.rglob("*"):
            name = f"{image_dir.strip('/')}/{host_path.relative_to(host_dir).as_posix()}"
            if host_path.is_symlink():
                entries[name] = ("symlink", str(host_path.readlink()))
            elif host_path.is_file():
                entries[name] = ("path", host_path)
    for image_path, target in symlinks.items():
        entries[image_path.strip("/")] = ("symlink", target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with open(destination, "wb") as raw:
        counter = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=counter, mode="wb", mtime=FIXED_MTIME, compresslevel=6) as gz:
            tar_counter = _HashingWriter(gz)
            with tarfile.open(fileobj=tar_counter, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for directory in parent_directories(entries):
                    if directory not in entries:
                        tar.addfile(tar_info(directory, tarfile.DIRTYPE, 0o755))
                for name in sorted(entries):
                    _add(tar, name, *entries[name])
    return Layer(
        destination,
        "sha256:" + counter.hash.hexdigest(),
        "sha256:" + tar_counter.hash.hexdigest(),
        counter.size,
    )


def tar_info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    """A layer's tar entry: owned by root, at the fixed time."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add(tar: tarfile.TarFile, name: str, kind: str, value: Any) -> None:
    if kind == "symlink":
        info = tar_info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = value
        tar.addfile(info)
    elif kind == "file":
        tar.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(value)), io.BytesIO(value))
    else:
        path: Path = value
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        with open(path, "rb") as handle:
            tar.addfile(tar_info(name, tarfile.REGTYPE, mode, path.stat().st_size), handle)
