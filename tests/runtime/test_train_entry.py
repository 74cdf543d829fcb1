"""What a training job's pods run (cellpipe.runtime.train_entry), run here as the pods would:
the steps before once, a wait, the trained step on two ranks, rank 0 keeping the outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cellpipe.converter import CompileOptions, load_pipeline
from cellpipe.converter.bundle import make_bundle
from cellpipe.runtime import values
from cellpipe.runtime.train_entry import rank
from tests.notebooks import notebook, write


def entry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.runtime.train_entry", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_prepare_wait_and_train_on_two_ranks(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "t.ipynb",
        notebook(
            (["parameters"], "scale = 2"),
            (["step:load"], "data = [1, 2, 3]"),
            (["step:features"], "features = [x * scale for x in data]"),
            (
                ["step:train"],
                "import os\n"
                "model = {'w': sum(features), 'rank': os.environ.get('RANK')}\n"
                "loss = 0.5",
            ),
            (["metrics"], "loss"),
        ),
    )
    pipeline = load_pipeline(nb, CompileOptions(local_only=True))
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(make_bundle(pipeline, str(tmp_path))))
    run_dir = tmp_path / "data" / "runs" / "r1"
    env = {"CELLPIPE_BUNDLE": str(bundle), "CELLPIPE_PARAMETERS": json.dumps({"scale": 10})}
    # a worker waiting before prepare has run gives up after its timeout
    waited = entry("wait", "--run-dir", str(run_dir), "--timeout", "0", env=env)
    assert waited.returncode == 1 and "did not end in 0 s" in waited.stdout
    prepared = entry("prepare", "--run-dir", str(run_dir), "--steps", "load,features", env=env)
    assert prepared.returncode == 0, prepared.stderr
    assert values.load(run_dir / "values" / "features" / "features") == [10, 20, 30]
    assert entry("wait", "--run-dir", str(run_dir), env=env).returncode == 0
    # rank 1 trains and keeps nothing; rank 0 keeps the model and the metrics
    one = entry("train", "--run-dir", str(run_dir), "--step", "train", env={**env, "RANK": "1"})
    assert one.returncode == 0, one.stderr
    assert not (run_dir / "outputs").exists()
    zero = entry("train", "--run-dir", str(run_dir), "--step", "train", env={**env, "RANK": "0"})
    assert zero.returncode == 0, zero.stderr
    assert values.load(run_dir / "outputs" / "model") == {"w": 60, "rank": "0"}
    assert json.loads((run_dir / "outputs" / "metrics.json").read_text()) == {"loss": 0.5}
    result = json.loads(zero.stdout.split("cellpipe-result: ")[1])
    assert result["status"] == "Succeeded" and result["metrics"] == {"loss": 0.5}


def test_a_failing_step_before_fails_every_waiting_worker(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "t.ipynb",
        notebook((["step:load"], "data = 1 / 0"), (["step:train"], "model = data")),
    )
    pipeline = load_pipeline(nb, CompileOptions(local_only=True))
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(make_bundle(pipeline, str(tmp_path))))
    env = {"CELLPIPE_BUNDLE": str(bundle)}
    prepared = entry("prepare", "--run-dir", str(tmp_path / "r"), "--steps", "load", env=env)
    assert prepared.returncode == 1
    assert 'File "t.ipynb, cell 1", line 1' in prepared.stderr
    waited = entry("wait", "--run-dir", str(tmp_path / "r"), env=env)
    assert waited.returncode == 1 and "ZeroDivisionError" in waited.stdout


def test_ranks_as_each_operator_says_them(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in (
        "RANK",
        "OMPI_COMM_WORLD_RANK",
        "PMI_RANK",
        "PMIX_RANK",
        "PET_NODE_RANK",
        "TF_CONFIG",
        "JOB_COMPLETION_INDEX",
    ):
        monkeypatch.delenv(name, raising=False)
    assert rank() == 0
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert rank() == 3
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK")
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}),
    )
    assert rank() == 1
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}}
        ),
    )
    assert rank() == 1
