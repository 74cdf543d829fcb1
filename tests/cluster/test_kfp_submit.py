"""`cellpipe submit --engine kfp` and following its runs, against the fake KFP API (or a real
one: CELLPIPE_TEST_KFP_HOST) over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cluster.conftest import IMAGE, Cli, Kfp, Kube
from tests.notebooks import notebook, write


def train_notebook(path: Path, epochs: int = 3) -> Path:
    return write(
        path / "train.ipynb",
        notebook(
            (["parameters"], f"epochs = {epochs}\nrate = 0.1"),
            (["step:load data"], "data = list(range(10))"),
            (["step:train", "gpu:2:NVIDIA-A100-SXM4-80GB"], "model = sum(data) * epochs * rate"),
            (["metrics"], "model"),
        ),
    )


def submit(cellpipe: Cli, nb: Path, kfp: Kfp, *extra: str) -> tuple[int, dict, str]:
    code, out, err = cellpipe(
        "submit",
        nb,
        "--engine",
        "kfp",
        "--host",
        kfp.host,
        "--image",
        IMAGE,
        "--format",
        "json",
        *extra,
    )
    return code, json.loads(out) if out.strip() else {}, err


def test_dry_run_prints_the_pipeline_with_gpus_and_sends_nothing(
    tmp_path: Path, cellpipe: Cli, kfp: Kfp
) -> None:
    # Given a notebook whose train step asks for 2 A100s, and an override for load data
    nb = train_notebook(tmp_path)
    # When it is submitted with --dry-run
    code, out, err = cellpipe(
        "submit",
        nb,
        "--host",
        kfp.host,
        "--dry-run",
        "--gpu",
        "load data=1:T4",
        "--image",
        IMAGE,
    )
    # Then the KFP pipeline is printed, each step in the image, GPUs exactly as chosen
    assert code == 0, err
    assert out.startswith("# cellpipe submit --dry-run: nothing was sent (kfp)")
    spec, platform = list(yaml.safe_load_all(out))
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    train = executors["exec-train"]["container"]["resources"]
    assert (train["accelerator"]["resourceCount"], train["accelerator"]["resourceType"]) == (
        "2",
        "nvidia.com/gpu",
    )
    load = executors["exec-load-data"]["container"]["resources"]["accelerator"]
    assert (load["resourceCount"], load["resourceType"]) == ("1", "nvidia.com/gpu")
    config = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert config["exec-train"]["nodeSelector"] == {
        "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    }
    assert config["exec-load-data"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    # and nothing reached the server
    if kfp.fake is not None:
        assert kfp.fake.sent() == []


def test_submit_uploads_once_then_versions_only_what_changed(
    tmp_path: Path, cellpipe: Cli, kfp: Kfp, home: Path
) -> None:
    fake = kfp.fake_only()
    nb = train_notebook(tmp_path)
    # When the notebook is submitted
    code, first, err = submit(cellpipe, nb, kfp, "-p", "epochs=5", "--experiment", "demos")
    # Then a pipeline, its version, the experiment and a run exist in KFP
    assert code == 0, err
    assert first["status"] == "Pending" and first["engine"] == "kfp"
    assert first["external"]["version_uploaded"] is True
    (pipeline,) = fake.pipelines.values()
    assert pipeline["display_name"] == "train"
    (experiment,) = fake.experiments.values()
    assert experiment["display_name"] == "demos"
    run = fake.runs[first["external"]["run_id"]]
    assert run["runtime_config"]["parameters"] == {"epochs": 5, "rate": 0.1}
    assert first["links"]["kfp_ui"] == f"{kfp.host}/#/runs/details/{run['run_id']}"
    assert first["gpus"] == {
        "train": {"count": 2, "type": "NVIDIA-A100-SXM4-80GB", "resource": "nvidia.com/gpu"}
    }
    # When the same notebook is submitted again: the same version, no new upload
    code, second, err = submit(cellpipe, nb, kfp)
    assert code == 0, err
    assert second["external"]["version_id"] == first["external"]["version_id"]
    assert second["external"]["version_uploaded"] is False
    assert len(fake.versions[pipeline["pipeline_id"]]) == 1
    # When a cell changes: a new version of the same pipeline
    train_notebook(tmp_path, epochs=7)
    code, third, err = submit(cellpipe, nb, kfp)
    assert code == 0, err
    assert third["external"]["pipeline_id"] == pipeline["pipeline_id"]
    assert third["external"]["version_id"] != first["external"]["version_id"]
    assert len(fake.pipelines) == 1 and len(fake.versions[pipeline["pipeline_id"]]) == 2
    # and the text form says where to follow it
    code, out, err = cellpipe("submit", nb, "--host", kfp.host, "--image", IMAGE)
    assert code == 0, err
    assert "(unchanged, reused)" in out and "/#/runs/details/" in out


def test_status_logs_and_steps_follow_the_kfp_run(
    tmp_path: Path, cellpipe: Cli, kfp: Kfp, kube: Kube
) -> None:
    fake = kfp.fake_only()
    cluster = kube.fake_only()
    nb = train_notebook(tmp_path)
    code, run, err = submit(cellpipe, nb, kfp, "--namespace", "team-a")
    assert code == 0, err
    kfp_id = run["external"]["run_id"]
    # Given KFP reports the run running, its first step done
    fake.set_run(
        kfp_id,
        "RUNNING",
        {"load data": ("SUCCEEDED", "train-abc-load-1"), "train": ("RUNNING", "train-abc-train-2")},
    )
    cluster.add_pod("team-a", "train-abc-train-2", container="main", log="epoch 1\nepoch 2\n")
    code, out, err = cellpipe("status", run["run_id"], "--format", "json", "--host", kfp.host)
    status = json.loads(out)
    assert status["status"] == "Running"
    assert status["steps"]["load data"]["status"] == "Succeeded"
    assert status["steps"]["load data"]["seconds"] == 7.0
    assert status["steps"]["train"]["status"] == "Running"
    # logs come from the step's pod, through the Kubernetes API
    code, out, err = cellpipe(
        "logs",
        run["run_id"],
        "--step",
        "train",
        "--host",
        kfp.host,
        "--kubeconfig",
        kube.kubeconfig,
    )
    assert code == 0 and out == "epoch 1\nepoch 2\n"
    # the run's whole log: each step under a header with its status, from its pods
    code, out, err = cellpipe(
        "logs", run["run_id"], "--host", kfp.host, "--kubeconfig", kube.kubeconfig
    )
    assert code == 0, err
    assert out.startswith(f"run {run['run_id']}: train, kfp, Running\n")
    assert "==> step load data [load-data]: Succeeded, 7.00 s <==\n" in out
    assert out.endswith("==> step train: Running, 7.00 s <==\nepoch 1\nepoch 2\n")
    # where the user may not read pods' logs: the message and the KFP UI's link
    cluster.forbid("get", "pods/log")
    code, out, err = cellpipe(
        "logs",
        run["run_id"],
        "--step",
        "train",
        "--host",
        kfp.host,
        "--kubeconfig",
        kube.kubeconfig,
    )
    assert "403 Forbidden" in out and f"/#/runs/details/{kfp_id}" in out
    # When the run fails in KFP
    fake.set_run(kfp_id, "FAILED", {"train": ("FAILED", "p")}, message="train: OOMKilled")
    code, out, err = cellpipe("status", run["run_id"], "--host", kfp.host)
    assert f"run {run['run_id']}: Failed (kfp)" in out
    assert "OOMKilled" in out
    assert "step train [train]: Failed" in out


def test_cancel_and_delete_a_kfp_run(tmp_path: Path, cellpipe: Cli, kfp: Kfp) -> None:
    nb = train_notebook(tmp_path)
    code, run, err = submit(cellpipe, nb, kfp)
    assert code == 0, err
    code, out, err = cellpipe("delete", run["run_id"], "--host", kfp.host)
    assert code == 2 and "cancel it first" in err
    code, out, err = cellpipe("cancel", run["run_id"], "--host", kfp.host)
    assert code == 0, err
    assert out.strip() == f"run {run['run_id']}: Cancelled"
    code, out, err = cellpipe("cancel", run["run_id"], "--host", kfp.host)
    assert code == 2 and "already ended: Cancelled" in err
    code, out, err = cellpipe("delete", run["run_id"][:18], "--host", kfp.host)
    assert code == 0, err
    assert f"Kubeflow Pipelines run {run['external']['run_id']}" in out
    if kfp.fake is not None:
        assert run["external"]["run_id"] not in kfp.fake.runs
    code, out, err = cellpipe("status", run["run_id"])
    assert code == 2 and "no run" in err


def test_a_run_that_never_reaches_kfp_is_kept_failed_with_its_pipeline(
    tmp_path: Path, cellpipe: Cli, kfp: Kfp
) -> None:
    fake = kfp.fake_only()
    nb = train_notebook(tmp_path)
    address = fake.url
    # Unreachable
    fake.stop()
    code, result, err = submit(cellpipe, nb, Kfp(address, None))
    assert code == 1
    assert "cannot reach the Kubeflow Pipelines API" in result["error"]
    assert "Traceback" not in err
    code, out, err = cellpipe("status", result["run_id"], "--format", "json")
    kept = json.loads(out)
    assert kept["status"] == "Failed" and kept["steps"]["train"]["status"] == "Cancelled"
    code, compiled, err = cellpipe("status", result["run_id"], "--compiled")
    assert next(yaml.safe_load_all(compiled))["pipelineInfo"]["name"] == "train"


def test_401_403_and_409_from_kfp(tmp_path: Path, cellpipe: Cli, kfp: Kfp, monkeypatch) -> None:
    fake = kfp.fake_only()
    nb = train_notebook(tmp_path)
    # 401: no token
    monkeypatch.delenv("CELLPIPE_KFP_TOKEN")
    code, result, err = submit(cellpipe, nb, kfp)
    assert code == 1 and "401 Unauthorized" in result["error"] and "Log in again" in result["error"]
    # 403: the profile is not the user's
    monkeypatch.setenv("CELLPIPE_KFP_TOKEN", "kfp-token")
    fake.allowed_namespaces = {"alice"}
    code, result, err = submit(cellpipe, nb, kfp, "--namespace", "bob")
    assert code == 1 and "403 Forbidden" in result["error"] and "namespace bob" in result["error"]
    # 409 on upload (someone uploaded it meanwhile): theirs is used
    fake.allowed_namespaces = None
    fake.fail("GET", "/pipelines$", 200, {"pipelines": []}, times=1)
    code, result, err = submit(cellpipe, nb, kfp)
    assert code == 0, err
    fake.fail("GET", "/pipelines$", 200, {"pipelines": []}, times=1)
    code, again, err = submit(cellpipe, nb, kfp)
    assert code == 0 and again["external"]["pipeline_id"] == result["external"]["pipeline_id"]
    # 404: the run is gone from KFP; status says so and keeps the record
    del fake.runs[again["external"]["run_id"]]
    code, out, err = cellpipe("status", again["run_id"], "--host", kfp.host)
    assert "last known status" in err and "404" in err
    assert f"run {again['run_id']}: Pending" in out


def test_gpu_choices_no_node_can_satisfy_are_refused_before_submission(
    tmp_path: Path, cellpipe: Cli, kfp: Kfp, kube: Kube
) -> None:
    cluster = kube.fake_only()
    cluster.add_node(
        "gpu-a", {"nvidia.com/gpu": "4"}, {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    )
    nb = train_notebook(tmp_path)
    base = ("submit", nb, "--host", kfp.host, "--image", IMAGE, "--kubeconfig", kube.kubeconfig)
    code, _, err = cellpipe(*base, "--gpu", "train=2:H100")
    assert code == 2
    assert "step 'train' asks for GPU type 'H100', which no node has" in err
    assert "NVIDIA-A100-SXM4-80GB: nvidia.com/gpu, up to 4 per node" in err
    code, _out, err = cellpipe(*base, "--gpu", "train=8")
    assert code == 2 and "asks for 8 nvidia.com/gpu in one pod" in err
    assert kfp.fake is None or kfp.fake.sent() == []
    # a step or task that does not exist, and a malformed choice
    code, _, err = cellpipe(*base, "--gpu", "nope=1")
    assert code == 2 and "no step 'nope'; its steps are 'load data', 'train'" in err
    code, _, err = cellpipe(*base, "--gpu", "train=two")
    assert code == 2 and "is not a number of GPUs" in err


def test_a_session_cookie_for_kubeflow_behind_a_login(
    tmp_path: Path, cellpipe: Cli, kfp: Kfp, monkeypatch
) -> None:
    fake = kfp.fake_only()
    fake.token = None
    fake.cookie = "authservice_session=s3cret"
    nb = train_notebook(tmp_path)
    code, result, _ = submit(cellpipe, nb, kfp)
    assert code == 1 and "401 Unauthorized" in result["error"]
    monkeypatch.setenv("CELLPIPE_KFP_COOKIE", "authservice_session=s3cret")
    code, result, err = submit(cellpipe, nb, kfp)
    assert code == 0, err
    assert result["external"]["run_id"] in fake.runs
    # the secret is used, never kept with the run
    code, out, _ = cellpipe("status", result["run_id"], "--format", "json")
    assert "s3cret" not in out
