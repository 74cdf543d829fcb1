"""c.CellPipe.*: what GET /config and GET /gpus show (never a secret), and what is refused."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from cellpipe.launcher.config import CellPipe

from .conftest import Api

SECRET = "s3cr3t-t0ken-value"


@pytest.fixture
def cellpipe_config() -> dict[str, Any]:
    return {
        "registry": "registry.example.com/team",
        "kfp_host": "https://kubeflow.example.com/pipeline",
        "kfp_token": SECRET,
        "namespace": "team-a",
        "gpu_types": [
            {"name": "NVIDIA-A100-SXM4-80GB", "display_name": "A100 80 GB"},
            {"name": "1g.10gb", "resource": "nvidia.com/mig-1g.10gb"},
        ],
        "gpu_tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


async def test_config_shows_the_settings_but_never_a_secret(api: Api) -> None:
    code, config = await api("GET", "config")

    assert code == 200
    assert SECRET not in str(config)
    assert "kfp_token" not in config
    assert config["registry"] == "registry.example.com/team"
    assert config["kfp_host"] == "https://kubeflow.example.com/pipeline"
    assert config["namespace"] == "team-a"
    assert config["default_engine"] == "local"
    # kfp_host is set, so kfp is offered; no kubeconfig here, so no training engines
    assert set(config["engines"]) == {"local", "kfp-local", "kfp"}
    assert config["engines"]["kfp"] == "cellpipe.launcher.kfp_engine.KfpEngine"
    assert config["capabilities"] == ["builds"]
    assert config["builder"] == "append"
    assert config["api"] == "cellpipe/api"
    assert config["gpu_tolerations"] == [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


async def test_without_a_cluster_gpus_are_the_configured_types_and_say_so(api: Api) -> None:
    # no kubeconfig (the server's HOME is a fresh folder, $KUBECONFIG unset): counts unknown
    code, gpus = await api("GET", "gpus")

    assert code == 200
    assert (gpus["source"], gpus["counts_known"]) == ("configuration", False)
    assert "no Kubernetes configuration" in gpus["message"]
    assert (gpus["resource"], gpus["label"]) == ("nvidia.com/gpu", "nvidia.com/gpu.product")
    unknown = {"configured": True, "total": None, "free": None, "max_per_node": None, "nodes": []}
    assert gpus["types"] == [
        {
            "name": "NVIDIA-A100-SXM4-80GB",
            "display_name": "A100 80 GB",
            "resource": "nvidia.com/gpu",
            **unknown,
        },
        {
            "name": "1g.10gb",
            "display_name": "1g.10gb",
            "resource": "nvidia.com/mig-1g.10gb",
            **unknown,
        },
    ]
    assert isinstance(gpus["this_machine"]["has_gpu"], bool)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"gpu_types": [{"display_name": "no name"}]}, "entry 1 needs a name"),
        ({"gpu_types": [{"name": "a", "count": 2}]}, "unknown keys count"),
        ({"default_engine": "kfp"}, "is not one of the engines: local, kfp-local"),
        ({"builder": "docker"}, "is not one of append, engine, kaniko"),
        ({"concurrent_runs": 0}, "at least 1"),
    ],
)
def test_wrong_settings_are_refused_with_what_to_write(
    settings: dict[str, Any], words: str
) -> None:
    with pytest.raises(TraitError, match=words):
        CellPipe(config=Config({"CellPipe": settings}))


def test_a_custom_engine_can_be_the_default() -> None:
    config = CellPipe(
        config=Config(
            {
                "CellPipe": {
                    "default_engine": "mine",
                    "engines": {"mine": "cellpipe.launcher.local_engine.LocalEngine"},
                }
            }
        )
    )
    assert config.default_engine == "mine"
    assert config.engine_class("mine").name == "local"


def test_the_options_are_documented_in_the_extension_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.server_ext", "--help-all"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for trait in CellPipe.class_trait_names(config=True):
        assert f"--CellPipe.{trait}=" in result.stdout
    assert "Bearer token for the Kubeflow Pipelines API" in result.stdout
