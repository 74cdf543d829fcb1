"""A training job's steps keep their reports (each cell's outputs) on the run's claim, beside
their values: the steps before under values/TASK, the trained step's from the worker of rank 0
under outputs/, also when the step or its imports fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cellpipe.converter import CompileOptions, load_pipeline
from cellpipe.converter.bundle import make_bundle
from cellpipe.runtime.step import REPORT_FILE
from tests.notebooks import notebook, write
from tests.runtime.test_train_entry import entry


def bundle_env(tmp_path: Path, nb: dict[str, Any]) -> dict[str, str]:
    pipeline = load_pipeline(write(tmp_path / "t.ipynb", nb), CompileOptions(local_only=True))
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(make_bundle(pipeline, str(tmp_path))))
    return {"CELLPIPE_BUNDLE": str(bundle)}


def report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / REPORT_FILE).read_text())
    return data


def test_the_rank_0_worker_keeps_the_trained_steps_report_with_its_outputs(
    tmp_path: Path,
) -> None:
    env = bundle_env(
        tmp_path,
        notebook(
            (["step:load"], "data = [1, 2, 3]\nprint('loaded')"),
            (["step:train"], "model = sum(data)\ndisplay({'model': model})\nmodel"),
        ),
    )
    run_dir = tmp_path / "claim" / "runs" / "r1"
    assert entry("prepare", "--run-dir", str(run_dir), "--steps", "load", env=env).returncode == 0
    assert report(run_dir / "values" / "load")["cells"][0]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "loaded\n"}
    ]
    one = entry("train", "--run-dir", str(run_dir), "--step", "train", env={**env, "RANK": "1"})
    assert one.returncode == 0 and not (run_dir / "outputs").exists()
    zero = entry("train", "--run-dir", str(run_dir), "--step", "train", env={**env, "RANK": "0"})
    assert zero.returncode == 0, zero.stderr
    kept = report(run_dir / "outputs")
    assert kept["status"] == "Succeeded"
    assert [o["output_type"] for o in kept["cells"][0]["outputs"]] == [
        "display_data",
        "execute_result",
    ]


def test_imports_that_fail_on_rank_0_leave_a_report_that_says_where(tmp_path: Path) -> None:
    env = bundle_env(
        tmp_path,
        notebook((["imports"], "import no_such_module_here"), (["step:train"], "model = 1")),
    )
    run_dir = tmp_path / "claim" / "runs" / "r2"
    zero = entry("train", "--run-dir", str(run_dir), "--step", "train", env={**env, "RANK": "0"})
    assert zero.returncode == 1
    kept = report(run_dir / "outputs")
    assert kept["status"] == "Failed" and kept["cells"] == []
    assert kept["prelude"][0]["failed"] is True
    assert kept["prelude"][0]["outputs"][-1]["ename"] == "ModuleNotFoundError"
