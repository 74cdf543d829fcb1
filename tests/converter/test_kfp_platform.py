"""converter/kfp_platform.py writes each task's pod settings exactly as kfp.kubernetes does.

Each function is called both ways with the same arguments (a task holds its settings in
`platform_config["kubernetes"]`, which is all kfp.kubernetes touches for constant inputs),
and whole notebooks are compiled both ways: through kfp_platform, and through kfp.kubernetes
itself in its place. Importing kfp.kubernetes (and with it the Kubernetes client) is fine here,
in the tests, and only here.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest
from kfp import kubernetes

from cellpipe.converter import CompileOptions, build_pipeline, compile_yaml, kfp_ir, kfp_platform
from tests.converter.test_compile import GPU_NOTEBOOK
from tests.notebooks import notebook

Call = tuple[str, dict[str, Any]]


def both_ways(calls: list[Call]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings kfp.kubernetes writes for `calls`, and those kfp_platform writes."""
    task = types.SimpleNamespace(platform_config={})
    pod: kfp_platform.KubernetesConfig = {}
    for name, arguments in calls:
        getattr(kubernetes, name)(task, **arguments)
        getattr(kfp_platform, name)(pod, **arguments)
    return task.platform_config.get("kubernetes", {}), pod


CASES: dict[str, list[Call]] = {
    "node selector": [
        ("add_node_selector", {"label_key": "nvidia.com/gpu.product", "label_value": "A100"}),
        ("add_node_selector", {"label_key": "zone", "label_value": ""}),
        ("add_node_selector", {"label_key": "nvidia.com/gpu.product", "label_value": "H100"}),
    ],
    "tolerations": [
        ("add_toleration", {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}),
        (
            "add_toleration",
            {
                "key": "gpu",
                "operator": "Equal",
                "value": "amd",
                "effect": "NoExecute",
                "toleration_seconds": 30,
            },
        ),
        ("add_toleration", {"key": "spot", "toleration_seconds": 0}),
        ("add_toleration", {}),
        ("add_toleration", {"key": "", "operator": "", "value": "", "effect": ""}),
    ],
    "timeout": [("set_timeout", {"seconds": 3600})],
    "timeout set then cleared": [
        ("set_timeout", {"seconds": 3600}),
        ("add_pod_label", {"label_key": "a", "label_value": "b"}),
        ("set_timeout", {"seconds": 0}),
    ],
    "secret env": [
        (
            "use_secret_as_env",
            {"secret_name": "s3-creds", "secret_key_to_env": {"key": "AWS_KEY", "id": "AWS_ID"}},
        ),
        (
            "use_secret_as_env",
            {"secret_name": "other", "secret_key_to_env": {"k": "V"}, "optional": True},
        ),
        ("use_secret_as_env", {"secret_name": "empty", "secret_key_to_env": {}}),
        ("use_secret_as_env", {"secret_name": "", "secret_key_to_env": {"": ""}}),
    ],
    "pvc": [
        ("mount_pvc", {"pvc_name": "data-pvc", "mount_path": "/data"}),
        ("mount_pvc", {"pvc_name": "home", "mount_path": "/home/jovyan", "sub_path": "me"}),
        ("mount_pvc", {"pvc_name": "", "mount_path": ""}),
    ],
    "empty dir /dev/shm": [
        (
            "empty_dir_mount",
            {
                "volume_name": "dshm",
                "mount_path": "/dev/shm",
                "medium": "Memory",
                "size_limit": "2Gi",
            },
        ),
        ("empty_dir_mount", {"volume_name": "scratch", "mount_path": "/tmp/s"}),
        ("empty_dir_mount", {"volume_name": "", "mount_path": "", "medium": "", "size_limit": ""}),
    ],
    "labels and annotations": [
        ("add_pod_label", {"label_key": "team", "label_value": "ml"}),
        ("add_pod_annotation", {"annotation_key": "example.com/note", "annotation_value": "x y"}),
        ("add_pod_label", {"label_key": "team", "label_value": "data"}),
        ("add_pod_annotation", {"annotation_key": "empty", "annotation_value": ""}),
    ],
    "annotations alone": [("add_pod_annotation", {"annotation_key": "a", "annotation_value": "b"})],
    "security context": [
        ("set_security_context", {"run_as_user": 1000, "run_as_non_root": True}),
    ],
    "security context, zeros and false": [
        ("set_security_context", {"run_as_user": 0, "run_as_group": 0, "run_as_non_root": False}),
    ],
    "security context, set twice": [
        ("set_security_context", {"run_as_group": 100}),
        ("set_security_context", {"run_as_user": 7}),
    ],
    "image pull secrets": [
        ("set_image_pull_secrets", {"secret_names": ["regcred", "other"]}),
        ("set_image_pull_secrets", {"secret_names": ["third"]}),
    ],
    "no image pull secrets": [("set_image_pull_secrets", {"secret_names": []})],
}
CASES["all of them, in the order a compile writes them"] = [
    call for calls in CASES.values() for call in calls
]


@pytest.mark.parametrize("calls", CASES.values(), ids=CASES.keys())
def test_each_setting_is_written_as_kfp_kubernetes_writes_it(calls: list[Call]) -> None:
    theirs, ours = both_ways(calls)
    assert ours == theirs


REFUSED: dict[str, Call] = {
    "negative timeout": ("set_timeout", {"seconds": -1}),
    "no security field": ("set_security_context", {}),
    "a bool for a user": ("set_security_context", {"run_as_user": True}),
    "a bool for a group": ("set_security_context", {"run_as_group": False}),
    "a negative user": ("set_security_context", {"run_as_user": -1}),
    "a negative group": ("set_security_context", {"run_as_group": -5}),
    "both wrong": ("set_security_context", {"run_as_user": -1, "run_as_group": True}),
    "an int for non-root": ("set_security_context", {"run_as_non_root": 1}),
    "a number for a label": ("add_pod_label", {"label_key": "a", "label_value": 1}),
    "a number for a selector": ("add_node_selector", {"label_key": 2, "label_value": "b"}),
    "a float for seconds": ("add_toleration", {"key": "k", "toleration_seconds": 1.5}),
    "an unknown keyword": ("add_toleration", {"key": "k", "seconds": 1}),
}


@pytest.mark.parametrize("call", REFUSED.values(), ids=REFUSED.keys())
def test_what_kfp_kubernetes_refuses_is_refused_alike(call: Call) -> None:
    name, arguments = call
    with pytest.raises(Exception) as theirs:
        getattr(kubernetes, name)(types.SimpleNamespace(platform_config={}), **arguments)
    with pytest.raises(Exception) as ours:
        getattr(kfp_platform, name)({}, **arguments)
    assert type(ours.value) is type(theirs.value)
    if isinstance(theirs.value, ValueError) or name == "set_security_context":
        assert str(ours.value) == str(theirs.value)  # kfp.kubernetes's own checks, word for word


def _through_kfp_kubernetes(name: str) -> Callable[..., None]:
    """kfp_platform's function `name`, done by kfp.kubernetes on a task holding `pod`."""

    def call(pod: kfp_platform.KubernetesConfig, *args: Any, **kwargs: Any) -> None:
        task = types.SimpleNamespace(platform_config={"kubernetes": dict(pod)})
        getattr(kubernetes, name)(task, *args, **kwargs)
        pod.clear()
        pod.update(task.platform_config["kubernetes"])

    return call


KALE_NOTEBOOK = notebook(
    (["block:a"], "x = 1"),
    (["block:b", "prev:a", "limit:nvidia.com/gpu:1"], "y = x + 1"),
    metadata={
        "kubeflow_notebook": {
            "pipeline_name": "kale-pipe",
            "volumes": [{"type": "pvc", "name": "workspace", "mount_point": "/home/jovyan"}],
            "steps_defaults": ["label:team:ml", "annotation:a.b/c:d"],
            "security_context": {"enabled": True, "run_as_user": 1000, "run_as_group": 0},
        }
    },
)
NOTEBOOKS = {
    "gpu notebook": (GPU_NOTEBOOK, None),
    "gpu notebook, configured tolerations": (
        GPU_NOTEBOOK,
        CompileOptions(
            gpu_resource="amd.com/gpu",
            gpu_label="amd.com/gpu.product-name",
            gpu_tolerations=[
                {"key": "gpu", "operator": "Equal", "value": "amd", "effect": "NoSchedule"},
                {"key": "spot", "operator": "Exists"},
            ],
        ),
    ),
    "kale notebook": (KALE_NOTEBOOK, None),
}


@pytest.mark.parametrize(("nb", "options"), NOTEBOOKS.values(), ids=NOTEBOOKS.keys())
def test_a_compile_writes_the_yaml_kfp_kubernetes_would(
    nb: dict[str, Any], options: CompileOptions | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = build_pipeline(nb, "pod.ipynb", options)
    assert [e.message for e in pipeline.errors] == []
    ours = compile_yaml(pipeline, options)
    assert "kubernetes" in ours
    names = [n for n in dir(kfp_platform) if not n.startswith("_") and hasattr(kubernetes, n)]
    assert "set_image_pull_secrets" in names and "add_toleration" in names
    shim = types.SimpleNamespace(
        **{n: _through_kfp_kubernetes(n) for n in names},
        KubernetesConfig=kfp_platform.KubernetesConfig,
    )
    monkeypatch.setattr(kfp_ir, "kfp_platform", shim)
    pipeline = build_pipeline(nb, "pod.ipynb", options)
    assert compile_yaml(pipeline, options) == ours
