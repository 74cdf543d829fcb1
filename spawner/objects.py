"""What a checked choice turns into, as pure functions returning plain data.

- Kubernetes: the KubeSpawner settings for one spawn (`pod_settings`); KubeSpawner's own
  builders (kubespawner.objects.make_pod / make_pvc) then make the V1Pod and the V1PVC.
- Docker: the keyword arguments of the Docker SDK's `create_container` and
  `create_host_config` (`container_spec`), GPU device requests for specific GPU ids included.

Tests assert these as dicts, and the pod and PVC against the Kubernetes schemas.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .choices import Choices

LABEL_PREFIX = "org.cellpipe.spawner"  # Docker labels
USER_LABEL = f"{LABEL_PREFIX}.user"
SERVER_LABEL = f"{LABEL_PREFIX}.server"
GPUS_LABEL = f"{LABEL_PREFIX}.gpus"  # "0,1": the GPU ids the container holds
GPU_TYPE_LABEL = f"{LABEL_PREFIX}.gpu-type"
HOME_LABEL = f"{LABEL_PREFIX}.home"  # on the user's home volume
K8S_GPU_TYPE_LABEL = "cellpipe.org/gpu-type"
K8S_GPUS_LABEL = "cellpipe.org/gpus"
DEFAULT_GPU_TOLERATION = {"operator": "Exists", "effect": "NoSchedule"}
# nvidia-container-runtime exposes every GPU to a container that asks for none when the image
# says NVIDIA_VISIBLE_DEVICES=all (CUDA images do); "void" makes it behave as runc.
NO_GPU_ENV = {"NVIDIA_VISIBLE_DEVICES": "void"}


def gpu_tolerations(resource: str, configured: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """The tolerations of a GPU pod: as configured, else the taint named for the resource
    (what the GPU operator and the cloud GPU node pools put on GPU nodes)."""
    if configured is not None:
        return [dict(t) for t in configured]
    return [{"key": resource, **DEFAULT_GPU_TOLERATION}]


def _label_value(text: str) -> str:
    from cellpipe.launcher.k8s import label_value

    return str(label_value(text))


def pod_settings(
    choices: Choices,
    configured: Mapping[str, Any],
    *,
    gpu_resource: str,
    gpu_label: str,
    tolerations: Sequence[Mapping[str, Any]] | None,
    guarantee_fraction: float = 1.0,
) -> dict[str, Any]:
    """KubeSpawner trait values for one spawn, from the choices over the configured values.

    `configured` holds the configured (pre-choice) values of the traits this sets, with
    list-or-dict traits already as lists: image, cpu_limit, cpu_guarantee, mem_limit,
    mem_guarantee, extra_resource_limits, extra_resource_guarantees, node_selector,
    tolerations, extra_labels, environment."""
    settings: dict[str, Any] = {name: copy.deepcopy(value) for name, value in configured.items()}
    settings["image"] = choices.image
    cores = choices.cpu_cores
    if cores is not None:
        settings["cpu_limit"] = cores
        settings["cpu_guarantee"] = round(cores * guarantee_fraction, 3)
    memory = choices.memory_bytes
    if memory is not None:
        settings["mem_limit"] = memory
        settings["mem_guarantee"] = int(memory * guarantee_fraction)
    limits = dict(settings.get("extra_resource_limits") or {})
    guarantees = dict(settings.get("extra_resource_guarantees") or {})
    selector = dict(settings.get("node_selector") or {})
    pod_tolerations = list(settings.get("tolerations") or [])
    labels = dict(settings.get("extra_labels") or {})
    environment = dict(settings.get("environment") or {})
    if choices.gpus:
        resource = choices.gpu_resource or gpu_resource
        limits[resource] = str(choices.gpus)
        guarantees[resource] = str(choices.gpus)
        if choices.gpu_type:
            selector[gpu_label] = choices.gpu_type
            labels[K8S_GPU_TYPE_LABEL] = _label_value(choices.gpu_type)
        labels[K8S_GPUS_LABEL] = str(choices.gpus)
        for toleration in gpu_tolerations(resource, tolerations):
            if toleration not in pod_tolerations:
                pod_tolerations.append(toleration)
    else:
        environment.update(NO_GPU_ENV)
        labels[K8S_GPUS_LABEL] = "0"
    settings.update(
        extra_resource_limits=limits,
        extra_resource_guarantees=guarantees,
        node_selector=selector,
        tolerations=pod_tolerations,
        extra_labels=labels,
        environment=environment,
    )
    return settings


@dataclass(frozen=True)
class ContainerSpec:
    """`create_container` keyword arguments (but host_config) and `create_host_config` ones."""

    create: dict[str, Any]
    host_config: dict[str, Any]
    gpu_ids: list[str] = field(default_factory=list)


def container_spec(
    *,
    name: str,
    image: str,
    command: Sequence[str] | None,
    env: Mapping[str, str],
    choices: Choices,
    gpu_ids: Sequence[str],
    user: str,
    server: str,
    home_volume: str,
    home_path: str,
    binds: Mapping[str, Mapping[str, str]] | None = None,
    network: str = "bridge",
    host_ip: str = "127.0.0.1",
    port: int = 8888,
    fallback_cpu: float | None = None,
    fallback_memory: int | None = None,
    guarantee_fraction: float = 1.0,
    gpu_driver: str = "nvidia",
    gpu_capabilities: Sequence[str] = ("gpu",),
    auto_remove: bool = False,
) -> ContainerSpec:
    """One user's server container: the chosen image and limits, their home volume at
    `home_path`, the GPUs `gpu_ids` (device requests for exactly those ids) and labels that
    say whose it is and which GPUs it holds.

    With network "host" the server listens on the host's `port` itself (no port publishing);
    otherwise the container's `port` is published on `host_ip` at a port the engine picks."""
    environment = dict(env)
    environment["HOME"] = home_path
    if not gpu_ids:
        environment.update(NO_GPU_ENV)
    labels = {
        USER_LABEL: user,
        SERVER_LABEL: server,
        GPUS_LABEL: ",".join(gpu_ids),
        GPU_TYPE_LABEL: choices.gpu_type or "",
    }
    create: dict[str, Any] = {
        "image": image,
        "name": name,
        "environment": environment,
        "labels": labels,
        "working_dir": home_path,
        "volumes": sorted({home_path, *(b["bind"] for b in (binds or {}).values())}),
    }
    if command:
        create["command"] = list(command)
    all_binds = {home_volume: {"bind": home_path, "mode": "rw"}, **dict(binds or {})}
    host_config: dict[str, Any] = {
        "binds": {k: dict(v) for k, v in all_binds.items()},
        "network_mode": network,
        "auto_remove": auto_remove,
    }
    if network != "host":
        create["ports"] = {f"{port}/tcp": None}
        host_config["port_bindings"] = {port: (host_ip,)}
    cores = choices.cpu_cores if choices.cpu_cores is not None else fallback_cpu
    if cores is not None:
        host_config["nano_cpus"] = int(cores * 1e9)
    memory = choices.memory_bytes if choices.memory_bytes is not None else fallback_memory
    if memory is not None:
        host_config["mem_limit"] = memory
        if guarantee_fraction < 1:
            host_config["mem_reservation"] = int(memory * guarantee_fraction)
    if gpu_ids:
        host_config["device_requests"] = [
            {
                "driver": gpu_driver,
                "device_ids": list(gpu_ids),
                "capabilities": [list(gpu_capabilities)],
            }
        ]
    return ContainerSpec(create, host_config, list(gpu_ids))


def deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Admin extras over a spec (as DockerSpawner merges extra_create_kwargs/extra_host_config)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target
