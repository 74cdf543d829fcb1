"""Cluster engines and the GPU inventory through the API, against the fake Kubeflow Pipelines
and Kubernetes APIs (tests/fakes/, real HTTP on 127.0.0.1). `image` is given, so nothing is
built: the submit path is the one `cellpipe submit --image` takes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kfp import FakeKfp
from tests.fakes.kube import FakeKubernetes
from tests.notebooks import notebook, write

from .conftest import Api, finished, wait_for_run

A100 = "NVIDIA-A100-SXM4-80GB"
IMAGE = "registry.example.com/team/cellpipe-test:0123456789abcdef"
TOKEN = "kfp-t0ken-never-shown"
TRAIN = notebook(
    (["parameters"], "epochs = 3\nrate = 0.1"),
    (["step:load data"], "data = list(range(10))"),
    (["step:train", f"gpu:2:{A100}"], "model = sum(data) * epochs * rate"),
    (["metrics"], "model"),
)


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    """The fake Kubernetes API as the server's kubeconfig ($KUBECONFIG), context team-a."""
    for name in (
        "KUBERNETES_SERVICE_HOST",
        "KF_PIPELINES_ENDPOINT",
        "CELLPIPE_KFP_TOKEN",
        "CELLPIPE_KFP_COOKIE",
    ):
        monkeypatch.delenv(name, raising=False)
    fake = FakeKubernetes()
    fake.start()
    monkeypatch.setenv("KUBECONFIG", str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def kfp() -> Iterator[FakeKfp]:
    fake = FakeKfp(token=TOKEN)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def cellpipe_config(kube: FakeKubernetes, kfp: FakeKfp) -> dict[str, Any]:
    return {
        "kfp_host": kfp.url,
        "kfp_token": TOKEN,
        "namespace": "team-a",
        "gpu_types": [{"name": A100, "display_name": "A100 80 GB"}],
    }


def submitted(run: dict[str, Any]) -> bool:
    """The server is done submitting it: `progress` is there only while it submits."""
    return "progress" not in run


async def test_a_kfp_run_submitted_followed_and_deleted_through_the_api(
    api: Api, root: Path, kfp: FakeKfp, kube: FakeKubernetes
) -> None:
    kube.add_node("gpu-a", {"nvidia.com/gpu": "4"}, {"nvidia.com/gpu.product": A100})
    write(root / "train.ipynb", TRAIN)
    answers: list[Any] = []

    # The server offers the cluster engines it is configured for
    _, config = await api("GET", "config")
    assert {"local", "kfp-local", "kfp", "pytorchjob", "trainjob"} <= set(config["engines"])

    # When the notebook is submitted to KFP, in a given image, with a GPU choice
    code, run = await api(
        "POST",
        "runs",
        body={
            "path": "train.ipynb",
            "engine": "kfp",
            "image": IMAGE,
            "parameters": {"epochs": 5},
            "gpus": {"load data": "1"},
        },
    )

    # Then the answer comes at once, Pending, with the choices recorded
    assert code == 202, run
    assert (run["engine"], run["status"], run["path"]) == ("kfp", "Pending", "train.ipynb")
    assert run["gpus"] == {
        "load data": {"count": 1, "type": None, "resource": "nvidia.com/gpu"},
        "train": {"count": 2, "type": A100, "resource": "nvidia.com/gpu"},
    }
    # And the run reaches KFP: pipeline, version, experiment, run with its parameters
    sent = await wait_for_run(api, run["run_id"], submitted)
    assert sent["error"] is None, sent
    kfp_id = sent["external"]["run_id"]
    assert kfp.runs[kfp_id]["runtime_config"]["parameters"] == {"epochs": 5, "rate": 0.1}
    assert sent["image"] == IMAGE
    assert sent["links"]["kfp_ui"] == f"{kfp.url}/#/runs/details/{kfp_id}"
    (pipeline,) = kfp.pipelines.values()
    assert pipeline["display_name"] == "train"

    # When KFP reports it running, its first step done
    kfp.set_run(
        kfp_id,
        "RUNNING",
        {"load data": ("SUCCEEDED", "train-load-1"), "train": ("RUNNING", "train-train-2")},
    )
    kube.add_pod("team-a", "train-train-2", container="main", log="epoch 1\nepoch 2\n")
    code, running = await api("GET", "runs", run["run_id"])
    # Then GET asks KFP: the run and its steps as KFP has them
    assert code == 200
    assert (running["status"], running["refreshed"], running["refresh_error"]) == (
        "Running",
        True,
        None,
    )
    assert running["steps"]["load data"]["status"] == "Succeeded"
    assert running["steps"]["train"]["status"] == "Running"
    # And a step's log comes from its pod, through the Kubernetes API
    code, log = await api("GET", "runs", run["run_id"], "logs", params={"step": "train"})
    assert code == 200, log
    assert (log["text"], log["source"], log["step"]) == ("epoch 1\nepoch 2\n", "cluster", "train")

    # When KFP fails to answer, GET shows the last known status and says why
    kfp.fail("GET", "/runs/", 503, {"code": 14, "message": "KFP is down"}, times=5)
    code, stale = await api("GET", "runs", run["run_id"])
    assert (code, stale["status"], stale["refreshed"]) == (200, "Running", False)
    assert "503" in stale["refresh_error"] and "KFP is down" in stale["refresh_error"]
    kfp.faults.clear()

    # When the run succeeds in KFP, GET says so
    kfp.set_run(
        kfp_id,
        "SUCCEEDED",
        {"load data": ("SUCCEEDED", "train-load-1"), "train": ("SUCCEEDED", "train-train-2")},
    )
    code, done = await api("GET", "runs", run["run_id"])
    assert done["status"] == "Succeeded" and done["finished"] is not None
    answers += [run, sent, running, log, stale, done, config]

    # When it is deleted, it is deleted in KFP too
    code, _ = await api("DELETE", "runs", run["run_id"])
    assert code == 204
    assert kfp_id not in kfp.runs
    assert (await api("GET", "runs", run["run_id"]))[0] == 404
    # and the KFP token was never answered
    assert TOKEN not in json.dumps(answers)


async def test_cluster_runs_refused_failed_and_cancelled_with_the_cli_words(
    api: Api, root: Path, kfp: FakeKfp, kube: FakeKubernetes
) -> None:
    kube.add_node("gpu-a", {"nvidia.com/gpu": "4"}, {"nvidia.com/gpu.product": A100})
    write(root / "train.ipynb", TRAIN)
    base = {"path": "train.ipynb", "engine": "kfp", "image": IMAGE}

    # What is wrong with the request is refused at once
    no_step = await api("POST", "runs", body={**base, "gpus": {"nope": "1"}})
    elsewhere = await api("POST", "runs", body={**base, "kfp_host": "https://evil.example.com"})
    no_registry = await api("POST", "runs", body={"path": "train.ipynb", "engine": "kfp"})
    workers = await api("POST", "runs", body={**base, "engine": "pytorchjob", "workers": 0})
    assert no_step[0] == 400
    assert "no step 'nope'; its steps are 'load data', 'train'" in no_step[1]["message"]
    assert (elsewhere[0], elsewhere[1]["reason"]) == (400, "kfp_host")
    assert (no_registry[0], no_registry[1]["reason"]) == (400, "no_registry")
    assert "a cluster pulls the image from a registry" in no_registry[1]["message"]
    assert (workers[0], workers[1]["message"]) == (400, "'workers' must be at least 1")

    # A GPU type no node has: the run is kept, Failed with the CLI's words, nothing sent
    code, run = await api("POST", "runs", body={**base, "gpus": {"train": "2:H100"}})
    assert code == 202, run
    failed = await wait_for_run(api, run["run_id"], finished)
    assert failed["status"] == "Failed"
    assert "step 'train' asks for GPU type 'H100', which no node has" in failed["error"]
    assert set(s["status"] for s in failed["steps"].values()) == {"Cancelled"}
    assert kfp.sent() == []

    # A submitted run is cancelled in KFP
    _, run = await api("POST", "runs", body=base)
    await wait_for_run(api, run["run_id"], submitted)
    code, cancelled = await api("POST", "runs", run["run_id"], "cancel")
    assert (code, cancelled["status"]) == (200, "Cancelled"), cancelled
    assert kfp.sent("POST")[-1].path.endswith(":terminate")
    code, again = await api("POST", "runs", run["run_id"], "cancel")
    assert (code, again["reason"]) == (409, "finished")


async def test_a_training_job_submitted_and_cancelled_through_the_api(
    api: Api, root: Path, kube: FakeKubernetes
) -> None:
    kube.add_node("gpu-a", {"nvidia.com/gpu": "8"}, {"nvidia.com/gpu.product": A100})
    write(root / "train.ipynb", TRAIN)

    code, run = await api(
        "POST",
        "runs",
        body={"path": "train.ipynb", "engine": "pytorchjob", "image": IMAGE, "workers": 2},
    )

    assert code == 202, run
    sent = await wait_for_run(api, run["run_id"], submitted)
    assert sent["error"] is None, sent
    external = sent["external"]
    assert (external["namespace"], external["workers"], external["step"]) == ("team-a", 2, "train")
    assert kube.names("pytorchjobs", "team-a") == [external["name"]]
    # the cluster reports the steps before the trained one running
    kube.set_status("jobs", "team-a", external["prepare_job"], {"active": 1})
    code, running = await api("GET", "runs", run["run_id"])
    assert running["status"] == "Running" and running["steps"]["load data"]["status"] == "Running"
    # cancel deletes the job (the claim stays until the run is deleted)
    code, cancelled = await api("POST", "runs", run["run_id"], "cancel")
    assert (code, cancelled["status"]) == (200, "Cancelled")
    assert kube.names("pytorchjobs", "team-a") == [] == kube.names("jobs", "team-a")


async def test_gpus_are_the_clusters_inventory(api: Api, kube: FakeKubernetes) -> None:
    kube.add_node("a1", {"nvidia.com/gpu": "8"}, {"nvidia.com/gpu.product": A100})
    kube.add_node("a2", {"nvidia.com/gpu": "8"}, {"nvidia.com/gpu.product": A100}, True)
    kube.add_node("t1", {"nvidia.com/gpu": "1"}, {"nvidia.com/gpu.product": "Tesla-T4"})
    kube.add_node("cpu", {})
    kube.add_pod("x", "p1", node="a1", gpus={"nvidia.com/gpu": 3})

    code, gpus = await api("GET", "gpus")

    assert code == 200
    assert (gpus["source"], gpus["counts_known"], gpus["message"]) == ("cluster", True, None)
    by_name = {t["name"]: t for t in gpus["types"]}
    a100 = by_name[A100]
    assert (a100["display_name"], a100["configured"], a100["total"], a100["free"]) == (
        "A100 80 GB",
        True,
        16,
        5,
    )
    assert [(n["name"], n["free"], n["schedulable"]) for n in a100["nodes"]] == [
        ("a1", 5, True),
        ("a2", 8, False),
    ]
    assert (by_name["Tesla-T4"]["total"], by_name["Tesla-T4"]["configured"]) == (1, False)
    assert isinstance(gpus["this_machine"]["has_gpu"], bool)

    # where nodes may not be listed: the configured types, counts unknown, never an error
    kube.forbid("list", "nodes")
    code, fallback = await api("GET", "gpus")
    assert (code, fallback["source"], fallback["counts_known"]) == (200, "configuration", False)
    assert "403 Forbidden" in fallback["message"]
    assert [(t["name"], t["total"]) for t in fallback["types"]] == [(A100, None)]
