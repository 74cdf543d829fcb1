"""Tunes with the local engine: the known best found, trials equal to `cellpipe run -p`, the
steps that use no tuned parameter run once (read from the run records), seeds honoured,
failed trials recorded and limited, a cancelled tune keeping what finished."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher.config import load_config
from cellpipe.launcher.errors import UserError
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.store import open_store
from cellpipe.launcher.tune_records import TuneRecord
from cellpipe.launcher.tuning import TuneRequest, open_tunes, plan_tune, tune_here
from tests.notebooks import notebook, write

# `score` peaks at x == 3 (x is tuned); `data` uses no tuned parameter, `score` receives it.
PEAK = notebook(
    (["imports"], "import math"),
    (["parameters"], "x = 1\nrate = 0.5\nsize = 4\nname = 'a'"),
    (["step:data"], "data = list(range(size))\nprint('made data')"),
    (
        ["step:score", "after:data"],
        "if x == 5:\n    raise ValueError('x may not be 5')\n"
        "score = -(x - 3) ** 2 + len(data) + rate * (name == 'b')",
    ),
    (["metrics"], "score"),
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CELLPIPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def tune(path: Path, home: Path, **choices: Any) -> TuneRecord:
    config = load_config()
    request = TuneRequest(**{"objective": "score", "direction": "maximize", **choices})
    plan = plan_tune(prepare_file(path, config, local_only=True), request)
    return tune_here(plan, config, home=home)


def test_grid_over_an_integer_finds_the_known_best(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    record = tune(path, home, search=["x=1..4"], algorithm="grid", parallel=2)
    assert record.status == "Succeeded"
    assert [t.parameters["x"] for t in record.trials] == [1, 2, 3, 4]
    assert record.best is not None
    assert record.best.parameters == {"x": 3} and record.best.value == 4.0
    assert record.to_json()["best"]["run_id"] == record.best.run_id


def test_shared_steps_run_once_from_the_run_records(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    record = tune(path, home, search=["x=1..4"], algorithm="grid", parallel=3)
    store = open_store(home)
    runs = [store.get(t.run_id or "") for t in record.trials]
    data_ran = [r for r in runs if r is not None and not r.steps["data"].cached]
    assert len(data_ran) == 1, "the step that uses no tuned parameter ran once"
    assert all(r is not None and not r.steps["score"].cached for r in runs)
    assert sorted(len(t.steps_ran) for t in record.trials) == [1, 1, 1, 2]
    assert all("score" in t.steps_ran for t in record.trials)


def test_a_step_kept_out_of_the_cache_runs_in_every_trial_and_the_plan_says_so(
    tmp_path: Path, home: Path
) -> None:
    # `data` is kept out of the cache; `prep` uses no tuned parameter but receives from it
    uncached = notebook(
        (["parameters"], "x = 1"),
        (["step:other"], "other = 2"),
        (["step:data", "cache:false"], "data = [1, 2, 3]"),
        (["step:prep"], "total = sum(data)"),
        (["step:score"], "score = -(x - 2) ** 2 + total + other"),
        (["metrics"], "score"),
    )
    path = write(tmp_path / "uncached.ipynb", uncached)
    config = load_config()
    request = TuneRequest(
        objective="score", direction="maximize", search=["x=1..3"], algorithm="grid"
    )
    plan = plan_tune(prepare_file(path, config, local_only=True), request)
    assert [s.name for s in plan.uncached_steps] == ["data", "prep"]
    assert [s.name for s in plan.shared_steps] == ["other"]
    assert [s.name for s in plan.tuned_steps] == ["data", "prep", "score"]
    record = tune_here(plan, config, home=home)
    assert record.best is not None and record.best.parameters == {"x": 2}
    ran = [t.steps_ran for t in record.trials]
    assert ran == [["other", "data", "prep", "score"]] + [["data", "prep", "score"]] * 2
    assert record.settings["shared_steps"] == ["other"]


def test_trials_equal_cellpipe_run_with_the_same_values(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    record = tune(path, home, search=["x=2,3", "name=b"], algorithm="grid")
    for trial in record.trials:
        given = [f"-p{k}={v}" for k, v in trial.parameters.items()]
        ran = subprocess.run(
            [sys.executable, "-m", "cellpipe.cli", "run", str(path), *given, "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(ran.stdout)["metrics"]["score"] == trial.value
        assert open_store(home).get(trial.run_id or "").parameters == {  # type: ignore[union-attr]
            "x": trial.parameters["x"],
            "rate": 0.5,
            "size": 4,
            "name": trial.parameters["name"],
        }


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "tpe"])
def test_seeded_algorithms_choose_the_same_values(
    tmp_path: Path, home: Path, algorithm: str
) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    search = ["x=1..4", "rate=0.01..1:log", "name=a,b"]
    first = tune(path, home, search=search, algorithm=algorithm, trials=4, parallel=1, seed=7)
    again = tune(path, home, search=search, algorithm=algorithm, trials=4, parallel=1, seed=7)
    other = tune(path, home, search=search, algorithm=algorithm, trials=4, parallel=1, seed=8)
    chosen = [t.parameters for t in first.trials]
    assert chosen == [t.parameters for t in again.trials]
    assert chosen != [t.parameters for t in other.trials]
    assert all(1 <= p["x"] <= 4 and 0.01 <= p["rate"] <= 1 for p in chosen)
    assert {type(p["x"]) for p in chosen} == {int}


def test_failed_trials_are_kept_and_the_search_goes_on(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    record = tune(path, home, search=["x=4..6"], algorithm="grid", parallel=1)
    statuses = [(t.parameters["x"], t.status) for t in record.trials]
    assert statuses == [(4, "Succeeded"), (5, "Failed"), (6, "Succeeded")]
    assert "x may not be 5" in (record.trials[1].error or "")
    assert record.status == "Succeeded" and record.best is not None
    assert record.best.parameters == {"x": 4}


def test_more_failed_trials_than_allowed_stop_the_tune(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    record = tune(path, home, search=["x=5,5,5,3"], algorithm="grid", parallel=1, max_failed=1)
    assert [t.status for t in record.trials] == ["Failed", "Failed"]
    assert record.status == "Failed" and "--max-failed 1" in (record.error or "")


def test_goal_stops_the_search(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    record = tune(path, home, search=["x=1..4"], algorithm="grid", parallel=1, goal=3.0)
    assert [t.parameters["x"] for t in record.trials] == [1, 2]
    assert record.status == "Succeeded"


def test_cancel_keeps_the_trials_that_finished(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    config = load_config()
    request = TuneRequest("score", "maximize", ["x=1..4"], algorithm="grid", parallel=1)
    plan = plan_tune(prepare_file(path, config, local_only=True), request)

    def cancel_after_two(event: str, record: TuneRecord, trial: Any) -> None:
        if sum(t.status == "Succeeded" for t in record.trials) == 2:
            request.cancel.set()

    record = tune_here(plan, config, home=home, listener=cancel_after_two)
    assert record.status == "Cancelled"
    assert [t.status for t in record.trials] == ["Succeeded", "Succeeded"]
    stored = open_tunes(home).get(record.tune_id)
    assert stored is not None and stored.to_json() == record.to_json()


def test_keyboard_interrupt_stops_after_the_running_trials(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    config = load_config()
    request = TuneRequest("score", "maximize", ["x=1..4"], algorithm="grid", parallel=1)
    plan = plan_tune(prepare_file(path, config, local_only=True), request)
    started = threading.Event()

    def interrupt_on_second(event: str, record: TuneRecord, trial: Any) -> None:
        if trial is not None and trial.trial == 2 and not started.is_set():
            started.set()
            raise KeyboardInterrupt  # as Ctrl-C would arrive in the main thread

    record = tune_here(plan, config, home=home, listener=interrupt_on_second)
    assert record.status == "Cancelled"
    assert [t.status for t in record.trials] == ["Succeeded", "Succeeded"]


@pytest.mark.parametrize(
    ("choices", "said"),
    [
        ({"search": ["y=1..3"]}, "no parameter 'y'"),
        ({"search": ["x=0.5..3"]}, "'x' is an int"),
        ({"search": ["name=1..3"]}, "a range is for numbers"),
        ({"search": ["x=a,b"]}, "'x' is an int"),
        ({"search": ["rate=0.1..0.9"], "algorithm": "grid"}, "needs its step"),
        ({"search": ["x=1..3"], "objective": "loss"}, "no metric 'loss'"),
        ({"search": ["size=1..3"], "algorithm": "grid"}, None),
    ],
)
def test_user_errors_name_what_to_change(
    tmp_path: Path, home: Path, choices: dict[str, Any], said: str | None
) -> None:
    path = write(tmp_path / "peak.ipynb", PEAK)
    if said is None:  # `size` is read by `data`, which `score` receives: a valid search
        assert tune(path, home, trials=1, **choices).status == "Succeeded"
        return
    with pytest.raises(UserError, match=said):
        tune(path, home, **choices)


def test_an_objective_no_tuned_step_reports_is_refused(tmp_path: Path, home: Path) -> None:
    nb = notebook(
        (["parameters"], "x = 1"),
        (["step:fixed"], "loss = 1.0"),
        (["step:tuned", "after:fixed"], "y = x * 2"),
        (["metrics"], "loss\ny"),
    )
    path = write(tmp_path / "fixed.ipynb", nb)
    with pytest.raises(UserError, match="reported by step 'fixed', which uses none of x"):
        tune(path, home, search=["x=1..3"], objective="loss")
