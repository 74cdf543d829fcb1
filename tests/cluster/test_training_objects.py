"""The training jobs' Kubernetes objects: pure builders, validated against the Kubernetes
schemas and the Kubeflow SDKs' models, with GPU limits, node selectors and tolerations
asserted exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cellpipe.converter import CompileOptions, load_pipeline
from cellpipe.converter.settings import slug
from cellpipe.converter.slugs import is_dns_label, safe_name
from cellpipe.launcher.cluster import SubmitRequest
from cellpipe.launcher.gpus import GpuType, apply_gpu_choices
from cellpipe.launcher.k8s import to_dict
from cellpipe.launcher.training_objects import KINDS
from cellpipe.launcher.training_plan import (
    TrainingError,
    TrainingOptions,
    plan_training,
    steps_before,
    trained_step,
)
from tests.fakes.schemas import problems
from tests.notebooks import notebook, write

IMAGE = "registry.example.com/team/train:0123456789abcdef"
A100 = "NVIDIA-A100-SXM4-80GB"


def pipeline_of(tmp_path: Path, *cells: Any) -> Any:
    nb = write(tmp_path / "Train Model.ipynb", notebook(*cells))
    pipeline = load_pipeline(nb, CompileOptions(registry="registry.example.com/team"))
    assert not pipeline.errors, pipeline.errors
    return pipeline


@pytest.fixture
def pipeline(tmp_path: Path) -> Any:
    return pipeline_of(
        tmp_path,
        (["parameters"], "epochs = 3"),
        (["step:load", "cpu:2", "memory:4Gi"], "data = list(range(10))"),
        (["step:features"], "features = [x * 2 for x in data]"),
        (["step:train", f"gpu:2:{A100}", "memory:16Gi"], "model = sum(features) * epochs"),
        (["step:report"], "print(model)"),
    )


def request_for(pipeline: Any) -> SubmitRequest:
    return SubmitRequest(
        pipeline=pipeline,
        notebook=Path(pipeline.notebook),
        parameters={"epochs": 5},
        options=CompileOptions(),
        images={s.name: IMAGE for s in pipeline.steps},
        run_id="20250101-120000-abcdef12",
    )


def pod_specs(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = obj["spec"]
    replicas = next(v for k, v in spec.items() if k.endswith("ReplicaSpecs"))
    return {role: r["template"]["spec"] for role, r in replicas.items()}


def test_safe_names_are_dns_labels_with_a_hash_and_never_collide() -> None:
    names = {
        safe_name(text, salt="run")
        for text in ("Train Model!", "train-model", "train model", "9 lives", "x" * 200, "")
    }
    assert len(names) == 6
    for name in names:
        assert is_dns_label(name) and name[0].isalpha(), name
    assert safe_name("Train Model!", salt="run").startswith("train-model-")
    assert safe_name("Train Model!", salt="run") != safe_name("Train Model!", salt="other")


def test_one_safe_name_function_keeps_every_name_it_replaced() -> None:
    # the training objects' names: a hash of the text and the run
    assert safe_name("Train Model!", salt="run") == "train-model-390dc46b"
    assert safe_name("9 lives", salt="run") == "x-9-lives-287df921"
    assert safe_name("", salt="run") == "x-b9d3cce0"
    assert (
        safe_name("Train Model" * 10, salt="20250101-120000-abcdef12:pytorchjob", limit=52)
        == "train-modeltrain-modeltrain-modeltrain-mode-23fbb904"
    )
    # kaniko's build names: the image tag after the slug
    assert safe_name("cellpipe-build-iris-demo", suffix="0123456789") == (
        "cellpipe-build-iris-demo-0123456789"
    )
    long = safe_name("cellpipe-build-" + "a" * 80, suffix="0123456789")
    assert long == "cellpipe-build-" + "a" * 37 + "-0123456789" and is_dns_label(long)
    # pipeline and task names (pinned by the golden files): the slug alone
    assert slug("Train Model!") == "train-model"
    assert slug("2024 Report") == "2024-report"  # a digit may lead a pipeline's name
    assert slug("!!!") == "pipeline"
    assert slug("x" * 80, limit=50) == "x" * 50


def test_the_trained_step_and_the_steps_it_needs(pipeline: Any) -> None:
    assert trained_step(pipeline, None).name == "train"  # the one step with GPUs
    assert [s.name for s in steps_before(pipeline, pipeline.step("train"))] == [
        "load",
        "features",
    ]
    assert trained_step(pipeline, "report").name == "report"
    with pytest.raises(TrainingError, match="no such step; its steps are 'load', 'features'"):
        trained_step(pipeline, "nope")


@pytest.mark.parametrize("engine", sorted(KINDS))
def test_every_training_job_is_valid_and_carries_the_gpus_exactly(
    engine: str, pipeline: Any
) -> None:
    options = TrainingOptions(workers=3, storage_size="20Gi", storage_class="nfs")
    plan = plan_training(engine, request_for(pipeline), options, "team-a")
    objects = [to_dict(o) for o in plan.objects]
    claim, prepare, job = objects
    for obj in objects:
        assert problems(obj) == [], obj
        assert is_dns_label(obj["metadata"]["name"])
        assert obj["metadata"]["namespace"] == "team-a"
        assert obj["metadata"]["labels"]["cellpipe.org/run-id"] == "20250101-120000-abcdef12"
    # the run's storage: its own claim, mountable from every node
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "nfs",
    }
    # the steps before run once, in a Job of their own, with the most they ask for
    assert prepare["kind"] == "Job"
    (main,) = prepare["spec"]["template"]["spec"]["containers"]
    assert main["args"] == [
        "prepare",
        "--run-dir",
        "/cellpipe/data/runs/20250101-120000-abcdef12",
        "--steps",
        "load,features",
    ]
    assert main["resources"] == {
        "limits": {"cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "2", "memory": "4Gi"},
    }
    assert {"name": "CELLPIPE_PARAMETERS", "value": '{"epochs": 5}'} in main["env"]
    assert "nodeSelector" not in prepare["spec"]["template"]["spec"]
    # the job: the kind the engine names, 3 workers, each with 2 A100s
    assert job["kind"] == KINDS[engine].kind
    tolerations = [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    if engine == "trainjob":
        trainer = job["spec"]["trainer"]
        assert trainer["numNodes"] == 3 and trainer["image"] == IMAGE
        assert trainer["resourcesPerNode"]["limits"] == {"memory": "16Gi", "nvidia.com/gpu": "2"}
        assert job["spec"]["runtimeRef"]["name"] == "torch-distributed"
        pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
            "replicatedJobs"
        ][0]["template"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": A100}
        assert pod["tolerations"] == tolerations
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert "wait --run-dir" in trainer["command"][2]
        return
    specs = pod_specs(job)
    workers = {
        "pytorchjob": {"Master": 1, "Worker": 2},
        "xgboostjob": {"Master": 1, "Worker": 2},
        "tfjob": {"Worker": 3},
        "mpijob": {"Launcher": 1, "Worker": 3},
    }[engine]
    replicas = next(v for k, v in job["spec"].items() if k.endswith("ReplicaSpecs"))
    assert {role: r["replicas"] for role, r in replicas.items()} == workers
    for role, spec in specs.items():
        (container,) = spec["containers"]
        assert container["name"] == KINDS[engine].container
        assert container["image"] == IMAGE
        assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        (wait,) = spec["initContainers"]
        assert wait["args"][:3] == [
            "wait",
            "--run-dir",
            "/cellpipe/data/runs/20250101-120000-abcdef12",
        ]
        if role == "Launcher":
            assert "nodeSelector" not in spec and "tolerations" not in spec
            assert container["command"][:4] == ["mpirun", "--allow-run-as-root", "-np", "6"]
            continue
        assert container["resources"]["limits"] == {"memory": "16Gi", "nvidia.com/gpu": "2"}
        assert spec["nodeSelector"] == {"nvidia.com/gpu.product": A100}
        assert spec["tolerations"] == tolerations
        if engine != "mpijob":
            assert container["args"] == [
                "train",
                "--run-dir",
                "/cellpipe/data/runs/20250101-120000-abcdef12",
                "--step",
                "train",
            ]


def test_submit_options_win_over_tags_and_configured_resources_are_used(
    tmp_path: Path,
) -> None:
    pipeline = pipeline_of(
        tmp_path,
        (["step:train", "gpu:1:1g.10gb"], "model = 1"),
    )
    # a MIG slice counted under its own resource, from the configured gpu_types
    types = [GpuType("1g.10gb", "A100 slice", "nvidia.com/mig-1g.10gb")]
    apply_gpu_choices(pipeline, [], types, "nvidia.com/gpu")
    plan = plan_training(
        "pytorchjob",
        request_for(pipeline),
        TrainingOptions(
            workers=1,
            pvc="shared-data",
            gpu_tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
            ],
        ),
        "team-a",
    )
    (job,) = [to_dict(o) for o in plan.objects]  # an existing claim, no steps before
    assert problems(job) == []
    (master,) = pod_specs(job).values()
    assert master["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": "1"}
    assert master["nodeSelector"] == {"nvidia.com/gpu.product": "1g.10gb"}
    assert master["tolerations"] == [
        {"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "ml"}
    ]
    assert "initContainers" not in master
    assert master["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shared-data"
    # --gpus-per-worker and --gpu-type over the tag
    plan = plan_training(
        "tfjob",
        request_for(pipeline),
        TrainingOptions(workers=2, gpus_per_worker=4, gpu_type=A100),
        "team-a",
    )
    job = to_dict(plan.objects[-1])
    (worker,) = pod_specs(job).values()
    assert worker["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": "4"}
    assert worker["nodeSelector"] == {"nvidia.com/gpu.product": A100}


def test_the_schema_check_catches_what_a_server_would_refuse() -> None:
    # the validators are real: a wrong field, a wrong type and a missing name are caught
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "x"},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": "two"}}},
    }
    assert any("is not a int" in p for p in problems(job))
    job["spec"]["pytorchReplicaSpecs"]["Master"] = {
        "replicas": 1,
        "template": {"spec": {"containers": [{"image": "x"}]}},
    }
    assert problems(job) == ["PyTorchJob: Invalid value for `name`, must not be `None`"]
    job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"] = [
        {"image": "x", "nam": "y"}
    ]
    assert problems(job) == [
        "PyTorchJob.spec.pytorchReplicaSpecs.Master.template.spec.containers[0].nam: unknown "
        "field of V1Container"
    ]
    trainjob = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "x"},
        "spec": {"runtimeRef": {"name": "torch"}, "trainer": {"numNodes": "x"}},
    }
    assert "numNodes" in problems(trainjob)[0]
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c"},
        "spec": {"accesModes": ["ReadWriteMany"]},
    }
    assert problems(claim)
