"""GPU choices and the cluster's GPU inventory.

A GPU choice is a count, an optional type (the value of the node label `gpu_label`, e.g.
`NVIDIA-A100-SXM4-80GB`) and a resource name (`nvidia.com/gpu`, `amd.com/gpu`, a MIG slice
such as `nvidia.com/mig-1g.10gb`). The configured `gpu_types` (c.CellPipe.gpu_types, the same
shape for the engines, the server and the spawner) name the types people may choose, and give
a type counted under another resource its resource.

The inventory comes from the cluster's nodes (allocatable GPUs) minus what running pods
request. Where the user may not list nodes (a Kubeflow profile user, usually), it falls back
to the configured types and says the counts are unknown: it never makes a submit fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cellpipe.converter.model import GpuRequest, Pipeline, Step

from .k8s import REQUEST_TIMEOUT, ClusterError, KubeSettings, connect, explain

if TYPE_CHECKING:
    from .config import CellPipe

GPU_RESOURCE_PATTERN = re.compile(r"^([a-z0-9.-]+/)?(gpu|mig-[a-z0-9.]+)$")
TERMINATED_PHASES = ("Succeeded", "Failed")


class GpuChoiceError(ValueError):
    """A GPU choice that cannot be honoured; the message says what exists."""


@dataclass(frozen=True)
class GpuType:
    name: str  # the value of the product label on nodes with this GPU
    display_name: str
    resource: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "display_name": self.display_name, "resource": self.resource}


def configured_types(entries: Iterable[Mapping[str, str]], gpu_resource: str) -> list[GpuType]:
    """c.CellPipe.gpu_types with defaults filled in (display name: the name; resource: the
    configured GPU resource)."""
    return [
        GpuType(e["name"], e.get("display_name") or e["name"], e.get("resource") or gpu_resource)
        for e in entries
    ]


# --- choices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuOverride:
    step: str
    count: int
    type: str | None


def parse_gpu_override(text: str) -> GpuOverride:
    """`STEP=N[:TYPE]`, split at the last '=' (a step's name may hold '=' itself)."""
    step, sep, choice = text.rpartition("=")
    if not sep or not step.strip():
        raise GpuChoiceError(f"--gpu {text!r}: write --gpu STEP=N or --gpu STEP=N:TYPE")
    count_text, _, gpu_type = choice.partition(":")
    if not count_text.strip().isdigit():
        raise GpuChoiceError(
            f"--gpu {text!r}: {count_text!r} is not a number of GPUs (0 takes the step's away)"
        )
    return GpuOverride(step.strip(), int(count_text), gpu_type.strip() or None)


def find_step(pipeline: Pipeline, name: str, what: str) -> Step:
    """The step whose name or task name is `name`, or a GpuChoiceError listing them."""
    for step in pipeline.steps:
        if name in (step.name, step.task):
            return step
    names = ", ".join(repr(s.name) for s in pipeline.steps)
    raise GpuChoiceError(f"{what}: the pipeline has no step {name!r}; its steps are {names}")


def resource_for(gpu_type: str | None, types: list[GpuType], gpu_resource: str) -> str:
    for known in types:
        if gpu_type is not None and known.name == gpu_type:
            return known.resource
    return gpu_resource


def apply_gpu_choices(
    pipeline: Pipeline,
    overrides: Iterable[str],
    types: list[GpuType],
    gpu_resource: str,
) -> dict[str, dict[str, Any]]:
    """Apply `--gpu STEP=N[:TYPE]` over the steps' tags; every step's resource is the one its
    type is counted under. Returns the GPU choices, by step name, as recorded with the run."""
    for step in pipeline.steps:  # a tagged type counted under its own resource (MIG slices)
        gpu = step.resources.gpu
        if gpu is not None:
            step.resources.gpu = GpuRequest(
                gpu.count, gpu.type, resource_for(gpu.type, types, gpu.resource or gpu_resource)
            )
    for text in overrides:
        override = parse_gpu_override(text)
        step = find_step(pipeline, override.step, f"--gpu {text!r}")
        if override.count == 0:
            step.resources.gpu = None
        else:
            step.resources.gpu = GpuRequest(
                override.count, override.type, resource_for(override.type, types, gpu_resource)
            )
    return gpu_choices(pipeline)


def gpu_choices(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    return {
        s.name: s.resources.gpu.to_json() for s in pipeline.steps if s.resources.gpu is not None
    }


# --- the inventory --------------------------------------------------------------------------


@dataclass
class NodeGpus:
    name: str
    total: int
    free: int | None
    schedulable: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total": self.total,
            "free": self.free,
            "schedulable": self.schedulable,
        }


@dataclass
class InventoryEntry:
    name: str | None  # None: nodes with the resource but without the product label
    display_name: str
    resource: str
    nodes: list[NodeGpus] = field(default_factory=list)
    configured: bool = False

    @property
    def total(self) -> int:
        return sum(n.total for n in self.nodes)

    @property
    def free(self) -> int | None:
        if any(n.free is None for n in self.nodes):
            return None
        return sum(n.free or 0 for n in self.nodes if n.schedulable)

    @property
    def max_per_node(self) -> int:
        return max((n.total for n in self.nodes if n.schedulable), default=0)

    def to_json(self, counts_known: bool) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "resource": self.resource,
            "configured": self.configured,
            "total": self.total if counts_known else None,
            "free": self.free if counts_known else None,
            "max_per_node": self.max_per_node if counts_known else None,
            "nodes": [n.to_json() for n in self.nodes],
        }


@dataclass
class Inventory:
    source: str  # "cluster" or "configuration"
    resource: str
    label: str
    entries: list[InventoryEntry]
    counts_known: bool
    message: str | None = None  # why the counts are unknown, or what is partial

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "resource": self.resource,
            "label": self.label,
            "counts_known": self.counts_known,
            "message": self.message,
            "types": [e.to_json(self.counts_known) for e in self.entries],
        }


def from_configuration(
    types: list[GpuType], gpu_resource: str, gpu_label: str, message: str | None = None
) -> Inventory:
    return Inventory(
        "configuration",
        gpu_resource,
        gpu_label,
        [InventoryEntry(t.name, t.display_name, t.resource, configured=True) for t in types],
        counts_known=False,
        message=message,
    )


def _quantity(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0  # GPUs are whole numbers; anything else is not a GPU count


def pod_requests(pod: Mapping[str, Any], resource: str) -> int:
    """What a pod asks of `resource` (an extended resource: the request, else the limit; an
    init container's need overlaps the containers', as the scheduler counts it)."""

    def need(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        return _quantity(requests.get(resource, limits.get(resource, 0)))

    spec = pod.get("spec") or {}
    running = sum(need(c) for c in spec.get("containers") or [])
    init = max((need(c) for c in spec.get("initContainers") or []), default=0)
    return max(running, init)


def inventory_from_objects(
    nodes: list[Mapping[str, Any]],
    pods: list[Mapping[str, Any]] | None,
    types: list[GpuType],
    gpu_resource: str,
    gpu_label: str,
) -> Inventory:
    """The inventory from node and pod objects (as the API returns them, plain dicts).

    `pods` None: free counts unknown (pods could not be listed)."""
    resources = {gpu_resource, *(t.resource for t in types)}
    by_resource_type = {t.resource: t for t in types if t.resource != gpu_resource}
    entries: dict[tuple[str | None, str], InventoryEntry] = {}
    for t in types:
        entries[(t.name, t.resource)] = InventoryEntry(
            t.name, t.display_name, t.resource, configured=True
        )
    used: dict[tuple[str, str], int] = {}
    for pod in pods or []:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if not node or phase in TERMINATED_PHASES:
            continue
        for resource in resources:
            used[(node, resource)] = used.get((node, resource), 0) + pod_requests(pod, resource)
    for node in nodes:
        metadata = node.get("metadata") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        labels = metadata.get("labels") or {}
        node_resources = resources | {r for r in allocatable if GPU_RESOURCE_PATTERN.match(r)}
        for resource in sorted(node_resources):
            count = _quantity(allocatable.get(resource, 0))
            if count <= 0:
                continue
            counted_as = by_resource_type.get(resource)
            name = counted_as.name if counted_as else labels.get(gpu_label)
            key = (name, resource)
            if key not in entries:
                configured = next((t for t in types if t.name == name), None)
                entries[key] = InventoryEntry(
                    name,
                    configured.display_name if configured else (name or f"({resource})"),
                    resource,
                )
            node_name = str(metadata.get("name"))
            free = None if pods is None else max(0, count - used.get((node_name, resource), 0))
            schedulable = not (node.get("spec") or {}).get("unschedulable", False)
            entries[key].nodes.append(NodeGpus(node_name, count, free, schedulable))
    message = None
    if pods is None:
        message = "running pods could not be listed, so free counts are unknown"
    return Inventory("cluster", gpu_resource, gpu_label, list(entries.values()), True, message)


def cluster_inventory(
    settings: KubeSettings,
    types: list[GpuType],
    gpu_resource: str,
    gpu_label: str,
) -> Inventory:
    """The cluster's GPUs, or the configured types (counts unknown) when nodes cannot be read.

    Never raises for the cluster's sake: no configuration, no access, no answer all fall back.
    """
    try:
        connection = connect(settings)
    except ClusterError as exc:
        return from_configuration(types, gpu_resource, gpu_label, f"{exc}; counts unknown")
    from kubernetes import client

    core = client.CoreV1Api(connection.api_client)
    try:
        nodes = core.list_node(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        node_items = _items(nodes)
    except Exception as exc:  # 403 for profile users, unreachable, ...: fall back
        error = explain(exc, "listing the cluster's nodes")
        return from_configuration(
            types,
            gpu_resource,
            gpu_label,
            f"{error}; showing the configured GPU types, counts unknown",
        )
    pod_items: list[Any] | None
    try:
        pods = core.list_pod_for_all_namespaces(
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        pod_items = _items(pods)
    except Exception:
        pod_items = None
    return inventory_from_objects(node_items, pod_items, types, gpu_resource, gpu_label)


def _items(response: Any) -> list[Any]:
    import json

    data = json.loads(response.data)
    items: list[Any] = data.get("items") or []
    return items


# --- checking a request against what exists -------------------------------------------------


@dataclass(frozen=True)
class GpuAsk:
    """GPUs one pod asks for: `who` names it for people (a step, or a job's workers)."""

    who: str
    count: int
    type: str | None
    resource: str


def _describe(entry: InventoryEntry, counts_known: bool) -> str:
    name = entry.name or "no type label"
    if entry.display_name not in (entry.name, None) and entry.name:
        name = f"{entry.name} ({entry.display_name})"
    if counts_known:
        return f"{name}: {entry.resource}, up to {entry.max_per_node} per node"
    return f"{name}: {entry.resource}"


def check_asks(asks: list[GpuAsk], inventory: Inventory) -> list[str]:
    """What no node can ever satisfy: a type that does not exist, more GPUs in one pod than
    any node has. Free counts are not checked (GPUs in use now may be free later)."""
    problems = []
    entries = inventory.entries
    for ask in asks:
        same_resource = [e for e in entries if e.resource == ask.resource]
        if ask.type is not None:
            matching = [e for e in same_resource if e.name == ask.type]
        else:
            matching = same_resource
        if inventory.counts_known:
            matching = [e for e in matching if e.nodes]
        exists = "; ".join(_describe(e, inventory.counts_known) for e in entries if e.nodes) or (
            "no GPUs at all"
        )
        if not inventory.counts_known:
            if ask.type is not None and entries and not matching:
                configured = "; ".join(_describe(e, False) for e in entries)
                problems.append(
                    f"{ask.who} asks for GPU type {ask.type!r}, which is not one of the "
                    f"configured GPU types: {configured}"
                )
            continue
        if not matching:
            what = f"GPU type {ask.type!r}" if ask.type else f"GPUs ({ask.resource})"
            problems.append(
                f"{ask.who} asks for {what}, which no node has; the cluster has: {exists}"
            )
            continue
        most = max(e.max_per_node for e in matching)
        if ask.count > most:
            kind = f"{ask.type} GPUs" if ask.type else f"{ask.resource}"
            problems.append(
                f"{ask.who} asks for {ask.count} {kind} in one pod, and no node has more than "
                f"{most}; the cluster has: {exists}"
            )
    return problems


def asks_of(pipeline: Pipeline, gpu_resource: str) -> list[GpuAsk]:
    return [
        GpuAsk(
            f"step {s.name!r}",
            s.resources.gpu.count,
            s.resources.gpu.type,
            s.resources.gpu.resource or gpu_resource,
        )
        for s in pipeline.steps
        if s.resources.gpu is not None
    ]


def gpu_inventory(config: CellPipe, kube: KubeSettings) -> Inventory:
    """The cluster's GPUs as configured (c.CellPipe.gpu_types, gpu_resource, gpu_label): read
    from its nodes, or where they cannot be read the configured types with counts unknown and
    `message` saying why. Never an error."""
    types = configured_types(config.gpu_types, config.gpu_resource)
    try:
        return cluster_inventory(kube, types, config.gpu_resource, config.gpu_label)
    except Exception as exc:  # the inventory never fails its reader
        return from_configuration(
            types, config.gpu_resource, config.gpu_label, f"{exc}; counts unknown"
        )
