"""A real JupyterHub with KubeGPUSpawner against the fake Kubernetes API, and Chromium: a spawn
the cluster refuses reaches the user in the cluster's words, as the Docker spawner's does.

The fake (fake_kube.py) serves the API over HTTP on 127.0.0.1 from this process; the hub,
a process of its own, reads it through a kubeconfig. The hub may not list the nodes (as a hub
without a ClusterRole), so the form offers the configured types with their counts unknown.
erin asks for an H100 that no node has and reads the scheduler's reason on the page; frank
asks, through the REST API, for more GPUs than the namespace's quota allows and gets the API
server's refusal. Screenshots are kept under test-artifacts/hub/kube/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.spawner.browser import ARTIFACTS, Browser
from tests.spawner.conftest import A100, GPU_TYPES, fake_nodes
from tests.spawner.fake_kube import FakeKube
from tests.spawner.hub import Hub, start_kube_hub
from tests.spawner.test_hub import GPUS, SUBMIT, gpu_type, hub_log_lines, level, log_in

KUBE_ARTIFACTS = ARTIFACTS / "kube"
NAMESPACE = "hub"
H100 = {"name": "NVIDIA-H100-80GB-HBM3", "display_name": "H100 80 GB"}
NO_NODE = (
    "Your server was not started: no node of the cluster can take it: 0/4 nodes are "
    "available: 4 didn't match Pod's node affinity/selector. Ask for fewer GPUs or another "
    "GPU type, or try again later."
)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeKube, Path]]:
    cluster = FakeKube(nodes=fake_nodes())
    cluster.forbidden.add("nodes")
    cluster.start()
    kubeconfig = tmp_path_factory.mktemp("kube") / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(cluster.kubeconfig(NAMESPACE)))
    try:
        yield cluster, kubeconfig
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, fake: tuple[FakeKube, Path]) -> Iterator[Hub]:
    _, kubeconfig = fake
    root = tmp_path_factory.mktemp("kube-hub")
    image = "registry.example.com/team/notebook:1"
    types = [*GPU_TYPES, H100]
    with start_kube_hub(root, kubeconfig, NAMESPACE, image, types, 1.0) as hub:
        yield hub


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, hub: Hub) -> Iterator[Browser]:
    with Browser.opened(tmp_path_factory.mktemp("browser"), KUBE_ARTIFACTS) as browser:
        try:
            yield browser
        finally:
            browser.keep_log(hub.process.log_path)  # the hub's log beside the screenshots


def test_erin_asks_for_a_gpu_no_node_has_and_reads_the_schedulers_reason(
    hub: Hub, browser: Browser, fake: tuple[FakeKube, Path]
) -> None:
    # Given erin on the spawn form of a hub that cannot see the nodes
    log_in(browser, hub, "erin")
    browser.call("goto", "erin", url=f"{hub.url}/hub/spawn")
    assert "Free GPU counts are unknown" in browser.call("text", "erin")

    # When she picks the H100 (the count becomes 1 by itself) and starts
    browser.call("check", "erin", selector=gpu_type(H100["name"]))
    assert browser.call("value", "erin", selector=GPUS) == "1"
    browser.call("submit", "erin", selector=SUBMIT)

    # Then she reads why no node can take her server, and what to do, not "Timeout"
    shown = browser.call("waitForText", "erin", text=NO_NODE, ms=60_000)
    assert "Timeout" not in shown and "Internal Server Error" not in shown
    browser.screenshot("erin", "01-no-node-has-the-gpu")

    # And the page the hub shows for her server afterwards says it too
    later = browser.call("goto", "erin", url=f"{hub.url}/hub/spawn-pending/erin")
    assert later["status"] == 503
    assert NO_NODE in browser.call("text", "erin")
    browser.screenshot("erin", "02-failed-spawn-page-afterwards")

    # And the hub stopped the pod it could not place, and said so in error lines, no traceback
    cluster, _ = fake
    assert [p["metadata"]["name"] for p in cluster.items("pods", NAMESPACE)] == []
    said = hub_log_lines(hub, NO_NODE)
    assert said and {level(line) for line in said} == {"E"}, said
    assert "Traceback" not in hub.log(limit=10**7)


def test_frank_asks_beyond_the_namespaces_quota_and_gets_the_api_servers_words(
    hub: Hub, fake: tuple[FakeKube, Path]
) -> None:
    # Given a namespace whose quota allows 1 GPU at a time
    cluster, _ = fake
    cluster.add_quota(NAMESPACE, "gpu-quota", {"requests.nvidia.com/gpu": "1"})
    assert hub.api("POST", "/users/frank").status_code in (201, 409)

    # When frank asks for 2 A100s (within his own limit) through the REST API
    response = hub.api("POST", "/users/frank/server", json={"gpu_type": A100, "gpus": 2})

    # Then the hub answers with the API server's refusal and what to do
    quota = "requests.nvidia.com/gpu"
    assert response.status_code == 503, response.text
    assert response.json()["message"] == (
        'Your server was not started: the cluster refused it (403): pods "jupyter-frank" is '
        f"forbidden: exceeded quota: gpu-quota, requested: {quota}=2, used: {quota}=0, "
        f"limited: {quota}=1. Ask for fewer GPUs or less CPU and memory, stop another server, "
        f"or ask the cluster's administrators for a larger quota in namespace {NAMESPACE}."
    )
    assert [p["metadata"]["name"] for p in cluster.items("pods", NAMESPACE)] == []
    hub.wait_stopped("frank")
    log = hub.log(limit=10**7)
    assert "Traceback" not in log and "Failed for" not in log
