"""Image builds for real: podman's Docker API, Debian's registry on loopback, an mmdebstrap
Python base image. Build, pull back, run the pipeline inside the image, rebuild after an edit."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cellpipe.launcher.builders import host_platform
from cellpipe.launcher.images import write_layer
from cellpipe.launcher.registry import (
    OCI_CONFIG,
    OCI_MANIFEST,
    ImageRef,
    RegistryClient,
    sha256_digest,
)
from tests.containers import AuthRegistry, BaseImage, ContainerEngine, Registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "iris_cellpipe.ipynb"
EXPECTED_METRICS = {"accuracy": 0.88, "n_test": 50.0}  # the notebook top to bottom


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CELLPIPE_HOME for the module: the builders' caches (wheels, layers) are shared."""
    return tmp_path_factory.mktemp("cellpipe-home")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return Path(shutil.copy(EXAMPLE, tmp_path / "iris.ipynb"))


def cellpipe(
    engine: ContainerEngine,
    home: Path,
    *args: str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env={**engine.subprocess_env(), "CELLPIPE_HOME": str(home), **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def build(
    engine: ContainerEngine, home: Path, notebook: Path, registry: str, base: str, *extra: str
) -> dict[str, Any]:
    result = cellpipe(
        engine,
        home,
        "build",
        str(notebook),
        "--registry",
        registry,
        "--base",
        base,
        "--format",
        "json",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    built: dict[str, Any] = json.loads(result.stdout)
    return built


def edit_last_step(notebook: Path) -> None:
    nb = nbformat.read(str(notebook), as_version=4)
    cell = next(c for c in nb.cells if "step:evaluate" in c.metadata.get("tags", []))
    cell.source += "\nprint('edited')"
    nbformat.write(nb, str(notebook))


def run_in_image(engine: ContainerEngine, home: Path, notebook: Path, image: str) -> dict[str, Any]:
    result = cellpipe(engine, home, "run", str(notebook), "--image", image, "--format", "json")
    assert result.returncode == 0, result.stderr
    run: dict[str, Any] = json.loads(result.stdout)
    return run


@pytest.mark.parametrize("builder", ["append", "engine"])
@pytest.mark.timeout(600)
def test_build_run_in_the_image_and_rebuild_after_an_edit(
    builder: str,
    container_engine: ContainerEngine,
    registry: Registry,
    base_image: BaseImage,
    home: Path,
    example: Path,
) -> None:
    target = f"{registry.host}/{builder}"
    first = build(container_engine, home, example, target, base_image.ref, "--builder", builder)
    assert first["builder"] == builder and first["cached"] is False
    assert first["image"].startswith(f"{target}/iris-demo:") and first["pushed_bytes"] > 0
    # What was built is what runs: the pipeline inside the image gives the notebook's metrics
    run = run_in_image(container_engine, home, example, first["image"])
    assert run["status"] == "Succeeded" and run["metrics"] == EXPECTED_METRICS
    image = container_engine.client().images.get(first["image"])
    assert image.labels["org.cellpipe.pipeline"] == "iris-demo"
    # Nothing changed, nothing built
    again = build(container_engine, home, example, target, base_image.ref, "--builder", builder)
    assert again["cached"] is True and again["image"] == first["image"]
    assert again["pushed_bytes"] == 0
    # One cell edited: only the code layer travels (kilobytes, not the dependencies)
    edit_last_step(example)
    edited = build(container_engine, home, example, target, base_image.ref, "--builder", builder)
    assert edited["cached"] is False and edited["image"] != first["image"]
    assert 0 < edited["pushed_bytes"] < 100_000, edited
    layers = manifest_layers(edited["image"])
    assert layers[:-1] == manifest_layers(first["image"])[:-1]  # base + dependencies shared
    # The old image holds other code: running it with the edited notebook is refused
    refused = cellpipe(container_engine, home, "run", str(example), "--image", first["image"])
    assert refused.returncode == 2
    assert "steps changed since it was built: evaluate" in refused.stderr


def manifest_layers(image: str) -> list[str]:
    ref = ImageRef.parse(image)
    manifest = RegistryClient(ref.registry).manifest(ref)
    return [layer["digest"] for layer in manifest["layers"]]


def deps_layer(image: str) -> tuple[str, set[str]]:
    """The dependencies layer of an append-built image: its digest, and the distributions it
    holds (NAME-VERSION, from the names of their .dist-info folders)."""
    ref = ImageRef.parse(image)
    client = RegistryClient(ref.registry)
    digest = str(client.manifest(ref)["layers"][-2]["digest"])
    blob = client.blob(ref.repository, digest)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        names = tar.getnames()
    found = re.compile(r"cellpipe/venv/lib/python[0-9.]+/site-packages/([^/]+)\.dist-info$")
    return digest, {m.group(1) for m in map(found.match, names) if m}


@pytest.mark.timeout(900)
def test_append_layers_are_reproducible_and_uv_installs_what_pip_installs(
    container_engine: ContainerEngine,
    registry: Registry,
    base_image: BaseImage,
    example: Path,
    tmp_path: Path,
) -> None:
    """Two cold builds (empty caches, new repositories) give the same dependencies layer; pip
    (CELLPIPE_INSTALLER=pip) installs the same distributions at the same versions as uv."""
    layers = {}
    for name, installer in (("first", "auto"), ("second", "auto"), ("pip", "pip")):
        result = cellpipe(
            container_engine,
            tmp_path / f"home-{name}",
            "build",
            str(example),
            "--registry",
            f"{registry.host}/cold-{name}",
            "--base",
            base_image.ref,
            "--builder",
            "append",
            "--format",
            "json",
            env={"CELLPIPE_INSTALLER": installer},
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        built = json.loads(result.stdout)
        assert built["cached"] is False
        used = "pip" if installer == "pip" else "uv"
        assert f"requirements with {used}" in result.stderr, result.stderr
        layers[name] = deps_layer(built["image"])
    assert layers["first"][0] == layers["second"][0]  # the same digest, build after build
    by_uv, by_pip = layers["first"][1], layers["pip"][1]
    assert by_uv == by_pip and any(name.startswith("kfp-") for name in by_uv)


def test_a_missing_base_image_is_a_clear_error(
    container_engine: ContainerEngine, registry: Registry, home: Path, example: Path
) -> None:
    missing = f"{registry.host}/nothing/here:1"
    result = cellpipe(
        container_engine,
        home,
        "build",
        str(example),
        "--registry",
        registry.host,
        "--base",
        missing,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"the base image {missing} does not exist" in result.stderr


def test_a_registry_that_refuses_the_push_is_a_clear_error(
    container_engine: ContainerEngine,
    readonly_registry: Registry,
    base_image: BaseImage,
    home: Path,
    example: Path,
) -> None:
    result = cellpipe(
        container_engine,
        home,
        "build",
        str(example),
        "--registry",
        f"{readonly_registry.host}/team",
        "--base",
        base_image.ref,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"pushing to team/iris-demo on {readonly_registry.host}: HTTP 405" in result.stderr


def test_a_requirement_that_does_not_exist_is_a_clear_error(
    container_engine: ContainerEngine,
    registry: Registry,
    base_image: BaseImage,
    home: Path,
    example: Path,
) -> None:
    nb = nbformat.read(str(example), as_version=4)
    nb.metadata["cellpipe"]["requirements"] = ["cellpipe-no-such-distribution==9.9.9"]
    nbformat.write(nb, str(example))
    result = cellpipe(
        container_engine,
        home,
        "build",
        str(example),
        "--registry",
        f"{registry.host}/bad",
        "--base",
        base_image.ref,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "installing the requirements failed" in result.stderr
    assert "cellpipe-no-such-distribution" in result.stderr


@pytest.fixture
def foreign_bases(registry: Registry, base_image: BaseImage) -> Iterator[dict[str, str]]:
    """Variants of the base pushed through the registry API: an arm64 config, and a Python
    3.9 binary on top. Their layers are the real base's; only what is checked differs."""
    ref = ImageRef.parse(base_image.ref)
    client = RegistryClient(ref.registry)
    manifest = client.manifest(ref)
    config = json.loads(client.blob(ref.repository, manifest["config"]["digest"]))
    variants = {}
    arm = dict(config, architecture="arm64")
    variants["arm64"] = push_variant(client, ref, manifest, arm, [], "arm64")
    layer = write_layer(
        Path(registry.root) / "py39.tar.gz", files={"/usr/local/bin/python3.9": b"#!/bin/sh\n"}
    )
    with open(layer.path, "rb") as handle:
        client.upload_blob(ref.repository, layer.digest, handle)
    py39 = json.loads(json.dumps(config))
    py39["rootfs"]["diff_ids"].append(layer.diff_id)
    variants["py39"] = push_variant(client, ref, manifest, py39, [layer.descriptor()], "py39")
    yield variants


def push_variant(
    client: RegistryClient,
    ref: ImageRef,
    manifest: dict[str, Any],
    config: dict[str, Any],
    extra_layers: list[dict[str, Any]],
    tag: str,
) -> str:
    body = json.dumps(config).encode()
    digest = sha256_digest(body)
    client.upload_blob(ref.repository, digest, body)
    variant = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest, "size": len(body)},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                **{k: layer[k] for k in ("digest", "size")},
            }
            for layer in manifest["layers"]
        ]
        + extra_layers,
    }
    client.put_manifest(ref.repository, tag, variant)
    return str(ref.with_tag(tag))


HERE_ARCH = host_platform()[1]
HERE_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("arm64", f"is arm64 and this machine is {HERE_ARCH}"),
        ("py39", f"has Python 3.9 and this machine builds with Python {HERE_PYTHON}"),
    ],
)
def test_append_refuses_a_base_its_layers_would_not_fit(
    variant: str,
    message: str,
    container_engine: ContainerEngine,
    registry: Registry,
    foreign_bases: dict[str, str],
    home: Path,
    example: Path,
) -> None:
    result = cellpipe(
        container_engine,
        home,
        "build",
        str(example),
        "--registry",
        f"{registry.host}/fit",
        "--base",
        foreign_bases[variant],
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert "--builder kaniko" in result.stderr  # engine too, for another architecture


def test_a_registry_login_comes_from_the_docker_config_and_is_never_shown(
    container_engine: ContainerEngine,
    auth_registry: AuthRegistry,
    base_image: BaseImage,
    home: Path,
    example: Path,
    tmp_path: Path,
) -> None:
    target = f"{auth_registry.host}/private"
    # Without a login: refused, saying how to log in
    refused = cellpipe(
        container_engine,
        home,
        "build",
        str(example),
        "--registry",
        target,
        "--base",
        base_image.ref,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"the registry {auth_registry.host} asks for a login" in refused.stderr
    # With docker's config.json (as `docker login` writes it): built and pushed
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    token = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode())
    (docker_config / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": token.decode()}}})
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cellpipe.cli",
            "build",
            str(example),
            "--registry",
            target,
            "--base",
            base_image.ref,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env={
            **container_engine.subprocess_env(),
            "CELLPIPE_HOME": str(home),
            "DOCKER_CONFIG": str(docker_config),
        },
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["image"].startswith(f"{target}/iris-demo:")
    for output in (result.stdout, result.stderr, refused.stderr):
        assert auth_registry.password not in output and token.decode() not in output
