"""The spawners' configuration: checked when the hub reads it, shared with c.CellPipe, and the
documented jupyterhub_config.py files load as written."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubespawner import KubeSpawner
from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from cellpipe.spawner import DockerGPUSpawner, KubeGPUSpawner, idle_culler
from tests.spawner.conftest import A100, Cluster, HubStub, HubUser, OrmSpawner

DOCS = Path(__file__).resolve().parents[2] / "docs" / "spawner"


def docker_spawner(config: Config, user: HubUser | None = None) -> Any:
    return DockerGPUSpawner(
        config=config, user=user or HubUser("alice"), hub=HubStub(), orm_spawner=OrmSpawner()
    )


def test_gpu_types_come_from_cellpipe_unless_the_spawner_names_its_own() -> None:
    config = Config()
    config.CellPipe.gpu_types = [{"name": A100, "display_name": "A100"}]
    config.CellPipe.gpu_resource = "amd.com/gpu"
    shared = docker_spawner(config)
    assert [(t.name, t.display_name, t.resource) for t in shared.configured_gpu_types()] == [
        (A100, "A100", "amd.com/gpu")
    ]
    config.DockerGPUSpawner.gpu_types = [{"name": "MI300X"}]
    config.DockerGPUSpawner.gpu_resource = "amd.com/gpu"
    own = docker_spawner(config)
    assert [(t.name, t.display_name) for t in own.configured_gpu_types()] == [("MI300X", "MI300X")]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "gpu_types",
            [{"name": A100, "count": 2}],
            "DockerGPUSpawner.gpu_types entry 1: unknown keys count; "
            "the keys are name, display_name, resource",
        ),
        ("gpu_types", [{"display_name": "x"}], "DockerGPUSpawner.gpu_types entry 1 needs a name"),
        ("cpu_choices", ["two"], "DockerGPUSpawner.cpu_choices: 'two' is not a CPU quantity"),
        (
            "memory_choices",
            ["4GB"],
            "DockerGPUSpawner.memory_choices: '4GB' is not a memory quantity",
        ),
        ("default_limits", {"gpu": 1}, "DockerGPUSpawner.default_limits: unknown keys gpu"),
        (
            "group_limits",
            {"team": {"gpus": -1}},
            "DockerGPUSpawner.group_limits['team']: gpus must be a whole",
        ),
        ("images", [{"name": "x"}], "DockerGPUSpawner.images entry 1: unknown keys name"),
        ("images", [{"display_name": "x"}], "DockerGPUSpawner.images entry 1 needs an image"),
        (
            "guarantee_fraction",
            0.0,
            "DockerGPUSpawner.guarantee_fraction must be above 0 and at most 1",
        ),
        ("gpu_sharing", 0, "DockerGPUSpawner.gpu_sharing must be at least 1"),
        (
            "gpu_devices",
            [{"id": "0"}],
            "DockerGPUSpawner.gpu_devices entry 1 needs an id and a type",
        ),
    ],
)
def test_bad_settings_are_refused_when_read(name: str, value: Any, message: str) -> None:
    config = Config()
    setattr(config.DockerGPUSpawner, name, value)
    with pytest.raises(TraitError) as refused:
        docker_spawner(config)
    assert str(refused.value).startswith(message), str(refused.value)


def test_the_idle_culler_service_and_its_role() -> None:
    service, role = idle_culler(timeout=1800, max_age=86400, python="/opt/hub/bin/python")
    assert service == {
        "name": "idle-culler",
        "command": [
            "/opt/hub/bin/python",
            "-m",
            "jupyterhub_idle_culler",
            "--timeout=1800",
            "--cull-every=300",
            "--max-age=86400",
        ],
    }
    assert role == {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
    assert idle_culler(timeout=60)[0]["command"][-1] == "--cull-every=30"
    assert "admin:users" in idle_culler(cull_users=True)[1]["scopes"]
    with pytest.raises(ValueError):
        idle_culler(timeout=0)


def load(name: str) -> Config:
    config: Config = PyFileConfigLoader(name, str(DOCS)).load_config()
    return config


def test_the_documented_docker_configuration_loads() -> None:
    config = load("jupyterhub_config_docker.py")
    assert config.JupyterHub.spawner_class == "cellpipe.spawner.DockerGPUSpawner"
    spawner = docker_spawner(config, HubUser("bob", groups=[]))
    assert spawner.limits().gpus == 1
    assert [t.name for t in spawner.configured_gpu_types()] == [A100]
    assert config.JupyterHub.services[0]["name"] == "idle-culler"


def test_the_documented_kubernetes_configuration_loads(fake_cluster: Cluster) -> None:
    from tests.spawner.conftest import Group

    config = load("jupyterhub_config_kubernetes.py")
    assert config.JupyterHub.spawner_class == "cellpipe.spawner.KubeGPUSpawner"

    async def scenario() -> Any:
        user = HubUser("carol", groups=[Group("gpu-team")])
        spawner = KubeGPUSpawner(
            config=config, user=user, hub=HubStub(), orm_spawner=OrmSpawner(), _mock=True
        )
        try:
            return spawner.limits(), spawner.storage_capacity, await spawner.offer()
        finally:
            await KubeSpawner._stop_all_reflectors()

    limits, capacity, offer = asyncio.run(scenario())
    assert (limits.gpus, limits.cpu, limits.memory) == (4, 32.0, 256 * 2**30)
    assert capacity == "50Gi"
    assert [g.name for g in offer.gpus] == [A100, "Tesla-T4", "1g.10gb"]
    assert offer.images[0].image == "registry.example.com/team/notebook-cuda:2025.1"
