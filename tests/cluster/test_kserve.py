"""`cellpipe serve --engine kserve` (issue 19): the InferenceService built from the kserve
SDK's models (in the serve environment: kserve pins pandas < 3, tests/serve_env.py), checked
as KServe's API takes it (tests/fakes/kserve_schema.py), for a format KServe serves itself and
for a custom predictor; then created, waited for until Ready and deleted against the fake
Kubernetes API (tests/fakes/kube.py), as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.services import Services
from tests.fakes.schemas import problems
from tests.notebooks import notebook, write
from tests.serve_env import serve_python

from .conftest import Kube

pytestmark = pytest.mark.timeout(900)  # the first test may make the serve environment

TREE = notebook(
    (
        ["imports"],
        "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier",
    ),
    (
        ["step:train", "model:tree"],
        "X, y = load_iris(return_X_y=True)\ntree = DecisionTreeClassifier().fit(X, y)",
    ),
)
RULE = notebook(
    (
        ["functions"],
        "class Threshold:\n    def predict(self, rows):\n"
        "        return [int(sum(r) > 10) for r in rows]",
    ),
    (["step:rule", "model:rule"], "rule = Threshold()"),
)
STORAGE = "s3://models/team-a/tree"


def run_here(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "run", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run_id: str = json.loads(done.stdout)["run_id"]
    return run_id


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    """`cellpipe serve` in the serve environment, where kserve imports."""
    return subprocess.run(
        [serve_python(), "-m", "cellpipe.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree_run(home: Path, tmp_path: Path) -> str:
    return run_here(write(tmp_path / "tree.ipynb", TREE))


def test_a_built_in_format_names_its_model_format_and_storage(tree_run: str) -> None:
    # When the InferenceService of a scikit-learn model is asked for, with GPUs and replicas
    done = serve(
        tree_run, "--engine", "kserve", "--storage-uri", STORAGE, "--gpus", "1:A100",
        "--min-replicas", "1", "--max-replicas", "3", "--service-account", "model-reader",
        "--namespace", "team-a", "--dry-run", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = json.loads(done.stdout)["inference_service"]
    # Then it is KServe's sklearn runtime reading the artifact, scheduled as steps are
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    assert service["metadata"]["namespace"] == "team-a"
    assert service["metadata"]["name"].startswith("tree-serve-")
    assert service["spec"]["predictor"] == {
        "model": {
            "name": "kserve-container",
            "modelFormat": {"name": "sklearn"},
            "storageUri": STORAGE,
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
        },
        "minReplicas": 1,
        "maxReplicas": 3,
        "serviceAccountName": "model-reader",
        "nodeSelector": {"nvidia.com/gpu.product": "A100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    assert problems(service) == []
    # and the check can fail: a field KServe does not know, or a model without its format
    wrong = json.loads(json.dumps(service))
    wrong["spec"]["predictor"]["model"]["storageUrl"] = STORAGE
    assert problems(wrong) == [
        "InferenceService.spec.predictor.model.storageUrl: unknown field of V1beta1ModelSpec"
    ]
    del service["spec"]["predictor"]["model"]["modelFormat"]
    assert problems(service) == [
        "InferenceService: a predictor model needs modelFormat.name and storageUri"
    ]


def test_a_custom_model_runs_cellpipes_predictor_in_the_image(home: Path, tmp_path: Path) -> None:
    run_id = run_here(write(tmp_path / "rule.ipynb", RULE))
    image = "registry.example.com/team/rule:0123456789abcdef"
    done = serve(
        run_id, "--engine", "kserve", "--storage-uri", "pvc://models/rule", "--image", image,
        "--dry-run", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = json.loads(done.stdout)["inference_service"]
    (container,) = service["spec"]["predictor"]["containers"]
    assert container == {
        "name": "kserve-container",
        "image": image,
        "command": ["python", "-m", "cellpipe.runtime.model_server"],
        "args": ["--model_dir", "/mnt/models", "--model_name", "rule", "--http_port", "8080"],
        "env": [{"name": "STORAGE_URI", "value": "pvc://models/rule"}],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
    }
    assert problems(service) == []


def test_what_cannot_be_served_there_says_what_to_do(tree_run: str) -> None:
    done = serve(tree_run, "--engine", "kserve", "--dry-run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "copy that folder where the cluster reads it and give --storage-uri" in done.stderr


def wait_for(check: Any, seconds: float = 120.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def test_create_wait_ready_and_delete(home: Path, tree_run: str, kube: Kube) -> None:
    fake = kube.fake_only()
    # Given `cellpipe serve --engine kserve` waiting for its InferenceService
    process = subprocess.Popen(
        [serve_python(), "-m", "cellpipe.cli", "serve", tree_run, "--engine", "kserve",
         "--storage-uri", STORAGE, "--kubeconfig", str(kube.kubeconfig), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )  # fmt: skip
    try:
        (name,) = wait_for(lambda: fake.names("inferenceservices", kube.namespace))
        created = fake.get("inferenceservices", kube.namespace, name)
        assert created is not None and problems(created) == []
        assert process.poll() is None  # not Ready yet: still waiting
        # When KServe's controller says it is Ready
        url = f"http://{name}.{kube.namespace}.example.com"
        conditions = [{"type": "Ready", "status": "True"}]
        fake.set_status(
            "inferenceservices", kube.namespace, name, {"url": url, "conditions": conditions}
        )
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Then the command prints its URL and the service is recorded
    assert process.returncode == 0, err
    printed = json.loads(out)
    assert (printed["url"], printed["name"], printed["model"]) == (url, name, "tree")
    services = Services(home)
    (service,) = services.all(tree_run)
    assert (service.engine, service.status, service.url) == ("kserve", "Ready", url)
    # And stopping it deletes the InferenceService
    services.stop(service.service_id, KubeSettings(str(kube.kubeconfig)))
    assert fake.names("inferenceservices", kube.namespace) == []
    assert services.all(tree_run) == []
