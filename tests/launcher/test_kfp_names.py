"""Names a compiled component uses itself (`self`, `Output`, `cellpipe_metrics`) or that KFP does
not take (`_tmp`, `α`) are renamed inside the component, not refused: the step's code sees its
own names, on both local engines, and a run's values load back by the notebook's names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cellpipe.converter import build_pipeline, compile_yaml
from cellpipe.launcher import results
from tests.notebooks import notebook, write

NAMES = notebook(
    (["parameters"], "self = 3\n_rate = 0.5"),
    (
        ["step:a"],
        "Output = [self, _rate]\ncellpipe_metrics = {'n': self}\nα = 2\n_tmp = 'x'\nscore = 1.5",
    ),
    (["step:b"], "total = [Output, cellpipe_metrics['n'], α, _tmp, self]\nself_ = 1"),
    (["step:c"], "check = float(total == [[self, 0.5], self, 2, 'x', self] and self_ == 1)"),
    (["metrics"], "score\ncheck"),
)


def cellpipe(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_the_component_renames_what_it_uses_itself() -> None:
    pipeline = build_pipeline(NAMES, "names.ipynb")
    assert pipeline.errors == []
    assert pipeline.kfp_parameter_names() == {"self": "self_", "_rate": "v_rate"}
    names = pipeline.step("a").kfp_names()
    assert names.parameters == {"self": "self_in", "_rate": "v_rate"}
    assert names.outputs == {
        "Output": "Output_",
        "cellpipe_metrics": "cellpipe_metrics_",
        "α": "u3b1",
        "_tmp": "v_tmp",
        "score": "score",
    }
    b = pipeline.step("b").kfp_names()
    assert b.inputs["Output"] == "Output_in"
    assert b.outputs == {"total": "total", "self_": "self_"}  # a user's self_ stays self_
    spec = next(yaml.safe_load_all(compile_yaml(pipeline)))
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"self_", "v_rate"}
    outputs = spec["components"]["comp-a"]["outputDefinitions"]["artifacts"]
    assert outputs["cellpipe_metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert outputs["cellpipe_metrics_"]["artifactType"]["schemaTitle"] == "system.Artifact"


@pytest.mark.parametrize("engine", ["local", "kfp-local"])
def test_renamed_values_arrive_under_the_notebooks_names(engine: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write(tmp_path / "names.ipynb", NAMES)
    result = cellpipe(
        home, "run", str(path), "--engine", engine, "-p", "self=5", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    run: dict[str, Any] = json.loads(result.stdout)
    assert run["status"] == "Succeeded"
    assert run["metrics"] == {"score": 1.5, "check": 1.0}
    assert results.load(run["run_id"], "total", home=home) == [[5, 0.5], 5, 2, "x", 5]
    assert results.load(run["run_id"], "cellpipe_metrics", home=home) == {"n": 5}
    assert results.load(run["run_id"], "Output", home=home) == [5, 0.5]
