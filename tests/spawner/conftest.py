"""Fixtures for the spawner's tests.

- `cluster`: the Kubernetes API the whole-spawn test talks to. The fake of fake_kube.py by
  default (two A100 nodes, a T4 node, a CPU node); a real cluster when CELLPIPE_TEST_KUBECONFIG
  names a kubeconfig (as for tests/cluster), with CELLPIPE_TEST_NAMESPACE a namespace the test
  may create a pod and a PVC in, CELLPIPE_TEST_NOTEBOOK_IMAGE an image with
  jupyterhub-singleuser, and optionally CELLPIPE_TEST_GPU_TYPE a GPU product label value.
- `fake_cluster`: always the fake (tests that read or change its state).
- `HubUser`, `HubStub`, `OrmSpawner`: the little of JupyterHub's User, Hub and database row a
  spawner reads, for tests that drive a spawner without a hub (test_hub.py runs a real one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.spawner.fake_kube import FakeKube, cpu_node, gpu_node

A100 = "NVIDIA-A100-SXM4-80GB"
T4 = "Tesla-T4"
GPU_TYPES = [
    {"name": A100, "display_name": "A100 80 GB"},
    {"name": T4, "display_name": "T4 16 GB"},
]
REAL_KUBECONFIG = os.environ.get("CELLPIPE_TEST_KUBECONFIG")
# user names that must still give valid, distinct object names
HOSTILE_NAMES = [
    "alice",
    "Alice",
    "ALICE",
    "álice",
    "alice.smith",
    "alice..smith",
    "alice-smith",
    "alice_smith",
    "alice@example.com",
    "-alice-",
    "日本語のユーザー",
    "😀",
    "a" * 100,
    "a" * 99 + "b",
    "x" * 64 + ".Y",
    "../../etc/passwd",
    "robert'); DROP TABLE users;--",
]


@dataclass
class Group:
    name: str


@dataclass
class HubUser:
    """What a spawner reads of JupyterHub's User: name, url, groups, the user's spawners."""

    name: str
    id: int = 1
    groups: list[Group] = field(default_factory=list)
    spawners: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"/user/{self.name}/"

    @property
    def escaped_name(self) -> str:
        from urllib.parse import quote

        return quote(self.name, safe="@~")


@dataclass
class OrmSpawner:
    """What a spawner reads of its database row: the server's name (no server yet)."""

    name: str = ""
    display_name: str = ""
    server: Any = None
    state: Any = None
    user_options: Any = None


@dataclass
class HubStub:
    public_host: str = "http://127.0.0.1:8000"
    url: str = "http://127.0.0.1:8081/hub/"
    base_url: str = "/hub/"
    api_url: str = "http://127.0.0.1:8081/hub/api"


@dataclass
class Cluster:
    """The API under test: the fake (state readable directly) or a real cluster."""

    kubeconfig: Path
    namespace: str
    fake: FakeKube | None
    image: str

    def pods(self) -> list[dict[str, Any]]:
        if self.fake is not None:
            return self.fake.items("pods", self.namespace)
        return self._real("list_namespaced_pod")

    def pvcs(self) -> list[dict[str, Any]]:
        if self.fake is not None:
            return self.fake.items("persistentvolumeclaims", self.namespace)
        return self._real("list_namespaced_persistent_volume_claim")

    def _real(self, method: str) -> list[dict[str, Any]]:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        try:
            found = getattr(api, method)(self.namespace, label_selector="component")
            items: list[dict[str, Any]] = api.api_client.sanitize_for_serialization(found)["items"]
            return items
        finally:
            api.api_client.close()


def fake_nodes() -> list[dict[str, Any]]:
    return [
        gpu_node("gpu-a100-0", A100, 4),
        gpu_node("gpu-a100-1", A100, 2),
        gpu_node("gpu-t4-0", T4, 1),
        cpu_node("cpu-0"),
    ]


def use_kubeconfig(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point KubeSpawner at `path`: it reads $KUBECONFIG through kubernetes_asyncio, which
    reads the variable once, when imported; so its copy is set too."""
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """Always the fake (for tests that need its exact nodes, or to change it)."""
    yield from _fake(tmp_path, monkeypatch)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """The fake, or the real cluster CELLPIPE_TEST_KUBECONFIG names."""
    from kubespawner.clients import load_config

    if not REAL_KUBECONFIG:
        yield from _fake(tmp_path, monkeypatch)
        return
    load_config.cache_clear()  # KubeSpawner loads the kubeconfig once per process
    use_kubeconfig(Path(REAL_KUBECONFIG), monkeypatch)
    try:
        yield Cluster(
            Path(REAL_KUBECONFIG),
            os.environ.get("CELLPIPE_TEST_NAMESPACE", "default"),
            None,
            os.environ.get("CELLPIPE_TEST_NOTEBOOK_IMAGE", "quay.io/jupyterhub/singleuser:5"),
        )
    finally:
        load_config.cache_clear()


def _fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    from kubespawner.clients import load_config

    load_config.cache_clear()
    fake = FakeKube(nodes=fake_nodes())
    fake.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(fake.kubeconfig("hub")))
    use_kubeconfig(kubeconfig, monkeypatch)
    try:
        yield Cluster(kubeconfig, "hub", fake, "registry.example.com/team/notebook:1")
    finally:
        fake.stop()
        load_config.cache_clear()


# The first hub test pays for the module's hub: the notebook image pushed to the session's
# registry and pulled by podman, JupyterHub and its proxy started, Chromium started (about 40 s
# here, more on a busy machine); the very first session also pip-installs the image's
# dependencies layer (2-3 minutes, then cached under ~/.cache/cellpipe-tests).
FIRST_HUB_TEST_TIMEOUT = 300
COLD_IMAGE_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from tests.spawner.notebook_image import deps_cached

    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents and "hub" in getattr(item, "fixturenames", ()):
            wanted = FIRST_HUB_TEST_TIMEOUT if deps_cached() else COLD_IMAGE_TIMEOUT
            marker = item.get_closest_marker("timeout")
            current = marker.args[0] if marker is not None and marker.args else None
            if not isinstance(current, (int, float)) or current < wanted:
                item.add_marker(pytest.mark.timeout(wanted), append=False)
            return
