"""KFP v2 IR: what the SDK loads back, what reaches each task, golden files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import components

from cellpipe.converter import CompileOptions, build_pipeline, compile_yaml, load_pipeline
from cellpipe.converter.kfp_ir import ENTRY_MODULE, METRICS_OUTPUT
from tests.notebooks import notebook

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("CELLPIPE_REGENERATE_GOLDEN") == "1"

GPU_NOTEBOOK = notebook(
    (["imports"], "import json"),
    (["parameters"], "epochs = 2\nlr = 0.01\nuse_amp = True\nlayers = [64, 32]\nname = 'run'"),
    (["step:Load data!", "cpu:2", "memory:4Gi", "retries:2", "cache:off"], "rows = [1, 2, 3]"),
    (
        [
            "step:train",
            "gpu:2:NVIDIA-A100-SXM4-80GB",
            "shm:2Gi",
            "timeout:3600",
            "env:MODE=fast",
            "secret:s3-creds:key:AWS_KEY",
            "volume:data-pvc:/data",
            "label:team:ml",
            "annotation:example.com/note:any text",
            "image:python:3.12-slim",
        ],
        "model = {'w': sum(rows) * lr, 'epochs': epochs, 'amp': use_amp, 'layers': layers}",
    ),
    (["step:evaluate"], "accuracy = 0.5 + model['w']\nprint(name, json.dumps(model))"),
    (["metrics"], "accuracy"),
    metadata={
        "cellpipe": {
            "pipeline": "GPU demo",
            "description": "a GPU pipeline",
            "image_pull_secrets": ["regcred"],
        }
    },
)


def parse_documents(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    documents = list(yaml.safe_load_all(text))
    platform = documents[1] if len(documents) > 1 else {}
    return documents[0], platform


def compiled(nb: dict[str, Any], options: CompileOptions | None = None) -> str:
    pipeline = build_pipeline(nb, "gpu.ipynb", options)
    assert [e.message for e in pipeline.errors] == []
    return compile_yaml(pipeline, options)


def test_the_sdk_loads_the_pipeline_back() -> None:
    text = compiled(GPU_NOTEBOOK, CompileOptions(registry="registry.example.com/ml"))
    loaded = components.load_component_from_text(text)
    assert loaded.name == "gpu-demo"
    spec = loaded.component_spec
    assert set(spec.inputs or {}) == {"epochs", "lr", "use_amp", "layers", "name"}
    assert {k: v.default for k, v in (spec.inputs or {}).items()} == {
        "epochs": 2,
        "lr": 0.01,
        "use_amp": True,
        "layers": [64, 32],
        "name": "run",
    }


def test_tasks_edges_and_typed_data() -> None:
    ir, _ = parse_documents(compiled(GPU_NOTEBOOK))
    tasks = ir["root"]["dag"]["tasks"]
    assert list(tasks) == ["evaluate", "load-data", "train"]
    assert tasks["load-data"]["taskInfo"]["name"] == "Load data!"
    assert tasks["train"]["dependentTasks"] == ["load-data"]
    assert tasks["evaluate"]["inputs"]["artifacts"]["model"] == {
        "taskOutputArtifact": {"outputArtifactKey": "model", "producerTask": "train"}
    }
    assert tasks["train"]["inputs"]["parameters"]["lr"] == {"componentInputParameter": "lr"}
    types = {k: v["parameterType"] for k, v in ir["root"]["inputDefinitions"]["parameters"].items()}
    assert types == {
        "epochs": "NUMBER_INTEGER",
        "lr": "NUMBER_DOUBLE",
        "use_amp": "BOOLEAN",
        "layers": "LIST",
        "name": "STRING",
    }
    outputs = ir["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outputs[METRICS_OUTPUT]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_resources_gpus_and_options_reach_the_ir() -> None:
    ir, platform = parse_documents(compiled(GPU_NOTEBOOK))
    executors = ir["deploymentSpec"]["executors"]
    train = executors["exec-train"]["container"]
    assert train["image"].startswith("cellpipe/gpu-demo:")
    assert train["image"] != executors["exec-evaluate"]["container"]["image"]
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["resources"]["accelerator"]["resourceCount"] == "2"
    assert train["env"] == [{"name": "MODE", "value": "fast"}]
    load = executors["exec-load-data"]["container"]["resources"]
    assert (load["resourceCpuRequest"], load["resourceCpuLimit"]) == ("2", "2")
    assert (load["resourceMemoryRequest"], load["resourceMemoryLimit"]) == ("4Gi", "4Gi")
    tasks = ir["root"]["dag"]["tasks"]
    assert tasks["load-data"]["retryPolicy"]["maxRetryCount"] == 2
    assert tasks["load-data"]["cachingOptions"] == {}  # caching off
    assert tasks["train"]["cachingOptions"] == {"enableCache": True}
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert k8s["nodeSelector"] == {"labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}}
    assert k8s["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert k8s["activeDeadlineSeconds"] == "3600"
    assert k8s["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "key", "envVar": "AWS_KEY"}]
    assert k8s["pvcMount"][0]["mountPath"] == "/data"
    assert k8s["emptyDirMounts"][0] == {
        "volumeName": "dshm",
        "mountPath": "/dev/shm",
        "medium": "Memory",
        "sizeLimit": "2Gi",
    }
    assert k8s["podMetadata"] == {
        "labels": {"team": "ml"},
        "annotations": {"example.com/note": "any text"},
    }
    assert [s["secretName"] for s in k8s["imagePullSecret"]] == ["regcred"]


def test_configured_gpu_resource_label_and_tolerations() -> None:
    options = CompileOptions(
        gpu_resource="amd.com/gpu",
        gpu_label="amd.com/gpu.product-name",
        gpu_tolerations=[
            {"key": "gpu", "operator": "Equal", "value": "amd", "effect": "NoSchedule"}
        ],
    )
    ir, platform = parse_documents(compiled(GPU_NOTEBOOK, options))
    accelerator = ir["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert accelerator["accelerator"]["resourceType"] == "amd.com/gpu"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert k8s["nodeSelector"]["labels"] == {"amd.com/gpu.product-name": "NVIDIA-A100-SXM4-80GB"}
    assert k8s["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "amd", "effect": "NoSchedule"}
    ]


HOSTILE = "'; rm -rf / #{{$}}\"\n$(reboot)`id`"


def test_user_text_comes_out_byte_for_byte_and_is_never_code() -> None:
    # Given step names, env values, annotations and parameter defaults a shell or template
    # engine would trip over
    nb = notebook(
        (["parameters"], f"note = {HOSTILE!r}"),
        (
            [f"step:{HOSTILE.replace(',', '')}", "env:X=$(reboot);`id`", "annotation:a:{{$}}"],
            "x = note",
        ),
        (["step:b"], "print(x)"),
    )
    # When compiled
    ir, platform = parse_documents(compiled(nb))
    # Then each comes back exactly, as data
    first = next(t for t in ir["root"]["dag"]["tasks"].values() if "dependentTasks" not in t)
    assert first["taskInfo"]["name"] == HOSTILE
    assert ir["root"]["inputDefinitions"]["parameters"]["note"]["defaultValue"] == HOSTILE
    executor = ir["deploymentSpec"]["executors"]["exec-rm-rf-reboot-id"]["container"]
    assert executor["env"] == [{"name": "X", "value": "$(reboot);`id`"}]
    assert executor["command"][3] == ENTRY_MODULE  # the same fixed text for every step
    assert HOSTILE not in "".join(executor["command"] + executor["args"])
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-rm-rf-reboot-id"]["podMetadata"]["annotations"] == {"a": "{{$}}"}


def test_task_names_are_valid_and_unique() -> None:
    nb = notebook(
        (["step:Train"], "a = 1"),
        (["step:train"], "b = 1"),
        (["step:!!!"], "c = 1"),
        (["step:Ünïcode step 🚀"], "d = 1"),
    )
    tasks = [s.task for s in build_pipeline(nb, "n.ipynb").steps]
    assert tasks == ["train", "train-2", "step", "n-code-step"]
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", t) for t in tasks)


def test_kale_volumes_and_defaults_from_notebook_metadata() -> None:
    nb = notebook(
        (["block:a"], "x = 1"),
        metadata={
            "kubeflow_notebook": {
                "pipeline_name": "kale-pipe",
                "experiment_name": "exp",
                "docker_image": "gcr.io/arrikto/jupyter-kale:latest",
                "volumes": [
                    {"type": "pvc", "name": "workspace", "mount_point": "/home/jovyan"},
                    {"type": "snapshot", "name": "snap", "mount_point": "/snap"},
                ],
                "steps_defaults": ["label:team:ml", "report:enabled"],
                "katib_run": False,
                "enable_caching": False,
                "timeout": 600,
                "security_context": {"enabled": True, "run_as_user": 1000, "run_as_non_root": True},
            }
        },
    )
    pipeline = build_pipeline(nb, "k.ipynb")
    assert pipeline.settings.name == "kale-pipe"
    assert pipeline.settings.experiment == "exp"
    assert pipeline.settings.base_image == "gcr.io/arrikto/jupyter-kale:latest"
    step = pipeline.steps[0]
    assert [(v.pvc, v.mount_path) for v in step.options.volumes] == [("workspace", "/home/jovyan")]
    assert step.options.labels == {"team": "ml"}
    assert (step.options.cache, step.options.report) == (False, True)
    assert not [w for w in pipeline.warnings if "report" in w.message]  # report: is honoured
    (snapshot_warning,) = [w for w in pipeline.warnings if "snap" in w.message]
    assert "type 'snapshot'" in snapshot_warning.message
    (timeout_warning,) = [w for w in pipeline.warnings if "'timeout'" in w.message]
    assert "use timeout:SECONDS on steps" in timeout_warning.message
    _, platform = parse_documents(compile_yaml(pipeline))
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-a"]
    assert k8s["securityContext"]["runAsUser"] == "1000"
    assert k8s["securityContext"]["runAsNonRoot"] is True


def test_no_registry_is_a_warning_and_a_registry_names_the_image() -> None:
    nb = notebook((["step:a"], "x = 1"))
    without = build_pipeline(nb, "n.ipynb")
    assert any("no registry is configured" in w.message for w in without.warnings)
    with_registry = build_pipeline(nb, "n.ipynb", CompileOptions(registry="127.0.0.1:5000/ml/"))
    assert re.fullmatch(r"127\.0\.0\.1:5000/ml/n:[0-9a-f]{16}", with_registry.image)
    assert not any("registry" in w.message for w in with_registry.warnings)


def test_the_image_tag_follows_the_code() -> None:
    first = build_pipeline(notebook((["step:a"], "x = 1")), "n.ipynb").image
    same = build_pipeline(notebook((["step:a"], "x = 1")), "n.ipynb").image
    edited = build_pipeline(notebook((["step:a"], "x = 2")), "n.ipynb").image
    assert first == same != edited


def scrub(text: str) -> str:
    return re.sub(r"(sdkVersion: kfp-)[\w.]+", r"\1VERSION", text)


@pytest.mark.parametrize("name", ["iris_cellpipe", "iris_kale"])
def test_golden_examples(name: str) -> None:
    pipeline = load_pipeline(ROOT / "examples" / f"{name}.ipynb")
    assert [e.message for e in pipeline.errors] == []
    text = scrub(compile_yaml(pipeline))
    golden = GOLDEN / f"{name}.yaml"
    if REGENERATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), (
        f"{golden.name} differs; if the change is intended, run "
        "CELLPIPE_REGENERATE_GOLDEN=1 pytest tests/converter/test_compile.py and review the diff"
    )


def test_golden_gpu_pipeline() -> None:
    text = scrub(compiled(GPU_NOTEBOOK, CompileOptions(registry="registry.example.com/ml")))
    golden = GOLDEN / "gpu_demo.yaml"
    if REGENERATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
