"""The GPUs of one Docker host, and which of them each server gets.

Where the GPUs come from, first that answers:
  1. configuration (DockerGPUSpawner.gpu_devices): required when the Docker API is on another
     machine than the hub, since the hub can only look at its own devices;
  2. `nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader` on the hub's machine;
  3. /dev/nvidia0, /dev/nvidia1, ... (type unknown: the one configured GPU type, else "gpu").

A type is spelled as GPU feature discovery spells the node label `nvidia.com/gpu.product`
(spaces become dashes: "NVIDIA A100-SXM4-80GB" -> "NVIDIA-A100-SXM4-80GB"), so one `gpu_types`
list serves the cluster and the single host.

Which GPUs are in use is read from the engine (the containers' labels), not remembered by the
hub, so it survives a hub restart and sees every hub on the same engine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NVIDIA_SMI_QUERY = ["--query-gpu=index,uuid,name", "--format=csv,noheader"]
_DEVICE_NODE = re.compile(r"^nvidia([0-9]+)$")


@dataclass(frozen=True)
class HostGpu:
    id: str  # what the device request names: the index ("0") or the UUID
    type: str  # the product, spelled as the node label would spell it
    uuid: str | None = None


def product_label(name: str) -> str:
    """A GPU's product name as GPU feature discovery writes it in `nvidia.com/gpu.product`."""
    return re.sub(r"\s+", "-", name.strip())


def parse_nvidia_smi(text: str) -> list[HostGpu]:
    """`nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader` output -> GPUs."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        index, uuid, name = fields[0], fields[1], ",".join(fields[2:]).strip()
        gpus.append(HostGpu(index, product_label(name), uuid or None))
    return gpus


def device_nodes(dev: Path, gpu_type: str) -> list[HostGpu]:
    """GPUs from /dev/nvidiaN device nodes (their type is not written there)."""
    found = []
    try:
        entries = list(dev.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _DEVICE_NODE.match(entry.name)
        if match:
            found.append(HostGpu(match.group(1), gpu_type))
    return sorted(found, key=lambda g: int(g.id))


def from_config(entries: Iterable[Mapping[str, Any]], where: str) -> list[HostGpu]:
    gpus = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        unknown = sorted(set(entry) - {"id", "type", "uuid"})
        if unknown:
            raise ValueError(f"{where} entry {number}: unknown keys {', '.join(unknown)}")
        gpu_id, gpu_type = entry.get("id"), entry.get("type")
        if not isinstance(gpu_id, str) or not gpu_id or not isinstance(gpu_type, str):
            raise ValueError(f"{where} entry {number} needs an id and a type (both text)")
        if gpu_id in seen:
            raise ValueError(f"{where} entry {number}: GPU {gpu_id!r} is listed twice")
        seen.add(gpu_id)
        uuid = entry.get("uuid")
        gpus.append(HostGpu(gpu_id, gpu_type, uuid if isinstance(uuid, str) else None))
    return gpus


def detect(
    nvidia_smi: str = "nvidia-smi", dev: Path = Path("/dev"), default_type: str = "gpu"
) -> tuple[list[HostGpu], str]:
    """The hub machine's GPUs and where they were read from ("nvidia-smi", "/dev", "none")."""
    program = shutil.which(nvidia_smi)
    if program is not None:
        try:
            result = subprocess.run(
                [program, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError):
            result = None
        if result is not None and result.returncode == 0:
            return parse_nvidia_smi(result.stdout), "nvidia-smi"
    nodes = device_nodes(dev, default_type)
    if nodes:
        return nodes, str(dev)
    return [], "none"


# --- in use, free, assigned -----------------------------------------------------------------


def in_use(assigned: Iterable[str]) -> dict[str, int]:
    """How many servers hold each GPU, from the containers' GPU labels ("0,1" each)."""
    counts: dict[str, int] = {}
    for label in assigned:
        for gpu_id in filter(None, (part.strip() for part in label.split(","))):
            counts[gpu_id] = counts.get(gpu_id, 0) + 1
    return counts


def free_of_type(
    gpus: Sequence[HostGpu], used: Mapping[str, int], gpu_type: str, share: int
) -> tuple[int, int]:
    """(total, free) GPUs of a type; a GPU is free while fewer than `share` servers hold it."""
    of_type = [g for g in gpus if g.type == gpu_type]
    return len(of_type), sum(1 for g in of_type if used.get(g.id, 0) < share)


def assign(
    gpus: Sequence[HostGpu], used: Mapping[str, int], gpu_type: str, count: int, share: int
) -> list[str] | None:
    """The ids of `count` GPUs of the type for one server, or None when not enough are free.

    Never the same GPU twice for one server; never a GPU held by `share` servers already
    (share=1, the default: a GPU belongs to one server). The least used GPUs go first, then
    the lowest ids, so that assignments are predictable."""
    candidates = [g for g in gpus if g.type == gpu_type and used.get(g.id, 0) < share]
    if count <= 0 or len(candidates) < count:
        return None if count > 0 else []
    candidates.sort(key=lambda g: (used.get(g.id, 0), _id_order(g.id)))
    return sorted((g.id for g in candidates[:count]), key=_id_order)


def _id_order(gpu_id: str) -> tuple[int, str]:
    return (int(gpu_id), "") if gpu_id.isdigit() else (1 << 30, gpu_id)
