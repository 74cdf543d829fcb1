"""The `append` builder: no daemon, only the registry's API.

Reads the base image's manifest and config, adds the dependencies layer (a virtual environment
built here with uv or pip, installers.py; reused while the requirement set is unchanged) and the
code layer, and pushes only the blobs the registry lacks, then the manifest. Layers assembled on
this machine must fit the base: same CPU architecture and the same Python minor version, checked
before anything is pushed (the Python of the base is looked for while the requirements install;
a base that does not fit stops the installer).

The dependencies layer is written by layers.py (gzip level 1, blocks deflated in parallel); the
same requirement set and base give the same layer digest, build after build.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .builders import BuildError, BuildRequest, BuiltImage, Progress, Stopped, host_platform
from .images import VENV, ImagePlan, Layer, write_layer
from .installers import chosen_installer, install_requirements, read_pip_settings
from .layers import write_layer_parallel
from .registry import (
    OCI_CONFIG,
    OCI_MANIFEST,
    ImageRef,
    RegistryClient,
    RegistryError,
    oci_layer,
)

_PYTHON_BINARY = re.compile(r"^\.?/?(usr/local/bin|usr/bin|opt/[^/]+/bin)/python(3\.\d+)$")


class AppendBuilder:
    """Adds the dependencies and code layers to the base through the registry API.

    Needs nothing of the request: a plan alone can be built (`AppendBuilder(plan, cache, say)`).
    """

    builds_here: ClassVar[bool] = True

    def __init__(
        self,
        plan: ImagePlan,
        cache: Path,
        say: Progress,
        request: BuildRequest | None = None,
    ) -> None:
        self.plan = plan
        self.cache = cache
        self.say = say
        self.base = ImageRef.parse(plan.base)
        self.target = ImageRef.parse(plan.reference)
        self.base_client = RegistryClient(self.base.registry)
        self.client = (
            self.base_client
            if self.target.registry == self.base.registry
            else RegistryClient(self.target.registry)
        )
        self.pushed = 0

    def build(self) -> BuiltImage:
        try:
            digest = self._build()
        except RegistryError as exc:
            raise BuildError(str(exc)) from None
        return BuiltImage(digest, self.pushed)

    def _build(self) -> str:
        with ThreadPoolExecutor(2, thread_name_prefix="cellpipe-append") as pool:
            deps = self._cached_deps()
            wants_uv = deps is None and chosen_installer() != "pip"
            settings = read_pip_settings(pool) if wants_uv else None
            self.say(f"reading the base image {self.base}")
            manifest = self.base_client.manifest(self.base, host_platform())
            config = json.loads(
                self.base_client.blob(self.base.repository, manifest["config"]["digest"])
            )
            self._check_architecture(config)
            if deps is None:
                deps, python = self._install_while_checking(manifest, config, pool, settings)
            else:
                python = self._check_python(manifest, config)
        self.say("assembling the code layer")
        with tempfile.TemporaryDirectory() as scratch:
            code = write_layer(Path(scratch) / "code.tar.gz", files=self.plan.code_files)
            for layer in manifest["layers"]:
                self._ensure_base_blob(layer)
            for layer in (deps, code):
                self._push_layer(layer)
        new_config = self._config(config, python, [deps, code])
        config_bytes = json.dumps(new_config, sort_keys=True, separators=(",", ":")).encode()
        config_digest = _sha(config_bytes)
        if not self.client.blob_exists(self.target.repository, config_digest):
            self.client.upload_blob(self.target.repository, config_digest, config_bytes)
            self.pushed += len(config_bytes)
        new_manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [oci_layer(layer) for layer in manifest["layers"]]
            + [deps.descriptor(), code.descriptor()],
            "annotations": {"org.opencontainers.image.base.name": str(self.base)},
        }
        assert self.target.tag is not None
        self.say(f"pushing the manifest {self.target}")
        return self.client.put_manifest(self.target.repository, self.target.tag, new_manifest)

    # -- fit ------------------------------------------------------------------------------
    def _check_architecture(self, config: dict[str, Any]) -> None:
        _, arch = host_platform()
        base_arch = config.get("architecture", "amd64")
        if base_arch != arch:
            raise BuildError(
                f"the base image {self.base} is {base_arch} and this machine is {arch}: the "
                "append builder assembles the dependencies here, so they would not run there; "
                "build with --builder engine (on a machine of that architecture) or --builder "
                "kaniko (in the cluster)"
            )

    def _check_python(self, manifest: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
        python = self._base_python(manifest, config)
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if python["version"] != here:
            raise BuildError(
                f"the base image {self.base} has Python {python['version']} and this machine "
                f"builds with Python {here}: the append builder installs the dependencies "
                "here, so the versions must match; choose a base with Python "
                f"{here}, or build with --builder kaniko (in the cluster)"
            )
        return python

    def _base_python(self, manifest: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
        """The base's Python (path and X.Y), from its layers; cached by the base's digest."""
        cached = self.cache / "bases" / f"{manifest['config']['digest'].replace(':', '-')}.json"
        if cached.exists():
            found: dict[str, str] = json.loads(cached.read_text())
            return found
        self.say(f"looking for Python in {self.base}")
        for layer in reversed(manifest["layers"]):
            python = self._python_in_layer(layer)
            if python:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(python))
                return python
        raise BuildError(
            f"the base image {self.base} has no python3 in /usr/bin or /usr/local/bin; choose a "
            "Python base image (it needs python3 with the venv module)"
        )

    def _python_in_layer(self, layer: dict[str, Any]) -> dict[str, str] | None:
        with tempfile.TemporaryFile() as blob:
            for chunk in self.base_client.stream_blob(self.base.repository, layer["digest"]):
                blob.write(chunk)
            blob.seek(0)
            best: dict[str, str] | None = None
            gzipped = "gzip" in layer.get("mediaType", "gzip")
            with tarfile.open(fileobj=blob, mode="r|gz" if gzipped else "r|") as tar:
                for member in tar:
                    match = _PYTHON_BINARY.match(member.name)
                    if match and (member.isfile() or member.issym()):
                        best = {
                            "path": f"/{match.group(1)}/python{match.group(2)}",
                            "version": match.group(2),
                        }
            return best

    # -- dependencies ---------------------------------------------------------------------
    def _cached_deps(self) -> Layer | None:
        record = self.cache / "deps" / self.plan.deps_key / "layer.json"
        if not record.exists():
            return None
        self.say("the dependencies layer is unchanged")
        saved = json.loads(record.read_text())
        return Layer(
            record.parent / "layer.tar.gz", saved["digest"], saved["diff_id"], saved["size"]
        )

    def _install_while_checking(
        self,
        manifest: dict[str, Any],
        config: dict[str, Any],
        pool: ThreadPoolExecutor,
        settings: Future[dict[str, str]] | None,
    ) -> tuple[Layer, dict[str, str]]:
        """Installs the requirements while the base's Python is looked for in `pool` (a base
        that does not fit stops the installer); writes the dependencies layer."""
        folder = self.cache / "deps" / self.plan.deps_key
        folder.mkdir(parents=True, exist_ok=True)
        lines = self.plan.requirements.pip_lines()
        stop = threading.Event()
        checking = pool.submit(self._check_python, manifest, config)
        checking.add_done_callback(lambda done: _stop_if_failed(done, stop))
        # in the build cache, not /tmp (often a file system of its own): uv hard-links files
        # out of its package cache when both are on one file system
        with tempfile.TemporaryDirectory(prefix=".install-", dir=folder.parent) as scratch:
            site = Path(scratch) / "site-packages"
            requirements = Path(scratch) / "requirements.txt"
            requirements.write_text("\n".join(lines) + "\n")
            try:
                installer = install_requirements(
                    requirements, site, self.say, len(lines), stop, settings
                )
            except Stopped:
                checking.result()  # the reason it was stopped
                raise
            python = checking.result()
            self.say(f"writing the dependencies layer ({installer})")
            version = python["version"]
            layer = write_layer_parallel(
                folder / "layer.tar.gz",
                files={f"{VENV}/pyvenv.cfg": _pyvenv_cfg(python).encode()},
                trees={f"{VENV}/lib/python{version}/site-packages": site},
                symlinks={
                    f"{VENV}/bin/python": python["path"],
                    f"{VENV}/bin/python3": "python",
                    f"{VENV}/bin/python{version}": "python",
                },
            )
        (folder / "layer.json").write_text(
            json.dumps(
                {
                    "digest": layer.digest,
                    "diff_id": layer.diff_id,
                    "size": layer.size,
                    "installer": installer,
                }
            )
        )
        return layer, python

    # -- blobs ----------------------------------------------------------------------------
    def _ensure_base_blob(self, layer: dict[str, Any]) -> None:
        repository, digest = self.target.repository, layer["digest"]
        if self.client.blob_exists(repository, digest):
            return
        if self.client is self.base_client and self.client.mount_blob(
            repository, digest, self.base.repository
        ):
            return
        self.say(f"copying base layer {digest[:19]} to {self.target.registry}")
        with tempfile.TemporaryFile() as blob:
            for chunk in self.base_client.stream_blob(self.base.repository, digest):
                blob.write(chunk)
            blob.seek(0)
            self.client.upload_blob(repository, digest, blob)
            self.pushed += layer["size"]

    def _push_layer(self, layer: Layer) -> None:
        if self.client.blob_exists(self.target.repository, layer.digest):
            return
        self.say(f"pushing layer {layer.digest[:19]} ({layer.size / 1e6:.2f} MB)")
        with open(layer.path, "rb") as handle:
            self.client.upload_blob(self.target.repository, layer.digest, handle)
        self.pushed += layer.size

    def _config(
        self, base: dict[str, Any], python: dict[str, str], layers: list[Layer]
    ) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(json.dumps(base))
        run = config.setdefault("config", {})
        env = dict(e.split("=", 1) for e in run.get("Env") or [] if "=" in e)
        path = env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(self.plan.env)
        env["PATH"] = f"{VENV}/bin:{path}"
        run["Env"] = [f"{k}={v}" for k, v in env.items()]
        run["Labels"] = {**(run.get("Labels") or {}), **self.plan.labels}
        config["rootfs"]["diff_ids"] = list(config["rootfs"]["diff_ids"]) + [
            layer.diff_id for layer in layers
        ]
        config["history"] = [
            *(config.get("history") or []),
            {"created_by": "cellpipe: dependencies", "comment": f"Python {python['version']}"},
            {"created_by": "cellpipe: code", "comment": "step code and the cellpipe runtime"},
        ]
        return config


def _stop_if_failed(done: Future[Any], stop: threading.Event) -> None:
    if done.exception() is not None:
        stop.set()


def _pyvenv_cfg(python: dict[str, str]) -> str:
    home = python["path"].rsplit("/", 1)[0]
    return f"home = {home}\ninclude-system-site-packages = false\nversion = {python['version']}\n"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


if TYPE_CHECKING:  # mypy checks the class against the protocol the registry holds it by
    from .builders import BuilderClass

    _checked: BuilderClass = AppendBuilder
