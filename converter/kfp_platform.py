"""A task's Kubernetes settings exactly as kfp.kubernetes writes them, without importing it.

kfp.kubernetes keeps each task's settings as `task.platform_config["kubernetes"]`: its
`KubernetesExecutorConfig` message in protobuf's JSON form (camelCase keys, int64 numbers as
strings, a field left at its default left out, unless it tracks presence). The functions here
build the same dict from the same arguments, because importing kfp.kubernetes imports the
whole Kubernetes client (and through it jsonschema's format checkers): seconds before a compile
starts. tests/converter/test_kfp_platform.py holds every function to kfp.kubernetes's own output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KubernetesConfig = dict[str, Any]


def add_node_selector(config: KubernetesConfig, label_key: str, label_value: str) -> None:
    """kfp.kubernetes.add_node_selector."""
    config.setdefault("nodeSelector", {}).setdefault("labels", {})[_text(label_key)] = _text(
        label_value
    )


def add_toleration(
    config: KubernetesConfig,
    key: str | None = None,
    operator: str | None = None,
    value: str | None = None,
    effect: str | None = None,
    toleration_seconds: int | None = None,
) -> None:
    """kfp.kubernetes.add_toleration (the same keywords: an unknown one is a TypeError)."""
    toleration: dict[str, str] = {}
    _put(toleration, "key", key)
    _put(toleration, "operator", operator)
    _put(toleration, "value", value)
    _put(toleration, "effect", effect)
    if toleration_seconds is not None:  # tracks presence: 0 is written
        toleration["tolerationSeconds"] = str(_whole(toleration_seconds))
    config.setdefault("tolerations", []).append(toleration)


def set_timeout(config: KubernetesConfig, seconds: int) -> None:
    """kfp.kubernetes.set_timeout."""
    if seconds < 0:
        raise ValueError(
            'Argument for "seconds" must be an integer greater or equals to 0. '
            f"Got invalid input: {seconds}. "
        )
    if seconds:
        config["activeDeadlineSeconds"] = str(_whole(seconds))
    else:
        config.pop("activeDeadlineSeconds", None)


def use_secret_as_env(
    config: KubernetesConfig,
    secret_name: str,
    secret_key_to_env: Mapping[str, str],
    optional: bool | None = False,
) -> None:
    """kfp.kubernetes.use_secret_as_env, the secret named by a constant."""
    secret: dict[str, Any] = {}
    pairs = []
    for secret_key, env_var in secret_key_to_env.items():
        pair: dict[str, str] = {}
        _put(pair, "secretKey", secret_key)
        _put(pair, "envVar", env_var)
        pairs.append(pair)
    if pairs:
        secret["keyToEnv"] = pairs
    if optional is not None:  # tracks presence: false is written
        secret["optional"] = _flag(optional)
    secret["secretNameParameter"] = _constant(secret_name)
    _put(secret, "secretName", secret_name)
    config.setdefault("secretAsEnv", []).append(secret)


def mount_pvc(config: KubernetesConfig, pvc_name: str, mount_path: str, sub_path: str = "") -> None:
    """kfp.kubernetes.mount_pvc, the claim named by a constant."""
    mount: dict[str, Any] = {"constant": _text(pvc_name)}  # tracks presence
    _put(mount, "mountPath", mount_path)
    mount["pvcNameParameter"] = _constant(pvc_name)
    _put(mount, "subPath", sub_path)
    config.setdefault("pvcMount", []).append(mount)


def empty_dir_mount(
    config: KubernetesConfig,
    volume_name: str,
    mount_path: str,
    medium: str | None = None,
    size_limit: str | None = None,
) -> None:
    """kfp.kubernetes.empty_dir_mount."""
    mount: dict[str, str] = {}
    _put(mount, "volumeName", volume_name)
    _put(mount, "mountPath", mount_path)
    if medium is not None:  # tracks presence
        mount["medium"] = _text(medium)
    if size_limit is not None:  # tracks presence
        mount["sizeLimit"] = _text(size_limit)
    config.setdefault("emptyDirMounts", []).append(mount)


def add_pod_label(config: KubernetesConfig, label_key: str, label_value: str) -> None:
    """kfp.kubernetes.add_pod_label."""
    labels = config.setdefault("podMetadata", {}).setdefault("labels", {})
    labels[_text(label_key)] = _text(label_value)


def add_pod_annotation(
    config: KubernetesConfig, annotation_key: str, annotation_value: str
) -> None:
    """kfp.kubernetes.add_pod_annotation."""
    annotations = config.setdefault("podMetadata", {}).setdefault("annotations", {})
    annotations[_text(annotation_key)] = _text(annotation_value)


def set_security_context(
    config: KubernetesConfig,
    run_as_user: int | None = None,
    run_as_group: int | None = None,
    run_as_non_root: bool | None = None,
) -> None:
    """kfp.kubernetes.set_security_context, with its checks and messages."""
    if run_as_user is None and run_as_group is None and run_as_non_root is None:
        raise ValueError("At least one security context field must be provided.")
    numbers = (("run_as_user", run_as_user), ("run_as_group", run_as_group))
    for name, number in numbers:  # in kfp.kubernetes's order: both for bools, then both signs
        if isinstance(number, bool):
            raise TypeError(f'Argument for "{name}" must be an int, not bool. Got: {number}.')
    for name, number in numbers:
        if number is not None and number < 0:
            raise ValueError(
                f'Argument for "{name}" must be greater than or equal to 0. '
                f"Got invalid input: {number}."
            )
    if run_as_non_root is not None and not isinstance(run_as_non_root, bool):
        raise TypeError(
            f'Argument for "run_as_non_root" must be a bool. Got: {type(run_as_non_root).__name__}.'
        )
    context = config.setdefault("securityContext", {})  # each field tracks presence
    if run_as_user is not None:
        context["runAsUser"] = str(_whole(run_as_user))
    if run_as_group is not None:
        context["runAsGroup"] = str(_whole(run_as_group))
    if run_as_non_root is not None:
        context["runAsNonRoot"] = run_as_non_root


def set_image_pull_secrets(config: KubernetesConfig, secret_names: Sequence[str]) -> None:
    """kfp.kubernetes.set_image_pull_secrets, the secrets named by constants."""
    secrets = config.setdefault("imagePullSecret", [])
    for name in secret_names:
        secret: dict[str, Any] = {"secretNameParameter": _constant(name)}
        _put(secret, "secretName", name)
        secrets.append(secret)
    if not secrets:
        del config["imagePullSecret"]


def _constant(value: str) -> dict[str, Any]:
    """A constant InputParameterSpec, as kfp.kubernetes's parse_k8s_parameter_input writes."""
    return {"runtimeValue": {"constant": _text(value)}}


def _put(message: dict[str, Any], key: str, value: str | None) -> None:
    """A string field without presence: written unless empty (protobuf's default)."""
    if value is not None and _text(value):
        message[key] = value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a string is needed here, not {type(value).__name__} ({value!r:.40})")
    return value


def _whole(value: Any) -> int:
    if not isinstance(value, int):  # a bool is an int to protobuf too
        raise TypeError(f"{type(value).__name__!r} object cannot be interpreted as an integer")
    return int(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool | int):
        raise TypeError(f"a bool is needed here, not {type(value).__name__}")
    return bool(value)
