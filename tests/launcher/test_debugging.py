"""What a step of a run received, found again for `%cellpipe debug` (launcher/debugging.py):
its values' folders, its parameters as it got them, the cell that failed; and each reason
there is nothing to load, said."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cellpipe.converter import CompileOptions, load_pipeline
from cellpipe.launcher import LocalEngine, RunRecord, RunRequest, RunStore
from cellpipe.launcher.debugging import debug_inputs, step_inputs
from cellpipe.launcher.errors import NotFound, UserError
from tests.notebooks import notebook, write

# check rows fails in its second cell (cell 5, line 2); summary runs after it and reads a
# value check rows never handed on
CHECK = "over = [r for r in rows if r > limit]\nassert not over, f'{len(over)} rows over {limit}'"
FAILING = notebook(
    (["imports"], "import statistics"),
    (["parameters"], "limit = 2\nsizes = [1, 2]\nunused = 'x'"),
    (["step:make data"], "rows = [3, 1, 2]"),
    (["step:check rows"], "print(len(rows), limit)"),
    ([], CHECK),
    ([], "checked = statistics.mean(rows)"),
    (["step:summary"], "total = sum(rows) + sum(sizes) + checked"),
)


def run_here(home: Path, path: Path, **parameters: object) -> RunRecord:
    pipeline = load_pipeline(path, CompileOptions(local_only=True))
    engine = LocalEngine(RunStore(home / "runs.sqlite"), home)
    return engine.run(RunRequest(pipeline, path, dict(parameters)))


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunRecord]:
    folder = tmp_path_factory.mktemp("debugging")
    home = folder / "home"
    record = run_here(home, write(folder / "failing.ipynb", FAILING), sizes=[4, 5])
    assert record.status == "Failed"
    return home, record


def test_a_failed_step_gives_its_values_parameters_and_failing_cell(
    failed_run: tuple[Path, RunRecord],
) -> None:
    home, record = failed_run
    # When: by a unique start of the run's id and the step's display name
    inputs = debug_inputs(record.run_id[:-3], "check rows", home=home)
    # Then
    assert (inputs.step, inputs.task, inputs.status) == ("check rows", "check-rows", "Failed")
    assert inputs.parameters == {"limit": 2}  # only what the step takes
    assert inputs.received_from == {"rows": "make data"}
    assert inputs.values["rows"] == Path(record.outputs) / "steps" / "make-data" / "rows"
    assert inputs.load("rows") == [3, 1, 2]
    assert inputs.cells == [3, 4, 5]
    assert (inputs.failed_cell, inputs.failed_cell_id) == (4, "cell-4")
    assert inputs.error == "AssertionError: 1 rows over 2"
    assert inputs.error_line == 2
    assert json.loads(json.dumps(inputs.to_json()))["values"]["rows"].endswith("/rows")


def test_a_step_that_did_not_fail_says_no_cell_failed(failed_run: tuple[Path, RunRecord]) -> None:
    home, record = failed_run
    # summary never ran: check rows, before it, failed
    with pytest.raises(NotFound) as never:
        debug_inputs(record.run_id, "summary", home=home)
    assert "never received 'checked': step 'check rows', which makes it, is Failed" in str(
        never.value
    )
    assert "debug step 'check rows' instead" in str(never.value)
    with pytest.raises(UserError) as nothing:
        debug_inputs(record.run_id, "make-data", home=home)  # by its task name
    assert nothing.value.reason == "nothing_received"
    assert "received nothing" in str(nothing.value)
    assert "its cells ran without an error" in str(nothing.value)


def test_parameters_are_typed_as_the_step_got_them(tmp_path: Path) -> None:
    # the list parameter as the step got it: the run's value, not the default
    path = write(
        tmp_path / "params.ipynb",
        notebook(
            (["parameters"], "rate = 0.5\nsizes = [1]"),
            (["step:use"], "x = rate * len(sizes)\nraise ValueError(x)"),
        ),
    )
    run = run_here(tmp_path / "home", path, rate=1, sizes=[1, 2, 3])
    inputs = step_inputs(run, "use", home=tmp_path / "home")
    assert inputs.parameters == {"rate": 1.0, "sizes": [1, 2, 3]}
    assert isinstance(inputs.parameters["rate"], float)
    assert (inputs.failed_cell, inputs.error, inputs.error_line) == (1, "ValueError: 3.0", 2)


def test_unknown_runs_and_steps_are_not_found(failed_run: tuple[Path, RunRecord]) -> None:
    home, record = failed_run
    with pytest.raises(NotFound, match="has no step 'nope'; its steps are 'make data'"):
        debug_inputs(record.run_id, "nope", home=home)
    with pytest.raises(NotFound, match="no run '1999'"):
        debug_inputs("1999", "check rows", home=home)


def test_a_deleted_run_and_a_removed_folder_are_not_found(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write(tmp_path / "failing.ipynb", FAILING)
    deleted = run_here(home, path)
    RunStore(home / "runs.sqlite").delete(deleted.run_id)
    with pytest.raises(NotFound, match=f"no run '{deleted.run_id}'"):
        debug_inputs(deleted.run_id, "check rows", home=home)
    removed = run_here(home, path)
    shutil.rmtree(removed.outputs)
    with pytest.raises(NotFound, match=r"folder .* is gone"):
        debug_inputs(removed.run_id, "check rows", home=home)


def test_a_value_from_a_cleared_step_cache_is_gone(tmp_path: Path) -> None:
    # Given: a second run that took make data from the step cache
    home = tmp_path / "home"
    path = write(tmp_path / "failing.ipynb", FAILING)
    run_here(home, path)
    again = run_here(home, path)
    assert again.steps["make data"].cached
    assert (
        debug_inputs(again.run_id, "check rows", home=home)
        .values["rows"]
        .is_relative_to(home / "cache")
    )
    # When: the cache is cleared (always allowed)
    shutil.rmtree(home / "cache")
    # Then
    with pytest.raises(NotFound) as gone:
        debug_inputs(again.run_id, "check rows", home=home)
    assert "'rows' that step 'check rows'" in str(gone.value)
    assert "is no longer on this machine" in str(gone.value)
    assert "was the step cache cleared?" in str(gone.value)


@pytest.mark.parametrize(
    ("engine", "said"),
    [
        ("kfp", "ran on Kubeflow Pipelines: what its steps received is in the cluster's"),
        ("pytorchjob", "is a training job (pytorchjob): what its step received is on the run's"),
        ("someone-elses", "ran on the 'someone-elses' engine, which keeps no values"),
    ],
)
def test_runs_elsewhere_keep_no_values_here(
    engine: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    record = store.create(
        "/nb.ipynb",
        "p",
        engine,
        {},
        [("train", "train")],
        tmp_path / "runs",
        links={"kfp_ui": "https://kfp.example/#/runs/details/1"},
    )
    with pytest.raises(UserError) as refused:
        debug_inputs(record.run_id, "train", home=tmp_path)
    assert refused.value.reason == "values_elsewhere"
    assert said in str(refused.value)
    assert "run the notebook here (`%cellpipe run`, engine local or kfp-local)" in str(
        refused.value
    )
    if engine == "kfp":
        assert "https://kfp.example/#/runs/details/1" in str(refused.value)


def test_a_kfp_local_run_maps_inputs_to_the_producing_tasks_outputs(tmp_path: Path) -> None:
    # Given: the failing notebook run by kfp.local (the CLI, as users run it)
    home = tmp_path / "home"
    path = write(tmp_path / "failing.ipynb", FAILING)
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "run", str(path), "--engine", "kfp-local"],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        timeout=100,
    )
    assert result.returncode == 1, result.stderr
    # When
    record = RunStore(home / "runs.sqlite").list()[0]
    inputs = debug_inputs(record.run_id, "check rows", home=home)
    # Then: the value is make data's output where kfp.local kept it, under the run's folder
    kfp_root = Path(record.outputs) / "kfp"
    assert inputs.values["rows"].is_relative_to(kfp_root)
    assert inputs.values["rows"].parent.name == "make-data"
    assert inputs.load("rows") == [3, 1, 2]
    assert inputs.parameters == {"limit": 2}
    assert (inputs.failed_cell, inputs.error, inputs.error_line) == (
        4,
        "AssertionError: 1 rows over 2",
        2,
    )
    # And without kfp.local's outputs (removed by hand), it says the value is gone
    shutil.rmtree(kfp_root)
    with pytest.raises(NotFound, match=r"'rows' .* is no longer on this machine"):
        debug_inputs(record.run_id, "check rows", home=home)
