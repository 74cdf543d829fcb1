"""The real container infrastructure works: podman's Docker API, the registries, the base image.

These tests run against the real components (tests/containers.py), nothing is faked.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests

from tests.containers import (
    APT_INSTALL,
    AuthRegistry,
    BaseImage,
    ContainerEngine,
    Registry,
    require_tools,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def test_base_image_pulled_through_docker_api_runs_python(
    container_engine: ContainerEngine, base_image: BaseImage
) -> None:
    client = container_engine.client()
    image = client.images.pull(base_image.ref)
    assert image.id == base_image.image_id
    assert base_image.pinned_ref in image.attrs["RepoDigests"]
    output = client.containers.run(
        base_image.ref,
        ["python3", "-c", "import sys; print(sys.version)"],
        remove=True,
        network_mode="host",
    )
    assert output.decode().startswith(base_image.python_version + ".")
    # the venv module is there (python3-venv), pip is not (a venv brings its own)
    output = client.containers.run(
        base_image.ref,
        ["python3", "-c", "import ensurepip, venv; print('ok')"],
        remove=True,
        network_mode="host",
    )
    assert output == b"ok\n"


def test_registry_catalog_lists_base_image(registry: Registry, base_image: BaseImage) -> None:
    assert base_image.ref == f"{registry.host}/cellpipe-test/python:3.11-bookworm"
    assert "cellpipe-test/python" in registry.catalog()
    assert "3.11-bookworm" in registry.tags("cellpipe-test/python")
    assert registry.manifest_digest("cellpipe-test/python", "3.11-bookworm") == base_image.digest
    assert base_image.architecture == ARCHITECTURES.get(platform.machine(), platform.machine())
    assert base_image.os == "linux"
    assert base_image.rootfs_tar.is_file()


def test_push_to_readonly_registry_fails(
    container_engine: ContainerEngine, readonly_registry: Registry, base_image: BaseImage
) -> None:
    target = readonly_registry.ref("cellpipe-test/refused", "1")
    container_engine.podman("tag", base_image.local_ref, target)
    try:
        pushed = container_engine.podman(
            "push", "--tls-verify=false", base_image.local_ref, target, check=False
        )
    finally:
        container_engine.podman("rmi", target)
    assert pushed.returncode != 0
    assert "405" in pushed.stderr or "unsupported" in pushed.stderr.lower(), pushed.stderr
    assert readonly_registry.catalog() == []
    # and the OCI distribution API says why: uploads are refused in read-only mode
    refused = requests.post(
        f"{readonly_registry.url}/v2/cellpipe-test/refused/blobs/uploads/", timeout=10
    )
    assert refused.status_code == 405


def test_auth_registry_demands_credentials(auth_registry: AuthRegistry) -> None:
    anonymous = requests.get(f"{auth_registry.url}/v2/", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.get(
        f"{auth_registry.url}/v2/", auth=(auth_registry.username, "wrong"), timeout=10
    )
    assert wrong.status_code == 401
    right = requests.get(
        f"{auth_registry.url}/v2/",
        auth=(auth_registry.username, auth_registry.password),
        timeout=10,
    )
    assert right.status_code == 200
    assert isinstance(auth_registry.catalog(), list)  # the helpers send the credentials (200)


def test_missing_tool_fails_naming_the_debian_packages() -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        require_tools("podman", "cellpipe-no-such-tool")
    assert APT_INSTALL in str(failure.value)
    assert "cellpipe-no-such-tool" in str(failure.value)


def _tiny_rootfs(path: Path) -> Path:
    """A rootfs tar holding only `sleep` and the libraries it loads (a few MB)."""
    sleep = shutil.which("sleep")
    assert sleep is not None
    ldd = subprocess.run(["ldd", sleep], capture_output=True, text=True, check=True).stdout
    files = {sleep} | {
        part for line in ldd.splitlines() for part in line.split() if part.startswith("/")
    }
    with tarfile.open(path, "w") as tar:
        for name in sorted(files):
            tar.add(os.path.realpath(name), arcname=name.lstrip("/"))
    return path


INNER_CONFTEST = """\
from tests.containers import container_engine, registry, registry_ports

__all__ = ["container_engine", "registry", "registry_ports"]
"""

INNER_TEST = """\
import json, os
from pathlib import Path

def test_leave_things_running(container_engine, registry):
    image = "localhost/cellpipe-test/tiny:1"
    rootfs = os.environ["TINY_ROOTFS"]
    container_engine.podman("import", "--change", 'CMD ["sleep", "600"]', rootfs, image)
    # one container from the CLI, one through the Docker API, both left running
    container_engine.podman("run", "-d", "--network=host", image)
    container_engine.client().containers.run(image, detach=True, network_mode="host")
    running = container_engine.podman("ps", "-q").stdout.split()
    assert len(running) == 2
    Path(os.environ["INNER_REPORT"]).write_text(json.dumps({
        "engine_root": str(container_engine.root),
        "socket": str(container_engine.socket_path),
        "registry": registry.host,
        "registry_config": str(registry.config_path),
    }))
"""


def test_session_end_leaves_nothing_running(tmp_path: Path) -> None:
    """A whole pytest session leaves containers running; its teardown removes them and stops
    podman, conmon and the registry."""
    project = tmp_path / "inner"
    project.mkdir()
    (project / "conftest.py").write_text(INNER_CONFTEST)
    (project / "test_inner.py").write_text(INNER_TEST)
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "TINY_ROOTFS": str(_tiny_rootfs(tmp_path / "tiny.tar")),
        "INNER_REPORT": str(report),
    }
    inner = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "--rootdir",
            str(project),
            "--basetemp",
            str(tmp_path / "basetemp"),
            str(project),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert inner.returncode == 0, inner.stdout + inner.stderr
    state = json.loads(report.read_text())
    root = state["engine_root"] + "/"
    left = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if root in cmdline or state["registry_config"] in cmdline:
                left.append(f"{proc.name}: {cmdline}")
    assert left == []
    with open("/proc/self/mountinfo") as mounts:
        assert [line for line in mounts if root in line] == []
    assert not Path(state["socket"]).exists()
    host, port = state["registry"].split(":")
    with socket.socket() as sock:
        assert sock.connect_ex((host, int(port))) != 0
