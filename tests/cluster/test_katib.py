"""`cellpipe tune --engine katib`: the Katib Experiment (checked as Katib checks it, the trial
template as a batch Job), and the flow against the fake Kubernetes API over real HTTP: create,
follow the Trials Katib makes, report the best, cancel, delete."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher.config import load_config
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.katib import cancel_katib, delete_katib, refresh_katib, submit_katib
from cellpipe.launcher.katib_objects import KatibOptions, plan_katib
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.tuning import TuneRequest, open_tunes, plan_tune
from tests.cluster.conftest import IMAGE, Cli, Kube
from tests.fakes.schemas import problems
from tests.notebooks import notebook, write

A100 = "NVIDIA-A100-SXM4-80GB"
TUNED = notebook(
    (["parameters"], "lr = 0.1\nepochs = 3\noptimizer = 'adam'\nrows = 100"),
    (["step:load"], "data = list(range(rows))"),
    (["step:features", "after:load"], "features = [d * 2 for d in data]"),
    (
        ["step:train", "after:features", f"gpu:2:{A100}", "memory:8Gi"],
        "model = lr * epochs * (1 if optimizer == 'adam' else 0.9)",
    ),
    (["step:evaluate", "after:train", "gpu:1"], "accuracy = 1 - abs(model - 0.5)"),
    (["metrics"], "accuracy"),
)
DONE = [{"type": "Succeeded", "status": "True", "reason": "TrialSucceeded"}]


def dry_run(cellpipe: Cli, nb: Path, *extra: str) -> list[dict[str, Any]]:
    code, out, err = cellpipe(
        "tune", nb, "--objective", "accuracy", "--maximize", "--engine", "katib",
        "--image", IMAGE, "--dry-run", "--format", "json", *extra,
    )  # fmt: skip
    assert code == 0, err
    objects: list[dict[str, Any]] = json.loads(out)["objects"]
    return objects


@pytest.mark.parametrize(
    ("algorithm", "katib_name"),
    [("grid", "grid"), ("random", "random"), ("bayesian", "bayesianoptimization"), ("tpe", "tpe")],
)
def test_the_experiment_is_what_katib_accepts(
    tmp_path: Path, cellpipe: Cli, algorithm: str, katib_name: str
) -> None:
    nb = write(tmp_path / "tuned.ipynb", TUNED)
    lr = "lr=0.1..0.9:0.2" if algorithm == "grid" else "lr=0.001..1:log"
    objects = dry_run(
        cellpipe, nb, "--algorithm", algorithm, "--seed", "5", "--trials", "8", "--parallel", "3",
        "--search", "epochs=1..4", "--search", lr, "--search", "optimizer=adam,sgd",
        "--max-failed", "2", "--goal", "0.99",
    )  # fmt: skip
    assert [o["kind"] for o in objects] == ["PersistentVolumeClaim", "Job", "Experiment"]
    assert all(problems(o) == [] for o in objects), [problems(o) for o in objects]
    spec = objects[-1]["spec"]
    assert spec["algorithm"]["algorithmName"] == katib_name
    assert (spec["maxTrialCount"], spec["parallelTrialCount"], spec["maxFailedTrialCount"]) == (
        8,
        3,
        2,
    )
    assert spec["objective"] == {
        "type": "maximize",
        "objectiveMetricName": "accuracy",
        "goal": 0.99,
    }
    by_name = {p["name"]: p for p in spec["parameters"]}
    assert by_name["epochs"] == {
        "name": "epochs",
        "parameterType": "int",
        "feasibleSpace": {"min": "1", "max": "4"},
    }
    assert by_name["optimizer"]["feasibleSpace"] == {"list": ["adam", "sgd"]}
    lr = by_name["lr"]["feasibleSpace"]
    assert lr == (
        {"min": "0.1", "max": "0.9", "step": "0.2"}
        if algorithm == "grid"
        else {"min": "0.001", "max": "1.0", "distribution": "logUniform"}
    )


def test_shared_steps_run_once_and_trials_get_their_gpus(tmp_path: Path, cellpipe: Cli) -> None:
    nb = write(tmp_path / "tuned.ipynb", TUNED)
    claim, prepare, experiment = dry_run(cellpipe, nb, "--search", "lr=0.01..0.5")
    # the steps that use no tuned parameter: the prepare Job, once
    assert prepare["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "prepare",
        "--run-dir",
        prepare["spec"]["template"]["spec"]["containers"][0]["args"][2],
        "--steps",
        "load,features",
    ]
    job = experiment["spec"]["trialTemplate"]["trialSpec"]
    pod = job["spec"]["template"]["spec"]
    trial = pod["containers"][0]
    script = trial["command"][2]
    # every trial: the tuned steps, after waiting for the prepare Job, on the same claim
    assert "--steps train,evaluate" in script and "load," not in script
    assert pod["initContainers"][0]["args"][0] == "wait"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # the most any tuned step asks for: 2 GPUs of its type, its memory
    assert trial["resources"]["limits"] == {"nvidia.com/gpu": "2", "memory": "8Gi"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": A100}
    assert "nvidia.com/gpu" not in json.dumps(prepare["spec"]["template"]["spec"]["containers"])
    # the trial's parameters reach the steps as JSON, numbers as numbers
    env = {e["name"]: e["value"] for e in trial["env"]}
    filled = env["CELLPIPE_PARAMETERS"].replace("${trialParameters.lr}", "0.25")
    assert json.loads(filled) == {"lr": 0.25, "epochs": 3, "optimizer": "adam", "rows": 100}


def test_text_values_are_quoted_and_unsafe_ones_refused(tmp_path: Path, cellpipe: Cli) -> None:
    nb = write(tmp_path / "tuned.ipynb", TUNED)
    experiment = dry_run(cellpipe, nb, "--search", "optimizer=adam,sgd")[-1]
    trial = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in trial["containers"][0]["env"]}
    filled = env["CELLPIPE_PARAMETERS"].replace("${trialParameters.optimizer}", "sgd")
    assert json.loads(filled)["optimizer"] == "sgd"
    code, _, err = cellpipe(
        "tune", nb, "--objective", "accuracy", "--maximize", "--engine", "katib", "--image",
        IMAGE, "--dry-run", "--search", 'optimizer=adam,"sgd"',
    )  # fmt: skip
    assert code == 2 and "cannot be a Katib parameter" in err


def plan_for(nb: Path, kube: Kube, **request: Any) -> tuple[Any, Any]:
    config = load_config()
    tune_request = TuneRequest(
        **{"objective": "accuracy", "direction": "maximize", "search": ["lr=0.01..0.5"], **request}
    )
    plan = plan_tune(prepare_file(nb, config), tune_request)
    tune = plan.new_record()
    katib = plan_katib(plan, tune.tune_id, KatibOptions(namespace=kube.namespace, image=IMAGE))
    return tune, katib


def test_the_flow_create_follow_best_delete(tmp_path: Path, home: Path, kube: Kube) -> None:
    fake = kube.fake_only()
    nb = write(tmp_path / "tuned.ipynb", TUNED)
    tune, katib = plan_for(nb, kube, trials=3, parallel=2)
    settings = KubeSettings(kubeconfig=str(kube.kubeconfig))
    tunes = open_tunes()
    # When the tune is sent
    tune = submit_katib(tune, katib, tunes, settings)
    assert tune.status == "Running", tune.error
    name = katib.names.job
    assert fake.names("experiments", kube.namespace) == [name]
    assert fake.names("jobs", kube.namespace) == [katib.names.prepare]
    # And Katib makes trials: one done, one failed, one running
    fake.add_trial(kube.namespace, name, f"{name}-a", {"lr": "0.3"}, observed(0.8))
    failed = {"conditions": [{"type": "Failed", "status": "True", "message": "OOMKilled"}]}
    fake.add_trial(kube.namespace, name, f"{name}-b", {"lr": "0.05"}, failed)
    fake.add_trial(kube.namespace, name, f"{name}-c", {"lr": "0.45"}, {"conditions": []})
    tune = refresh_katib(tune, tunes, settings)
    assert [(t.parameters, t.status, t.value) for t in tune.trials] == [
        ({"lr": 0.3}, "Succeeded", 0.8),
        ({"lr": 0.05}, "Failed", None),
        ({"lr": 0.45}, "Pending", None),
    ]
    assert tune.trials[1].error == "OOMKilled" and tune.status == "Running"
    # When the last trial is better and the Experiment succeeds
    fake.set_status("trials", kube.namespace, f"{name}-c", observed(0.9))
    experiment_done = {
        "conditions": [{"type": "Succeeded", "status": "True", "message": "max trials reached"}],
        "currentOptimalTrial": {"bestTrialName": f"{name}-c"},
    }
    fake.set_status("experiments", kube.namespace, name, experiment_done)
    tune = refresh_katib(tune, tunes, settings)
    # Then the tune has ended with the best trial, as stored
    assert tune.status == "Succeeded" and tune.best is not None
    assert tune.best.parameters == {"lr": 0.45} and tune.best.value == 0.9
    assert tune.best.run_id == tune.external["best_trial"] == f"{name}-c"
    stored = tunes.get(tune.tune_id)
    assert stored is not None and stored.to_json() == tune.to_json()
    # And delete removes what the tune made
    removed = delete_katib(tune, settings)
    assert sorted(removed) == sorted(
        [f"Experiment {name}", f"Job {katib.names.prepare}", f"PersistentVolumeClaim {katib.claim}"]
    )
    assert fake.names("experiments", kube.namespace) == []


def observed(value: float) -> dict[str, Any]:
    return {
        "conditions": DONE,
        "observation": {"metrics": [{"name": "accuracy", "latest": str(value), "max": str(value)}]},
        "startTime": "2026-01-01T00:00:00Z",
        "completionTime": "2026-01-01T00:01:30Z",
    }


def test_cancel_deletes_the_experiment(tmp_path: Path, home: Path, kube: Kube) -> None:
    nb = write(tmp_path / "tuned.ipynb", TUNED)
    tune, katib = plan_for(nb, kube)
    settings = KubeSettings(kubeconfig=str(kube.kubeconfig))
    tunes = open_tunes()
    tune = cancel_katib(submit_katib(tune, katib, tunes, settings), tunes, settings)
    assert tune.status == "Cancelled"
    assert kube.fake_only().names("experiments", kube.namespace) == []


def test_without_katib_the_tune_fails_and_leaves_nothing(
    tmp_path: Path, home: Path, kube: Kube
) -> None:
    fake = kube.fake_only()
    fake.without("experiments")
    nb = write(tmp_path / "tuned.ipynb", TUNED)
    tune, katib = plan_for(nb, kube)
    tune = submit_katib(tune, katib, open_tunes(), KubeSettings(kubeconfig=str(kube.kubeconfig)))
    assert tune.status == "Failed"
    assert "Is Katib installed" in (tune.error or "")
    assert "removed what this tune had created" in (tune.error or "")
    assert fake.names("jobs", kube.namespace) == []
    assert fake.names("persistentvolumeclaims", kube.namespace) == []


def test_cellpipe_tune_follows_the_experiment_to_its_best(
    tmp_path: Path, cellpipe: Cli, kube: Kube
) -> None:
    fake = kube.fake_only()
    nb = write(tmp_path / "tuned.ipynb", TUNED)

    def katib_controller() -> None:  # what Katib would do once the Experiment exists
        deadline = time.monotonic() + 30
        while not fake.names("experiments", kube.namespace) and time.monotonic() < deadline:
            time.sleep(0.05)
        (name,) = fake.names("experiments", kube.namespace)
        fake.add_trial(kube.namespace, name, f"{name}-x", {"lr": "0.2"}, observed(0.7))
        best = {"currentOptimalTrial": {"bestTrialName": f"{name}-x"}}
        done = {"conditions": [{"type": "Succeeded", "status": "True"}], **best}
        fake.set_status("experiments", kube.namespace, name, done)

    controller = threading.Thread(target=katib_controller)
    controller.start()
    code, out, err = cellpipe(
        "tune", nb, "--objective", "accuracy", "--maximize", "--engine", "katib", "--image",
        IMAGE, "--kubeconfig", kube.kubeconfig, "--search", "lr=0.01..0.5", "--format", "json",
    )  # fmt: skip
    controller.join()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "Succeeded"
    assert result["best"]["parameters"] == {"lr": 0.2} and result["best"]["value"] == 0.7
    assert set(result) == {"tune_id", "objective", "best", "trials", "algorithm", "status"}
