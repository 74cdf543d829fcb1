"""A Docker host's GPUs: where they are read from, what is free, who gets which."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cellpipe.spawner import devices
from cellpipe.spawner.devices import HostGpu

NVIDIA_SMI = """\
0, GPU-8f6f4e1a-0000-4000-8000-000000000000, NVIDIA A100-SXM4-80GB
1, GPU-8f6f4e1a-0000-4000-8000-000000000001, NVIDIA A100-SXM4-80GB
2, GPU-8f6f4e1a-0000-4000-8000-000000000002, Tesla T4
"""
A100 = "NVIDIA-A100-SXM4-80GB"
GPUS = [HostGpu("0", A100), HostGpu("1", A100), HostGpu("2", A100), HostGpu("3", "Tesla-T4")]


def test_nvidia_smi_output_as_node_label_values() -> None:
    assert devices.parse_nvidia_smi(NVIDIA_SMI + "\nNo devices were found\n") == [
        HostGpu("0", A100, "GPU-8f6f4e1a-0000-4000-8000-000000000000"),
        HostGpu("1", A100, "GPU-8f6f4e1a-0000-4000-8000-000000000001"),
        HostGpu("2", "Tesla-T4", "GPU-8f6f4e1a-0000-4000-8000-000000000002"),
    ]


def test_detect_runs_nvidia_smi(tmp_path: Path) -> None:
    program = tmp_path / "nvidia-smi"
    program.write_text(f"#!/bin/sh\ncat <<'EOF'\n{NVIDIA_SMI}EOF\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    found, source = devices.detect(str(program), dev=tmp_path / "nodev")
    assert (len(found), found[2].type, source) == (3, "Tesla-T4", "nvidia-smi")


def test_detect_falls_back_to_device_nodes_then_to_nothing(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia1", "nvidia0", "nvidiactl", "nvidia-uvm", "nvidia10"):
        (dev / name).touch()
    missing = str(tmp_path / "no-nvidia-smi")
    found, source = devices.detect(missing, dev=dev, default_type=A100)
    assert found == [HostGpu("0", A100), HostGpu("1", A100), HostGpu("10", A100)]
    assert source == str(dev)
    assert devices.detect(missing, dev=tmp_path / "empty") == ([], "none")


def test_a_failing_nvidia_smi_is_not_trusted(tmp_path: Path) -> None:
    program = tmp_path / "nvidia-smi"
    program.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    os.chmod(program, 0o755)
    assert devices.detect(str(program), dev=tmp_path) == ([], "none")


def test_configured_devices_are_checked() -> None:
    assert devices.from_config([{"id": "0", "type": A100, "uuid": "GPU-1"}], "gpu_devices") == [
        HostGpu("0", A100, "GPU-1")
    ]
    with pytest.raises(ValueError, match="entry 2: GPU '0' is listed twice"):
        devices.from_config([{"id": "0", "type": A100}, {"id": "0", "type": A100}], "x")
    with pytest.raises(ValueError, match="needs an id and a type"):
        devices.from_config([{"id": 0, "type": A100}], "x")
    with pytest.raises(ValueError, match="unknown keys index"):
        devices.from_config([{"index": "0", "type": A100}], "x")


def test_in_use_counts_from_container_labels() -> None:
    assert devices.in_use(["0,1", "", "1", " 2 , "]) == {"0": 1, "1": 2, "2": 1}


def test_assignment_never_gives_a_held_gpu_unless_shared() -> None:
    used = devices.in_use(["0"])
    assert devices.assign(GPUS, used, A100, 2, share=1) == ["1", "2"]
    assert devices.assign(GPUS, used, A100, 3, share=1) is None
    assert devices.assign(GPUS, used, "Tesla-T4", 1, share=1) == ["3"]
    assert devices.assign(GPUS, used, "H100", 1, share=1) is None
    assert devices.assign(GPUS, used, A100, 0, share=1) == []
    # shared: the least used first, then the lowest ids; still never one GPU twice per server
    shared = devices.in_use(["0", "0", "1"])
    assert devices.assign(GPUS, shared, A100, 2, share=2) == ["1", "2"]
    assert devices.assign(GPUS, shared, A100, 3, share=2) is None
    assert devices.free_of_type(GPUS, shared, A100, 2) == (3, 2)


def test_successive_assignments_hand_out_distinct_gpus() -> None:
    held: list[str] = []
    for _ in range(3):
        got = devices.assign(GPUS, devices.in_use(held), A100, 1, share=1)
        assert got is not None
        held.append(",".join(got))
    assert held == ["0", "1", "2"]
    assert devices.assign(GPUS, devices.in_use(held), A100, 1, share=1) is None
