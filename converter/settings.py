"""Notebook-level settings: `metadata.cellpipe`, or Kale's `metadata.kubeflow_notebook`.

Kale notebooks of every version are read unchanged; what cellpipe cannot honour becomes one
clear warning each (never a refusal, never silence).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import limits
from .model import PipelineSettings, Resources, VolumeMount
from .slugs import safe_name

DEFAULT_BASE_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"

# Kale keys that only make sense with Arrikto's Rok or Kale's own deploy path.
_KALE_UNSUPPORTED = {
    "autosnapshot": "Rok snapshots are not part of open Kubeflow; cellpipe takes none",
    "snapshot_volumes": "Rok snapshots are not part of open Kubeflow; cellpipe takes none",
    "katib_run": "Katib tuning is not done by cellpipe yet; the notebook compiles without it",
    "katib_metadata": "Katib tuning is not done by cellpipe yet; the notebook compiles without it",
    "storage_class_name": "cellpipe creates no volumes for Kale; mount an existing PVC instead",
    "volume_access_mode": "cellpipe creates no volumes for Kale; mount an existing PVC instead",
    "marshal_volume": "cellpipe hands values on as pipeline artifacts, not through a volume",
    "marshal_path": "cellpipe hands values on as pipeline artifacts, not through a volume",
    "timeout": "Kubeflow Pipelines v2 has no pipeline timeout; use timeout:SECONDS on steps",
}
# Kale keys cellpipe reads, or that have no effect on a pipeline (UI state, hosts).
_KALE_KNOWN = {
    "pipeline_name",
    "pipeline_description",
    "experiment_name",
    "experiment",
    "docker_image",
    "base_image",
    "volumes",
    "steps_defaults",
    "kfp_host",
    "abs_working_dir",
    "enable_caching",
    "security_context",
    "output_path",
    "notebook_path",
}
_SECURITY_CONTEXT_KEYS = ("run_as_user", "run_as_group", "run_as_non_root")


@dataclass
class NotebookSettings:
    pipeline: PipelineSettings
    step_default_tags: list[str] = field(default_factory=list)  # Kale's steps_defaults
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def slug(text: str, limit: int = 63) -> str:
    """A pipeline's (or a task's) name from any text: `safe_name` without a hash, since
    compiled pipelines pin these names; `pipeline` for a text without letters or digits."""
    return safe_name(text, suffix="", limit=limit, fallback="pipeline", letter_first=False)


def read_settings(metadata: Mapping[str, Any], notebook_stem: str) -> NotebookSettings:
    """Read the notebook's own settings; `metadata.cellpipe` wins over Kale's keys."""
    kale = metadata.get("kubeflow_notebook") or {}
    ours = metadata.get("cellpipe") or {}
    settings = NotebookSettings(pipeline=PipelineSettings(name=slug(notebook_stem)))
    if not isinstance(kale, Mapping) or not isinstance(ours, Mapping):
        settings.errors.append(
            "notebook metadata 'cellpipe' and 'kubeflow_notebook' must be JSON objects"
        )
        return settings
    if kale:
        _read_kale(kale, settings)
    if ours:
        _read_cellpipe(ours, settings)
    return settings


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _read_kale(kale: Mapping[str, Any], settings: NotebookSettings) -> None:
    pipeline = settings.pipeline
    pipeline.name = slug(_text(kale.get("pipeline_name")) or pipeline.name)
    pipeline.description = _text(kale.get("pipeline_description")) or pipeline.description
    experiment = kale.get("experiment")
    experiment_name = experiment.get("name") if isinstance(experiment, Mapping) else None
    pipeline.experiment = _text(kale.get("experiment_name")) or _text(experiment_name)
    pipeline.base_image = _text(kale.get("base_image")) or _text(kale.get("docker_image"))
    if kale.get("enable_caching") is False:
        settings.step_default_tags.append("cache:off")
    steps_defaults = kale.get("steps_defaults") or []
    if isinstance(steps_defaults, list):
        settings.step_default_tags.extend(str(t) for t in steps_defaults)
    _read_kale_security_context(kale.get("security_context"), settings)
    volumes = kale.get("volumes") or []
    if not isinstance(volumes, list):
        settings.warnings.append(f"Kale setting 'volumes' is not a list ({volumes!r:.40}); ignored")
        volumes = []
    for volume in volumes:
        _read_kale_volume(volume, settings)
    for key, why in _KALE_UNSUPPORTED.items():
        if kale.get(key):
            settings.warnings.append(f"Kale setting {key!r} is not honoured: {why}")
    for key in kale:
        if key not in _KALE_UNSUPPORTED and key not in _KALE_KNOWN:
            settings.warnings.append(f"Kale setting {key!r} is not known to cellpipe; ignored")


def _read_kale_security_context(context: Any, settings: NotebookSettings) -> None:
    if not isinstance(context, Mapping) or not context.get("enabled", True):
        return
    for key in _SECURITY_CONTEXT_KEYS:
        value = context.get(key)
        if value is None:
            continue
        if key == "run_as_non_root" and not isinstance(value, bool):
            settings.errors.append(
                f"Kale setting security_context.{key}: {value!r} is not true or false"
            )
        elif key != "run_as_non_root" and (
            not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 1
        ):
            settings.errors.append(
                f"Kale setting security_context.{key}: {value!r} is not a "
                f"{'user' if key == 'run_as_user' else 'group'} id (a whole number from 0 to "
                f"{2**31 - 1}, as Kubernetes takes it)"
            )
        else:
            settings.pipeline.security_context[key] = value


def _read_kale_volume(volume: Any, settings: NotebookSettings) -> None:
    if not isinstance(volume, Mapping):
        settings.warnings.append(f"Kale volume {volume!r} is not an object; ignored")
        return
    kind = volume.get("type")
    name = _text(volume.get("name"))
    mount = _text(volume.get("mount_point"))
    if kind == "pvc" and name and mount:
        settings.pipeline.volumes.append(VolumeMount(pvc=name, mount_path=mount))
        if volume.get("expose_as_env_var"):  # Kale 2.3: KALE_VOLUME_<NAME> = the mount path
            variable = "KALE_VOLUME_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
            settings.step_default_tags.append(f"env:{variable}={mount}")
    elif kind in ("snapshot", "clone", "new_pvc", "pv"):
        settings.warnings.append(
            f"Kale volume {name or '?'!r} of type {kind!r} (mounted at {mount or '?'}) is not "
            "honoured: cellpipe mounts existing PVCs only (Rok snapshots and new volumes are "
            "Kale/Arrikto features); create the PVC and use type 'pvc' or a volume: tag"
        )
    else:
        settings.warnings.append(
            f"Kale volume {dict(volume)!r} needs type 'pvc', a name and a mount_point; ignored"
        )


def _read_cellpipe(ours: Mapping[str, Any], settings: NotebookSettings) -> None:
    pipeline = settings.pipeline
    known = {
        "pipeline",
        "name",
        "description",
        "experiment",
        "base_image",
        "registry",
        "resources",
        "image_pull_secrets",
        "service_account",
        "requirements",
    }
    pipeline.name = slug(_text(ours.get("pipeline")) or _text(ours.get("name")) or pipeline.name)
    pipeline.description = _text(ours.get("description")) or pipeline.description
    pipeline.experiment = _text(ours.get("experiment")) or pipeline.experiment
    pipeline.base_image = _text(ours.get("base_image")) or pipeline.base_image
    pipeline.registry = _text(ours.get("registry"))
    pipeline.service_account = _text(ours.get("service_account"))
    secrets = ours.get("image_pull_secrets") or []
    if isinstance(secrets, list) and all(isinstance(s, str) for s in secrets):
        pipeline.image_pull_secrets = list(secrets)
    else:
        settings.errors.append("metadata.cellpipe.image_pull_secrets must be a list of names")
    resources = ours.get("resources") or {}
    if isinstance(resources, Mapping):
        pipeline.default_resources = _default_resources(resources, settings)
    else:
        settings.errors.append("metadata.cellpipe.resources must be an object like {'cpu': '1'}")
    for key in ours:
        if key not in known:
            settings.warnings.append(f"metadata.cellpipe.{key} is not a cellpipe setting; ignored")


def _default_resources(resources: Mapping[str, Any], settings: NotebookSettings) -> Resources:
    out = Resources()
    for key in ("cpu", "memory"):
        value = resources.get(key)
        if value is None:
            continue
        try:
            amount = limits.cpu(str(value)) if key == "cpu" else limits.memory(str(value))
        except limits.Refused as exc:
            example = '"500m" or "2"' if key == "cpu" else '"512Mi" or "4Gi"'
            settings.errors.append(f"metadata.cellpipe.resources.{key}: {exc} (e.g. {example})")
            continue
        if key == "cpu":
            out.cpu_request = out.cpu_limit = amount
        else:
            out.memory_request = out.memory_limit = amount
    for key in resources:
        if key not in ("cpu", "memory"):
            settings.warnings.append(
                f"metadata.cellpipe.resources.{key} is not a default resource (cpu, memory); "
                "GPUs are asked per step with gpu:N tags"
            )
    return out
