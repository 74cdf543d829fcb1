"""A real JupyterHub for the spawner's tests, on 127.0.0.1 only.

JupyterHub 6.1.1 (this venv's) with configurable-http-proxy from npm (`make chp`), the
DummyAuthenticator (any allowed name, one shared password), and DockerGPUSpawner on the test
session's podman Docker API with host networking: each user's server listens on its own port
of 127.0.0.1 and reaches the hub there (podman's bridge cannot reach the host's loopback).
Three made-up GPUs (two A100, one T4) are configured, so the form has something to offer;
no GPU is ever used (there is none here, and podman's Docker API drops GPU requests).

`start_hub` starts it, waits until the proxy answers, and on exit stops the hub (which stops
the users' servers and the proxy), then removes whatever the spawner made on the engine.
`start_kube_hub` starts the same hub with KubeGPUSpawner instead, against a Kubernetes API
named by a kubeconfig (the tests' fake of fake_kube.py: nothing runs in its pods, so only
spawns that fail can be followed to their end).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from cellpipe.spawner.objects import HOME_LABEL, USER_LABEL
from tests.containers import ContainerEngine, ServerProcess, free_port
from tests.spawner.conftest import A100, GPU_TYPES, T4
from tests.spawner.notebook_image import COMMAND, NotebookImage

REPO = Path(__file__).resolve().parents[2]
CHP = REPO / ".venv" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
GPU_DEVICES = [{"id": "0", "type": A100}, {"id": "1", "type": A100}, {"id": "2", "type": T4}]
LIMITS = {"gpus": 2, "cpu": "2"}
CPU_CHOICES = ["1", "2"]
MEMORY_CHOICES = ["512Mi", "1Gi"]

CONFIG = """\
# jupyterhub_config.py written by tests/spawner/hub.py
import json
c = get_config()  # noqa: F821
settings = json.loads({settings!r})

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % settings["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [settings["chp"]]
c.ConfigurableHTTPProxy.pid_file = settings["root"] + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + settings["root"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = settings["root"] + "/cookie_secret"
c.JupyterHub.pid_file = settings["root"] + "/hub.pid"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.cleanup_servers = True

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings["password"]
c.Authenticator.allowed_users = set(settings["users"])

c.JupyterHub.services = [{{"name": "tester", "api_token": settings["token"]}}]
c.JupyterHub.load_roles = [
    {{
        "name": "tester",
        "scopes": ["admin:users", "admin:servers", "list:users", "read:users"],
        "services": ["tester"],
    }}
]

# the same gpu_types the engines and the server read
c.CellPipe.gpu_types = settings["gpu_types"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90
"""

DOCKER_CONFIG = """\
c.JupyterHub.spawner_class = "cellpipe.spawner.DockerGPUSpawner"
c.DockerGPUSpawner.client_kwargs = {{"base_url": settings["docker_host"]}}
c.DockerGPUSpawner.network_name = "host"
c.DockerGPUSpawner.images = [{{"image": settings["image"], "display_name": "cellpipe notebook"}}]
c.DockerGPUSpawner.cmd = settings["command"]
c.DockerGPUSpawner.args = ["--allow-root"]  # the test image has no user but root
c.DockerGPUSpawner.cpu_choices = settings["cpu_choices"]
c.DockerGPUSpawner.memory_choices = settings["memory_choices"]
c.DockerGPUSpawner.gpu_devices = settings["gpu_devices"]
c.DockerGPUSpawner.default_limits = settings["limits"]
c.DockerGPUSpawner.pull_policy = "ifnotpresent"
# the test image has no JupyterLab: land on a file of the user's home
c.Spawner.default_url = "/files/welcome.txt"
"""

KUBE_CONFIG = """\
c.JupyterHub.spawner_class = "cellpipe.spawner.KubeGPUSpawner"
c.KubeGPUSpawner.namespace = settings["namespace"]
c.KubeGPUSpawner.images = [{{"image": settings["image"], "display_name": "cellpipe notebook"}}]
c.KubeGPUSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeGPUSpawner.cpu_choices = settings["cpu_choices"]
c.KubeGPUSpawner.memory_choices = settings["memory_choices"]
c.KubeGPUSpawner.default_limits = settings["limits"]
c.KubeGPUSpawner.unschedulable_timeout = settings["unschedulable_timeout"]
"""


@dataclass
class Hub:
    url: str  # the proxy: what browsers open
    token: str  # the tester service's API token
    password: str
    root: Path
    process: ServerProcess
    engine: ContainerEngine | None  # None: a hub of KubeGPUSpawner

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/hub/api{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=kwargs.pop("timeout", 120),
            **kwargs,
        )

    def server(self, user: str, name: str = "") -> dict[str, Any] | None:
        response = self.api("GET", f"/users/{user}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        servers: dict[str, Any] = response.json().get("servers") or {}
        found: dict[str, Any] | None = servers.get(name)
        return found

    def wait_ready(self, user: str, name: str = "", timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(user, name)
            if server and server.get("ready"):
                return server
            time.sleep(0.5)
        raise AssertionError(
            f"{user}'s server {name!r} was not ready in {timeout} s:\n{self.log()}"
        )

    def wait_stopped(self, user: str, name: str = "", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server(user, name) is None:
                return
            time.sleep(0.5)
        raise AssertionError(f"{user}'s server {name!r} did not stop in {timeout} s")

    def containers(self, user: str | None = None) -> list[dict[str, Any]]:
        """The spawner's containers on the engine (inspected), of one user or all."""
        assert self.engine is not None, "a hub of KubeGPUSpawner has no containers"
        client = self.engine.client()
        label = USER_LABEL if user is None else f"{USER_LABEL}={user}"
        found = client.api.containers(all=True, filters={"label": label})
        return [client.api.inspect_container(c["Id"]) for c in found]

    def log(self, limit: int = 6000) -> str:
        try:
            return self.process.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no hub log)"


def require_chp() -> Path:
    if not CHP.exists():
        pytest.fail(
            f"the hub tests need configurable-http-proxy at {CHP}: run `make chp`",
            pytrace=False,
        )
    return CHP


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/hub/api", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _settings(root: Path, chp: Path, **spawner: Any) -> dict[str, Any]:
    """What the configuration reads: the hub's ports, users and secrets, and the spawner's."""
    return {
        "port": free_port(),
        "hub_port": free_port(),
        "proxy_api_port": free_port(),
        "chp": str(chp),
        "root": str(root),
        "password": secrets.token_urlsafe(12),
        "users": list(USERS),
        "token": secrets.token_hex(24),
        "gpu_types": GPU_TYPES,
        "cpu_choices": CPU_CHOICES,
        "memory_choices": MEMORY_CHOICES,
        "limits": LIMITS,
        **spawner,
    }


@contextlib.contextmanager
def _running_hub(
    root: Path, spawner_config: str, settings: dict[str, Any], env: dict[str, str], chp: Path
) -> Iterator[Hub]:
    config = root / "jupyterhub_config.py"
    config.write_text((CONFIG + spawner_config).format(settings=json.dumps(settings)))
    env["PATH"] = os.pathsep.join([str(chp.parent), str(Path(sys.executable).parent), env["PATH"]])
    hub_command = [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)]
    process = ServerProcess(hub_command, log_path=root / "hub.log", env=env)
    process.start()
    url = f"http://127.0.0.1:{settings['port']}"
    hub = Hub(url, settings["token"], settings["password"], root, process, None)
    try:
        process.wait_until(lambda: _answers(url), "jupyterhub", 90)
        yield hub
    finally:
        process.stop()
        _end_proxy(root / "proxy.pid")


@contextlib.contextmanager
def start_hub(root: Path, engine: ContainerEngine, image: NotebookImage) -> Iterator[Hub]:
    chp = require_chp()
    root.mkdir(parents=True, exist_ok=True)
    settings = _settings(
        root,
        chp,
        docker_host=engine.docker_host,
        image=image.ref,
        command=COMMAND,
        gpu_devices=GPU_DEVICES,
    )
    try:
        with _running_hub(root, DOCKER_CONFIG, settings, engine.subprocess_env(), chp) as hub:
            hub.engine = engine
            yield hub
    finally:
        _remove_leftovers(engine)


@contextlib.contextmanager
def start_kube_hub(
    root: Path,
    kubeconfig: Path,
    namespace: str,
    image: str,
    gpu_types: list[dict[str, str]],
    unschedulable_timeout: float,
) -> Iterator[Hub]:
    """The hub with KubeGPUSpawner, against the Kubernetes API the kubeconfig names."""
    chp = require_chp()
    root.mkdir(parents=True, exist_ok=True)
    settings = _settings(
        root,
        chp,
        namespace=namespace,
        image=image,
        unschedulable_timeout=unschedulable_timeout,
    )
    settings["gpu_types"] = gpu_types
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with _running_hub(root, KUBE_CONFIG, settings, env, chp) as hub:
        yield hub


def _end_proxy(pid_file: Path) -> None:
    """The proxy the hub started, if the hub could not stop it."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"configurable-http-proxy" in cmdline:
            os.kill(pid, signal.SIGTERM)


def _remove_leftovers(engine: ContainerEngine) -> None:
    client = engine.client()
    for container in client.api.containers(all=True, filters={"label": USER_LABEL}):
        with contextlib.suppress(Exception):
            client.api.remove_container(container["Id"], force=True)
    for volume in client.api.volumes(filters={"label": HOME_LABEL}).get("Volumes") or []:
        with contextlib.suppress(Exception):
            client.api.remove_volume(volume["Name"], force=True)
