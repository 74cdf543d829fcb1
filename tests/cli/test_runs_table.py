"""`cellpipe runs` fits 80 columns (issue 20): the id, engine, status and time stay whole, the
pipeline and notebook give way; a wider terminal shows them whole. Runs recorded in a real
run store, listed by a real `cellpipe` process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellpipe.launcher.store import open_store

LONG = "a-pipeline-whose-name-goes-on-and-on-well-past-any-column"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    store = open_store(tmp_path)
    for status, engine, pipeline in (
        ("Succeeded", "local", "titanic-ml"),
        ("Failed", "kfp-local", LONG),
        ("Cancelled", "local", "short"),
    ):
        record = store.create(
            str(tmp_path / f"{pipeline.replace('short', 'Other')}.ipynb"),
            pipeline,
            engine,
            {},
            [("a", "a")],
            tmp_path / "runs",
        )
        record.status = status
        store.update_run(record)
    return tmp_path


def listed(home: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "runs"],
        capture_output=True,
        text=True,
        env={**base, "CELLPIPE_HOME": str(home), **env},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_runs_fit_80_columns_with_ids_statuses_and_times_whole(home: Path) -> None:
    lines = listed(home).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["RUN", "ENGINE", "STATUS", "CREATED", "PIPELINE", "(NOTEBOOK)"]
    ids = [run.run_id for run in open_store(home).list(None)]
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == ids
    assert [row[1:3] for row in rows] == [
        ["local", "Cancelled"],
        ["kfp-local", "Failed"],
        ["local", "Succeeded"],
    ]
    assert rows[1][5].startswith("a-pipeline-whose") and rows[1][5].endswith("…")
    assert rows[0][5:] == ["short", "(Other.ipynb)"]
    assert rows[2][5:] == ["titanic-ml"]  # its notebook, titanic-ml.ipynb, goes without saying


def test_a_wider_terminal_shows_the_whole_pipeline(home: Path) -> None:
    text = listed(home, COLUMNS="200")
    assert f"{LONG}\n" in text


def test_statuses_in_colour_when_forced(home: Path) -> None:
    text = listed(home, FORCE_COLOR="1")
    assert "\x1b[1;31mFailed" in text and "\x1b[33mCancelled" in text


def test_tunes_and_services_fit_80_columns_too(home: Path) -> None:
    from cellpipe.launcher.service_records import ServiceRecord, ServiceStore, new_service_id
    from cellpipe.launcher.tune_records import TrialRecord, TuneRecord, TuneStore, new_tune_id

    store = open_store(home)
    run_id = store.list(None)[0].run_id
    tune = TuneRecord(
        new_tune_id(), str(home / f"{LONG}.ipynb"), "local", "accuracy", "maximize", "grid",
        {"epochs": "1..3"}, status="Succeeded",
        trials=[TrialRecord(1, {"epochs": 1}, "Succeeded", run_id, 0.875)],
    )  # fmt: skip
    TuneStore(store).save(tune)
    TuneStore(store).save_trial(tune.tune_id, tune.trials[0])
    service = ServiceRecord(
        new_service_id(), run_id, f"model-{LONG}", "kserve", "m", "http://m.example.com",
        status="Ready",
    )  # fmt: skip
    ServiceStore(store).save(service)

    lines = listed(home).splitlines()
    assert max(len(line) for line in lines) <= 80
    tune_row = next(line for line in lines if line.startswith(tune.tune_id)).split()
    assert tune_row[1:5] == ["local", "Succeeded", "1", "accuracy"]
    assert tune_row[5] == "0.875" and tune_row[6].endswith("…")
    service_row = next(line for line in lines if line.startswith(service.service_id)).split()
    assert service_row[1:4] == ["kserve", "Ready", "http://m.example.com"]
    assert service_row[4].startswith("model-a") and service_row[4].endswith("…")
