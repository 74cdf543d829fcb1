"""KubeGPUSpawner: the pod and PVC its choices make (checked against the Kubernetes schemas,
GPU fields exactly), the form's free counts from the cluster, safe names for hostile user
names, and a whole spawn against the API server (the fake of fake_kube.py, or a real cluster
with CELLPIPE_TEST_KUBECONFIG: see conftest.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes_validate
import pytest
from jupyterhub.utils import format_exception
from kubernetes.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import Config

from cellpipe.spawner import KubeGPUSpawner
from cellpipe.spawner.base import SpawnFailed, SpawnRefused
from tests.spawner.conftest import (
    A100,
    GPU_TYPES,
    HOSTILE_NAMES,
    T4,
    Cluster,
    HubStub,
    HubUser,
    OrmSpawner,
)

K8S_VERSION = "1.30.0"
IMAGE = "registry.example.com/team/notebook:1"
T = TypeVar("T")


def settings(cluster: Cluster, **extra: Any) -> Config:
    config = Config()
    config.CellPipe.gpu_types = GPU_TYPES
    config.KubeGPUSpawner.namespace = cluster.namespace
    config.KubeGPUSpawner.images = [{"image": cluster.image, "display_name": "Notebook"}]
    config.KubeGPUSpawner.cmd = ["jupyterhub-singleuser"]
    config.KubeGPUSpawner.start_timeout = 300 if cluster.fake is None else 30
    config.KubeGPUSpawner.k8s_api_request_retry_timeout = 30
    for name, value in extra.items():
        setattr(config.KubeGPUSpawner, name, value)
    return config


def new_spawner(cluster: Cluster, user: HubUser, server: str = "", **extra: Any) -> Any:
    spawner = KubeGPUSpawner(
        config=settings(cluster, **extra),
        user=user,
        hub=HubStub(),
        orm_spawner=OrmSpawner(server),
        _mock=True,
    )
    spawner.api_token = "test-token"
    user.spawners[server] = spawner
    return spawner


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Runs a scenario on a fresh event loop, then stops KubeSpawner's shared watches."""

    async def wrapped() -> T:
        try:
            return await scenario()
        finally:
            await KubeSpawner._stop_all_reflectors()

    return asyncio.run(wrapped())


def as_dict(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = ApiClient().sanitize_for_serialization(model)
    return data


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


async def manifests(spawner: Any, options: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    spawner.user_options = options
    await spawner.load_user_options()
    pod = as_dict(await spawner.get_pod_manifest())
    pvc = as_dict(spawner.get_pvc_manifest())
    validate(pod)
    validate(pvc)
    return pod, pvc


def notebook(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    return container


def test_pod_and_pvc_from_the_form_choices(fake_cluster: Cluster) -> None:
    # Given alice's choices: an image, 2 CPUs, 8 GiB and 2 A100s
    options = {"image": IMAGE, "cpu": "2", "memory": "8Gi", "gpu_type": A100, "gpus": "2"}

    async def scenario() -> tuple[dict[str, Any], ...]:
        return await manifests(new_spawner(fake_cluster, HubUser("alice")), options)

    # When the spawner makes her pod and PVC
    pod, pvc = run(scenario)

    # Then they are valid (checked above), and the GPU fields are exactly these
    container = notebook(pod)
    assert container["image"] == IMAGE
    assert container["resources"] == {
        "limits": {"cpu": 2.0, "memory": 8 * 2**30, "nvidia.com/gpu": "2"},
        "requests": {"cpu": 2.0, "memory": 8 * 2**30, "nvidia.com/gpu": "2"},
    }
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": A100}
    assert pod["spec"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    assert pod["metadata"]["labels"]["cellpipe.org/gpu-type"] == A100
    assert pod["metadata"]["labels"]["cellpipe.org/gpus"] == "2"
    assert "NVIDIA_VISIBLE_DEVICES" not in {e["name"] for e in container["env"]}
    # and her own PVC, at her home
    assert pod["metadata"]["name"] == "jupyter-alice"
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}} in pod["spec"][
        "volumes"
    ]
    assert {"name": "home", "mountPath": "/home/jovyan"} in container["volumeMounts"]
    assert pvc["metadata"]["name"] == "claim-alice"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "10Gi"}},
    }


def test_a_type_counted_under_its_own_resource(fake_cluster: Cluster) -> None:
    # Given a MIG slice type, counted under nvidia.com/mig-1g.10gb, and configured tolerations
    types = [*GPU_TYPES, {"name": "1g.10gb", "resource": "nvidia.com/mig-1g.10gb"}]
    toleration = {"key": "gpu-pool", "operator": "Equal", "value": "mig", "effect": "NoSchedule"}

    async def scenario() -> tuple[dict[str, Any], ...]:
        spawner = new_spawner(
            fake_cluster,
            HubUser("alice"),
            gpu_types=types,
            gpu_tolerations=[toleration],
            read_cluster_gpus=False,
        )
        return await manifests(spawner, {"gpu_type": "1g.10gb", "gpus": 1})

    pod, _ = run(scenario)
    assert notebook(pod)["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert "nvidia.com/gpu" not in notebook(pod)["resources"]["limits"]
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "1g.10gb"}
    assert pod["spec"]["tolerations"] == [toleration]


def test_no_gpu_keeps_the_configured_settings_and_hides_gpus(fake_cluster: Cluster) -> None:
    # Given configured node selector and toleration, and a spawner that had a GPU before
    base = {"key": "notebooks", "operator": "Exists", "effect": "NoSchedule"}

    async def scenario() -> tuple[dict[str, Any], ...]:
        spawner = new_spawner(
            fake_cluster, HubUser("bob"), node_selector={"pool": "notebooks"}, tolerations=[base]
        )
        gpu, _ = await manifests(spawner, {"gpu_type": T4, "gpus": 1})
        plain, _ = await manifests(spawner, {"cpu": "1", "memory": "2Gi"})
        return gpu, plain

    gpu, plain = run(scenario)
    assert gpu["spec"]["nodeSelector"] == {"pool": "notebooks", "nvidia.com/gpu.product": T4}
    assert len(gpu["spec"]["tolerations"]) == 2
    # Then the next spawn without a GPU carries nothing of the GPU one
    assert plain["spec"]["nodeSelector"] == {"pool": "notebooks"}
    assert plain["spec"]["tolerations"] == [base]
    assert notebook(plain)["resources"] == {
        "limits": {"cpu": 1.0, "memory": 2 * 2**30},
        "requests": {"cpu": 1.0, "memory": 2 * 2**30},
    }
    env = {e["name"]: e.get("value") for e in notebook(plain)["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert plain["metadata"]["labels"]["cellpipe.org/gpus"] == "0"


def test_the_form_shows_what_is_free_on_the_cluster(fake_cluster: Cluster) -> None:
    fake = fake_cluster.fake
    assert fake is not None
    # Given another pod holding 3 A100s on the 4-GPU node
    busy = fake.create(
        "pods",
        "team",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "training"},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "x",
                        "resources": {"limits": {"nvidia.com/gpu": "3"}},
                    }
                ]
            },
        },
    )
    fake.update("pods", "team", busy["metadata"]["name"], {"spec": {"nodeName": "gpu-a100-0"}})

    async def scenario() -> Any:
        spawner = new_spawner(fake_cluster, HubUser("alice"), default_limits={"gpus": 8})
        return await spawner.offer()

    offer = run(scenario)
    # Then the form counts it: 3 of 6 free, 2 at most on one node
    assert [(g.name, g.total, g.free, g.max_per_server) for g in offer.gpus] == [
        (A100, 6, 3, 2),
        (T4, 1, 1, 1),
    ]


def test_a_hub_that_may_not_list_nodes_shows_the_configured_types(
    fake_cluster: Cluster,
) -> None:
    assert fake_cluster.fake is not None
    fake_cluster.fake.forbidden.add("nodes")

    async def scenario() -> Any:
        return await new_spawner(fake_cluster, HubUser("alice")).offer()

    offer = run(scenario)
    assert [(g.name, g.free, g.max_per_server) for g in offer.gpus] == [
        (A100, None, None),
        (T4, None, None),
    ]
    assert offer.gpu_note == (
        "Free GPU counts are unknown (the hub may not list the cluster's nodes)."
    )
    # and a count is still bounded: by the spawner's max_gpus_per_server (default 8)
    assert [(g.largest, g.largest_configured) for g in offer.gpus] == [(8, True), (8, True)]


def test_unknown_free_counts_are_bounded_by_the_largest_node(fake_cluster: Cluster) -> None:
    # Given a hub that may list the nodes but not the pods (so nothing is known to be free)
    assert fake_cluster.fake is not None
    fake_cluster.fake.forbidden.add("pods")

    async def scenario() -> Any:
        return await new_spawner(fake_cluster, HubUser("alice")).offer()

    offer = run(scenario)
    assert [(g.name, g.free, g.max_per_server, g.largest) for g in offer.gpus] == [
        (A100, None, None, 4),
        (T4, None, None, 1),
    ]
    assert offer.most_gpus(offer.gpus[0]) == 4


def test_choices_are_checked_again_when_the_server_starts(fake_cluster: Cluster) -> None:
    # Given options that did not come through the form (the REST API)
    async def scenario() -> None:
        spawner = new_spawner(fake_cluster, HubUser("mallory"), default_limits={"gpus": 1})
        spawner.user_options = {"gpu_type": A100, "gpus": 4, "image": "evil/x:1"}
        await spawner.load_user_options()

    # Then the spawn is refused with the message, and nothing is created
    with pytest.raises(SpawnRefused) as refused:
        run(scenario)
    assert refused.value.status_code == 400
    assert refused.value.jupyterhub_message == (
        "Image: 'evil/x:1' is not one of the offered images: " + IMAGE
    )
    assert fake_cluster.pods() == []


def test_jupyterhubs_user_options_step_checks_them_and_logs_a_refusal_in_one_line(
    fake_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the step JupyterHub runs before start() (User.spawn: _run_apply_user_options)
    async def scenario() -> tuple[str, SpawnRefused]:
        spawner = new_spawner(fake_cluster, HubUser("alice"))

        async def apply(options: dict[str, Any]) -> None:
            spawner.user_options = options
            await spawner._run_apply_user_options(spawner.user_options)

        # When the options are good: handled, so no "Received unhandled user_options" warning
        await apply({"gpu_type": A100, "gpus": 1})
        assert "unhandled" not in caplog.text.lower()
        # When a GPU type comes with the count left at 0: refused there, before anything
        with pytest.raises(SpawnRefused) as refused:
            await apply({"gpu_type": A100, "gpus": 0})
        return spawner._log_name, refused.value

    with caplog.at_level("DEBUG"):
        name, refusal = run(scenario)
    assert refusal.jupyterhub_message == (
        "You chose A100 80 GB with 0 GPUs, which would start a server without a GPU. "
        "Ask for at least 1 A100 80 GB, or choose No GPU."
    )
    # and JupyterHub's log line for it (logged "with exception") has the message, no traceback
    (logged,) = [r for r in caplog.records if "applying user_options" in r.getMessage()]
    assert logged.exc_info is None
    assert logged.getMessage() == (
        f"Exception applying user_options for {name}: {refusal.jupyterhub_message}"
    )
    assert "Traceback" not in caplog.text
    assert fake_cluster.pods() == []


def test_limits_count_the_users_other_servers(fake_cluster: Cluster) -> None:
    @dataclass
    class Running:
        active: bool
        user_options: dict[str, Any]

    running = Running(True, {"gpu_type": A100, "gpus": 2, "cpu": "4"})
    stopped = Running(False, {"gpu_type": A100, "gpus": 8})
    user = HubUser("alice", spawners={"training": running, "old": stopped})

    async def scenario() -> None:
        spawner = new_spawner(fake_cluster, user, "second", default_limits={"gpus": 2})
        spawner.user_options = {"gpu_type": T4, "gpus": 1}
        await spawner.load_user_options()

    with pytest.raises(SpawnRefused) as refused:
        run(scenario)
    assert refused.value.jupyterhub_message == (
        "You asked for 1 GPU; your limit is 2 GPUs at a time and your other running server "
        "already uses 2 GPUs, so none is left to you: choose No GPU, or stop another server "
        "first."
    )


def test_hostile_user_names_give_valid_distinct_names(fake_cluster: Cluster) -> None:
    async def scenario() -> list[tuple[str, str, dict[str, Any]]]:
        made = []
        for number, name in enumerate(HOSTILE_NAMES):
            for server in ("", "GPU Box.2"):
                spawner = new_spawner(fake_cluster, HubUser(name, id=number), server)
                pod, pvc = await manifests(spawner, {})
                made.append((pod["metadata"]["name"], pvc["metadata"]["name"], pod))
        return made

    made = run(scenario)
    pods = [m[0] for m in made]
    pvcs = [m[1] for m in made]
    assert len(set(pods)) == len(pods) == 2 * len(HOSTILE_NAMES)
    assert len(set(pvcs)) == len(pvcs)
    for pod_name, pvc_name, pod in made:
        # valid (the schema check passed), DNS-1123 labels (pods also become hostnames)
        for name in (pod_name, pvc_name):
            assert len(name) <= 63 and name == name.lower(), name
            assert name[0].isalnum() and name[-1].isalnum(), name
            assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-"), name
        for value in pod["metadata"]["labels"].values():
            assert len(value) <= 63, value


def test_a_whole_spawn_against_the_api_server(cluster: Cluster) -> None:
    # Given alice's choices: one T4 on the fake; on a real cluster, CELLPIPE_TEST_GPU_TYPE or none
    gpu_type = T4 if cluster.fake else os.environ.get("CELLPIPE_TEST_GPU_TYPE")
    options: dict[str, Any] = {"cpu": "1", "memory": "2Gi"}
    extra: dict[str, Any] = {}
    if gpu_type:
        options.update(gpu_type=gpu_type, gpus=1)
        extra["gpu_types"] = [*GPU_TYPES, {"name": gpu_type}] if cluster.fake is None else None
    extra = {k: v for k, v in extra.items() if v is not None}
    user = HubUser("alice" if cluster.fake else f"cellpipe-spawn-test-{os.getpid()}")
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        spawner = new_spawner(cluster, user, **extra)
        spawner.user_options = options
        # When the hub starts the server (JupyterHub calls start, and reads progress)
        started = spawner.start()
        events = [event async for event in spawner.progress()]
        seen["url"] = await started
        seen["events"] = events
        seen["pods"] = cluster.pods()
        seen["pvcs"] = cluster.pvcs()
        seen["running"] = await spawner.poll()
        await spawner.stop(now=True)
        seen["after"] = cluster.pods()
        if cluster.fake is None:
            await spawner.api.delete_namespaced_persistent_volume_claim(
                spawner.pvc_name, cluster.namespace
            )

    run(scenario)

    # Then the pod ran from the choices, with its PVC, and said how it went
    (pod,) = [p for p in seen["pods"] if p["metadata"]["name"] == f"jupyter-{user.name}"]
    assert seen["url"] == f"http://{pod['status']['podIP']}:8888"
    assert seen["running"] is None
    assert f"claim-{user.name}" in [p["metadata"]["name"] for p in seen["pvcs"]]
    messages = [e["message"] for e in seen["events"]]
    assert messages[0].startswith("Your choices: ")
    pod_events = [e for e in seen["events"] if "raw_event" in e]
    assert pod_events, messages
    if cluster.fake is not None:
        # the fake's scheduler put it where its node selector and toleration let it go
        assert pod["spec"]["nodeName"] == "gpu-t4-0"
        assert notebook(pod)["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert [e["raw_event"]["reason"] for e in pod_events] == [
            "Scheduled",
            "Pulling",
            "Pulled",
            "Created",
            "Started",
        ]
        assert messages[1] == (
            "Asking for 1 nvidia.com/gpu on nodes labelled nvidia.com/gpu.product=Tesla-T4"
        )
    # And stopping it deleted the pod, and kept the PVC (the user's files)
    assert f"jupyter-{user.name}" not in [p["metadata"]["name"] for p in seen["after"]]


async def failed_spawn(spawner: Any) -> tuple[SpawnFailed, list[dict[str, Any]]]:
    """Starts the server as the hub does (start, progress read), expecting it to fail; then
    stops it, as the hub does after a failed start. The failure and the progress events."""
    started = spawner.start()
    events = [event async for event in spawner.progress()]
    with pytest.raises(SpawnFailed) as failed:
        await started
    await spawner.stop(now=True)
    return failed.value, events


def test_a_pod_no_node_can_take_fails_with_the_schedulers_reason(
    fake_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a hub that may not list the nodes (counts unknown, so the form lets it through),
    # and an H100 type configured that no node of the cluster has
    fake = fake_cluster.fake
    assert fake is not None
    fake.forbidden.add("nodes")
    h100 = {"name": "NVIDIA-H100-80GB-HBM3", "display_name": "H100 80 GB"}

    async def scenario() -> tuple[SpawnFailed, list[dict[str, Any]]]:
        spawner = new_spawner(
            fake_cluster,
            HubUser("erin"),
            gpu_types=[*GPU_TYPES, h100],
            unschedulable_timeout=0.5,
        )
        spawner.user_options = {"gpu_type": h100["name"], "gpus": 1}
        return await failed_spawn(spawner)

    # When erin starts a server with one H100
    with caplog.at_level("INFO"):
        failure, events = run(scenario)

    # Then the spawn fails with the scheduler's reason and what to do, which is what the hub
    # shows her (its pages and progress read jupyterhub_message), not "Timeout"
    reason = "0/4 nodes are available: 4 didn't match Pod's node affinity/selector"
    message = (
        f"Your server was not started: no node of the cluster can take it: {reason}. "
        "Ask for fewer GPUs or another GPU type, or try again later."
    )
    assert failure.jupyterhub_message == message
    assert format_exception(failure) == (message, None)
    # and while she waited, the progress said it too
    assert any(e.get("raw_event", {}).get("reason") == "FailedScheduling" for e in events)
    # And nothing is left of the pod; the log says it without a traceback
    assert fake_cluster.pods() == []
    assert "Traceback" not in caplog.text


def test_a_namespace_quota_refusing_the_pod_fails_with_its_words(
    fake_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a namespace whose quota allows 1 GPU, and alice asking for 2 A100s (free)
    fake = fake_cluster.fake
    assert fake is not None
    fake.add_quota(fake_cluster.namespace, "gpu-quota", {"requests.nvidia.com/gpu": "1"})

    async def scenario() -> tuple[SpawnFailed, list[dict[str, Any]]]:
        spawner = new_spawner(fake_cluster, HubUser("alice"))
        spawner.user_options = {"gpu_type": A100, "gpus": 2}
        return await failed_spawn(spawner)

    # When she starts her server
    with caplog.at_level("INFO"):
        failure, _ = run(scenario)

    # Then the API server's refusal reaches her in its own words, with what to do
    quota = "requests.nvidia.com/gpu"
    assert failure.jupyterhub_message == (
        'Your server was not started: the cluster refused it (403): pods "jupyter-alice" is '
        f"forbidden: exceeded quota: gpu-quota, requested: {quota}=2, used: {quota}=0, "
        f"limited: {quota}=1. Ask for fewer GPUs or less CPU and memory, stop another server, "
        f"or ask the cluster's administrators for a larger quota in namespace "
        f"{fake_cluster.namespace}."
    )
    # And no pod was made; the log has neither the whole pod nor a traceback
    assert fake_cluster.pods() == []
    assert "Failed for" not in caplog.text
    assert "Traceback" not in caplog.text
