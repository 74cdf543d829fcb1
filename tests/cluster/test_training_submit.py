"""`cellpipe submit --engine pytorchjob|...` and following the job, against the fake
Kubernetes API (or a real cluster: CELLPIPE_TEST_KUBECONFIG) over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cluster.conftest import IMAGE, Cli, Kube
from tests.notebooks import notebook, write

A100 = "NVIDIA-A100-SXM4-80GB"
DONE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}


def train_notebook(path: Path) -> Path:
    return write(
        path / "train.ipynb",
        notebook(
            (["parameters"], "epochs = 3"),
            (["step:load"], "data = list(range(10))"),
            (["step:train", f"gpu:1:{A100}"], "model = sum(data) * epochs\nloss = 0.25"),
            (["metrics"], "loss"),
        ),
    )


def submit(cellpipe: Cli, nb: Path, kube: Kube, *extra: str) -> tuple[int, dict, str]:
    code, out, err = cellpipe(
        "submit",
        nb,
        "--engine",
        "pytorchjob",
        "--image",
        IMAGE,
        "--kubeconfig",
        kube.kubeconfig,
        "--format",
        "json",
        *extra,
    )
    return code, json.loads(out) if out.strip() else {}, err


def gpu_node(cluster: object, name: str = "gpu-1", count: str = "8") -> None:
    cluster.add_node(name, {"nvidia.com/gpu": count}, {"nvidia.com/gpu.product": A100})  # type: ignore[attr-defined]


def test_dry_run_prints_the_objects_and_sends_nothing(
    tmp_path: Path, cellpipe: Cli, kube: Kube
) -> None:
    nb = train_notebook(tmp_path)
    code, out, err = cellpipe(
        "submit",
        nb,
        "--engine",
        "pytorchjob",
        "--workers",
        "2",
        "--dry-run",
        "--kubeconfig",
        kube.kubeconfig,
        "--namespace",
        "team-b",
    )
    assert code == 0, err
    assert out.startswith("# cellpipe submit --dry-run: nothing was sent (pytorchjob)")
    assert "# steps before it, run once by Job train-prepare-" in out
    kinds = [d["kind"] for d in yaml.safe_load_all(out)]
    assert kinds == ["PersistentVolumeClaim", "Job", "PyTorchJob"]
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(out)} == {"team-b"}
    if kube.fake is not None:
        assert kube.fake.sent() == []


def test_a_pytorchjob_run_from_submit_to_its_outputs(
    tmp_path: Path, cellpipe: Cli, kube: Kube
) -> None:
    cluster = kube.fake_only()
    gpu_node(cluster)
    nb = train_notebook(tmp_path)
    # When the train step is submitted on 2 workers
    code, run, err = submit(cellpipe, nb, kube, "--workers", "2", "-p", "epochs=4")
    assert code == 0, err
    external = run["external"]
    assert run["status"] == "Pending" and external["namespace"] == "team-a"
    # Then the claim, the prepare Job and the PyTorchJob exist in the context's namespace
    assert cluster.names("persistentvolumeclaims", "team-a") == [external["pvc"]]
    assert cluster.names("jobs", "team-a") == [external["prepare_job"]]
    (job_name,) = cluster.names("pytorchjobs", "team-a")
    assert job_name == external["name"]
    # While the steps before run
    cluster.set_status("jobs", "team-a", external["prepare_job"], {"active": 1})
    code, out, err = cellpipe("status", run["run_id"], "--format", "json")
    status = json.loads(out)
    assert status["status"] == "Running"
    assert status["steps"]["load"]["status"] == "Running"
    assert status["steps"]["train"]["status"] == "Pending"
    # Then the job trains, and ends with rank 0's metrics in its termination message
    cluster.set_status("jobs", "team-a", external["prepare_job"], DONE)
    labels = {"cellpipe.org/run-id": run["run_id"], "cellpipe.org/step": "train"}
    cluster.add_pod(
        "team-a",
        f"{job_name}-master-0",
        labels=labels,
        container="pytorch",
        phase="Succeeded",
        log="rank 0 training\n",
        termination_message=json.dumps({"status": "Succeeded", "metrics": {"loss": 0.25}}),
    )
    cluster.add_pod(
        "team-a",
        f"{job_name}-worker-0",
        labels=labels,
        container="pytorch",
        phase="Succeeded",
        log="rank 1 training\n",
    )
    cluster.add_pod(
        "team-a",
        "prep-pod",
        labels={**labels, "cellpipe.org/step": "prepare"},
        container="prepare",
        phase="Succeeded",
        log="loaded\n",
    )
    cluster.set_status(
        "pytorchjobs",
        "team-a",
        job_name,
        {
            "conditions": [
                {"type": "Created", "status": "True"},
                {"type": "Running", "status": "False"},
                {"type": "Succeeded", "status": "True", "message": "PyTorchJob succeeded"},
            ]
        },
    )
    code, out, err = cellpipe("status", run["run_id"])
    assert f"run {run['run_id']}: Succeeded (pytorchjob)" in out
    assert "loss = 0.25" in out
    assert f"outputs: PVC {external['pvc']}, runs/{run['run_id']}/outputs" in out
    # and each step's logs come from its pods
    code, out, err = cellpipe("logs", run["run_id"], "--step", "train")
    assert out == (
        f"==> {job_name}-master-0 <==\nrank 0 training\n==> {job_name}-worker-0 <==\n"
        "rank 1 training\n"
    )
    code, out, err = cellpipe("logs", run["run_id"], "--step", "load")
    assert out == "loaded\n"
    # Deleting the run deletes the job, the prepare Job and the claim made for it
    code, out, err = cellpipe("delete", run["run_id"])
    assert code == 0, err
    assert cluster.names("pytorchjobs", "team-a") == [] == cluster.names("jobs", "team-a")
    assert cluster.names("persistentvolumeclaims", "team-a") == []


def test_failures_evictions_and_cancel(tmp_path: Path, cellpipe: Cli, kube: Kube) -> None:
    cluster = kube.fake_only()
    gpu_node(cluster)
    nb = train_notebook(tmp_path)
    # a step before the trained one fails: the run fails, saying which
    code, run, err = submit(cellpipe, nb, kube)
    assert code == 0, err
    prepare = run["external"]["prepare_job"]
    cluster.set_status(
        "jobs",
        "team-a",
        prepare,
        {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        },
    )
    code, out, err = cellpipe("status", run["run_id"], "--format", "json")
    status = json.loads(out)
    assert status["status"] == "Failed"
    assert status["error"] == (
        "a step before the trained one failed: Job has reached the specified backoff limit"
    )
    assert status["steps"]["train"]["status"] == "Cancelled"
    # an evicted worker is said so, while the operator restarts it
    code, run, err = submit(cellpipe, nb, kube)
    external = run["external"]
    cluster.set_status(
        "jobs",
        "team-a",
        external["prepare_job"],
        {"conditions": [{"type": "Complete", "status": "True"}]},
    )
    cluster.add_pod(
        "team-a",
        "w-0",
        labels={"cellpipe.org/run-id": run["run_id"]},
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: memory.",
    )
    cluster.set_status(
        "pytorchjobs",
        "team-a",
        external["name"],
        {"conditions": [{"type": "Restarting", "status": "True"}]},
    )
    code, out, err = cellpipe("status", run["run_id"], "--format", "json")
    status = json.loads(out)
    assert status["status"] == "Running"
    assert status["error"] == "pod w-0 was evicted: The node was low on resource: memory."
    # and when the job fails for it
    cluster.set_status(
        "pytorchjobs",
        "team-a",
        external["name"],
        {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "message": "PyTorchJob has failed: pod evicted",
                }
            ]
        },
    )
    code, out, err = cellpipe("status", run["run_id"], "--format", "json")
    status = json.loads(out)
    assert status["status"] == "Failed"
    assert status["error"].startswith("PyTorchJob has failed: pod evicted; pod w-0 was evicted")
    # cancel deletes the job and the prepare Job; the claim stays until delete
    code, run, err = submit(cellpipe, nb, kube)
    code, out, err = cellpipe("cancel", run["run_id"])
    assert code == 0 and out.strip() == f"run {run['run_id']}: Cancelled"
    assert run["external"]["name"] not in cluster.names("pytorchjobs", "team-a")
    assert run["external"]["pvc"] in cluster.names("persistentvolumeclaims", "team-a")


def test_refusals_keep_the_run_failed_and_clean_up(
    tmp_path: Path, cellpipe: Cli, kube: Kube
) -> None:
    cluster = kube.fake_only()
    gpu_node(cluster)
    nb = train_notebook(tmp_path)
    # a quota refuses the job: the claim and Job made before it are removed again
    cluster.quota_exceeded(
        "pytorchjobs", "compute, requested: count/pytorchjobs.kubeflow.org=1, used: 4, limited: 4"
    )
    code, run, _ = submit(cellpipe, nb, kube)
    assert code == 1
    assert "refused by a resource quota (403)" in run["error"]
    assert "removed what this submit had created: Job" in run["error"]
    assert (
        cluster.names("persistentvolumeclaims", "team-a") == [] == cluster.names("jobs", "team-a")
    )
    _, out, _ = cellpipe("status", run["run_id"], "--compiled")
    assert [d["kind"] for d in yaml.safe_load_all(out)] == [
        "PersistentVolumeClaim",
        "Job",
        "PyTorchJob",
    ]
    cluster.quotas.clear()
    # the training operator is not installed
    cluster.without("pytorchjobs")
    code, run, _ = submit(cellpipe, nb, kube)
    assert code == 1 and "Is the Kubeflow training operator installed" in run["error"]
    cluster.missing.clear()
    # 403: a namespace the user may not use
    cluster.forbid("create", "persistentvolumeclaims")
    code, run, _ = submit(cellpipe, nb, kube, "--namespace", "other")
    assert code == 1 and "403 Forbidden" in run["error"] and 'namespace "other"' in run["error"]
    cluster.forbidden.clear()
    # 409: the name is taken
    cluster.fail(
        "POST",
        "/jobs$",
        409,
        {
            "kind": "Status",
            "code": 409,
            "reason": "AlreadyExists",
            "message": 'jobs "x" already exists',
        },
    )
    code, run, _ = submit(cellpipe, nb, kube)
    assert code == 1 and "already exists (409 Conflict)" in run["error"]
    # 401: the credentials expired
    cluster.token = "renewed"
    code, run, _ = submit(cellpipe, nb, kube)
    assert code == 1 and "401 Unauthorized" in run["error"]
    # unreachable
    cluster.stop()
    code, run, _ = submit(cellpipe, nb, kube)
    assert code == 1 and "cannot reach the cluster" in run["error"]
    code, out, _ = cellpipe("runs", "--format", "json")
    runs = json.loads(out)["runs"]
    assert len(runs) == 6 and {r["status"] for r in runs} == {"Failed"}


def test_gpu_requests_no_node_can_satisfy_are_refused(
    tmp_path: Path, cellpipe: Cli, kube: Kube
) -> None:
    cluster = kube.fake_only()
    gpu_node(cluster, count="4")
    nb = train_notebook(tmp_path)
    code, _, err = submit(cellpipe, nb, kube, "--gpus-per-worker", "8")
    assert code == 2
    assert (
        "each of the 1 workers of step 'train' asks for 8 NVIDIA-A100-SXM4-80GB GPUs in one pod, "
        "and no node has more than 4"
    ) in err
    code, _, err = submit(cellpipe, nb, kube, "--gpu-type", "H100")
    assert code == 2 and "GPU type 'H100', which no node has" in err
    assert [r.method for r in cluster.sent()] == ["GET", "GET", "GET", "GET"]  # nodes, pods
