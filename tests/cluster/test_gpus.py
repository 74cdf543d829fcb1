"""`cellpipe gpus`: the cluster's GPU inventory, and its fallback to the configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellpipe.launcher.gpus import GpuChoiceError, parse_gpu_override
from tests.cluster.conftest import Cli, Kube

A100 = "NVIDIA-A100-SXM4-80GB"
CONFIG = {
    "CellPipe": {
        "gpu_types": [
            {"name": A100, "display_name": "A100 80 GB"},
            {"name": "1g.10gb", "display_name": "A100 slice", "resource": "nvidia.com/mig-1g.10gb"},
        ]
    }
}


def configure(home: Path) -> None:
    config_dir = home.parent / "jupyter"
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(CONFIG))


def test_inventory_counts_types_totals_and_free_gpus(cellpipe: Cli, kube: Kube, home: Path) -> None:
    cluster = kube.fake_only()
    configure(home)
    cluster.add_node("a1", {"nvidia.com/gpu": "8"}, {"nvidia.com/gpu.product": A100})
    cluster.add_node("a2", {"nvidia.com/gpu": "8"}, {"nvidia.com/gpu.product": A100})
    cluster.add_node(
        "a3", {"nvidia.com/gpu": "8"}, {"nvidia.com/gpu.product": A100}, unschedulable=True
    )
    cluster.add_node("t1", {"nvidia.com/gpu": "1"}, {"nvidia.com/gpu.product": "Tesla-T4"})
    cluster.add_node("mig", {"nvidia.com/mig-1g.10gb": "7"}, {"nvidia.com/gpu.product": A100})
    cluster.add_node("amd", {"amd.com/gpu": "2"})
    cluster.add_node("cpu", {})
    # running pods hold GPUs; finished ones do not
    cluster.add_pod("x", "p1", node="a1", gpus={"nvidia.com/gpu": 3})
    cluster.add_pod("y", "p2", node="a1", gpus={"nvidia.com/gpu": 5}, phase="Succeeded")
    cluster.add_pod("y", "p3", node="mig", gpus={"nvidia.com/mig-1g.10gb": 2})
    code, out, err = cellpipe("gpus", "--format", "json", "--kubeconfig", kube.kubeconfig)
    assert code == 0, err
    inventory = json.loads(out)
    assert (inventory["source"], inventory["counts_known"]) == ("cluster", True)
    by_name = {(t["name"], t["resource"]): t for t in inventory["types"]}
    a100 = by_name[(A100, "nvidia.com/gpu")]
    assert (a100["display_name"], a100["total"], a100["free"], a100["max_per_node"]) == (
        "A100 80 GB",
        24,
        13,
        8,
    )
    assert [(n["name"], n["free"], n["schedulable"]) for n in a100["nodes"]] == [
        ("a1", 5, True),
        ("a2", 8, True),
        ("a3", 8, False),
    ]
    mig = by_name[("1g.10gb", "nvidia.com/mig-1g.10gb")]
    assert (mig["total"], mig["free"]) == (7, 5)
    assert by_name[("Tesla-T4", "nvidia.com/gpu")]["total"] == 1
    assert by_name[(None, "amd.com/gpu")]["total"] == 2
    code, out, err = cellpipe("gpus", "--kubeconfig", kube.kubeconfig)
    assert "NVIDIA-A100-SXM4-80GB (A100 80 GB)" in out and "a3 8/8 cordoned" in out


def test_a_user_who_may_not_list_nodes_sees_the_configured_types(
    cellpipe: Cli, kube: Kube, home: Path
) -> None:
    cluster = kube.fake_only()
    configure(home)
    cluster.forbid("list", "nodes")
    code, out, err = cellpipe("gpus", "--format", "json", "--kubeconfig", kube.kubeconfig)
    assert code == 0, err
    inventory = json.loads(out)
    assert (inventory["source"], inventory["counts_known"]) == ("configuration", False)
    assert "403 Forbidden" in inventory["message"] and "counts unknown" in inventory["message"]
    assert [(t["name"], t["resource"], t["total"]) for t in inventory["types"]] == [
        (A100, "nvidia.com/gpu", None),
        ("1g.10gb", "nvidia.com/mig-1g.10gb", None),
    ]
    # and without any cluster at all
    code, out, err = cellpipe("gpus")
    assert code == 0 and "no Kubernetes configuration" in err
    assert "1g.10gb (A100 slice)" in out and "?" in out


def test_a_broken_config_is_a_user_error(cellpipe: Cli, home: Path) -> None:
    (home.parent / "jupyter" / "jupyter_server_config.json").write_text(
        json.dumps({"CellPipe": {"gpu_types": [{"name": "x", "colour": "red"}]}})
    )
    code, _, err = cellpipe("gpus")
    assert code == 2 and "unknown keys colour" in err and "Traceback" not in err


def test_gpu_overrides_split_at_the_last_equals_sign() -> None:
    choice = parse_gpu_override("a=b=2:T4")
    assert (choice.step, choice.count, choice.type) == ("a=b", 2, "T4")
    assert parse_gpu_override("train=0").count == 0
    with pytest.raises(GpuChoiceError, match="write --gpu STEP=N"):
        parse_gpu_override("train")
