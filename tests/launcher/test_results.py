"""Values a run kept, found through the run store; engines plug in their own value source."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher import RunRecord, RunStore, StepRecord
from cellpipe.launcher.results import _SOURCES as SOURCES
from cellpipe.launcher.results import (
    ResultError,
    find_run,
    load,
    locate,
    register_value_source,
)
from cellpipe.runtime import values

BUNDLE_STEPS = {
    "train": {"name": "Train it", "hands_on": ["model", "accuracy"], "metrics": ["accuracy"]},
}


class BucketValues:
    """A cluster engine's source: values 'downloaded' from a bucket folder."""

    def __init__(self, bucket: Path) -> None:
        self.bucket = bucket

    def bundle(self, record: RunRecord) -> dict[str, Any] | None:
        return {"steps": BUNDLE_STEPS}

    def value_dir(self, record: RunRecord, step: StepRecord, name: str) -> Path:
        return self.bucket / record.run_id / step.task / name


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "home" / "runs.sqlite")


@pytest.fixture
def cluster_source(tmp_path: Path) -> Iterator[Path]:
    bucket = tmp_path / "bucket"
    register_value_source("fake-cluster", lambda: BucketValues(bucket))
    yield bucket
    SOURCES.pop("fake-cluster")


def _record(store: RunStore, engine: str, tmp_path: Path, run_id: str) -> RunRecord:
    record = store.create(
        "nb.ipynb", "p", engine, {}, [("Train it", "train")], tmp_path / "runs", run_id
    )
    step = record.steps["Train it"]
    step.status = "Succeeded"
    store.update_step(run_id, step)
    record.status, record.metrics = "Succeeded", {"accuracy": 0.9, "loss": 0.1}
    store.update_run(record)
    return record


def test_a_cluster_engine_plugs_in_its_value_source(
    store: RunStore, tmp_path: Path, cluster_source: Path
) -> None:
    # Given: a finished cluster run whose value the source can fetch
    _record(store, "fake-cluster", tmp_path, "20250101-000000-aaaa0000")
    values.save(
        {"weights": [1, 2]}, cluster_source / "20250101-000000-aaaa0000" / "train" / "model"
    )
    # When / Then
    found = locate(store, "20250101-000000-aaaa", "model")
    assert (found.kind, found.step) == ("value", "Train it")
    assert found.load() == {"weights": [1, 2]}
    assert locate(store, "20250101-000000-aaaa0000", "model", step="train").step == "Train it"
    # A metric no step hands on comes from the run's record
    loss = locate(store, "20250101-000000-aaaa0000", "loss")
    assert (loss.kind, loss.load()) == ("metric", 0.1)


def test_an_engine_without_a_value_source_says_so(store: RunStore, tmp_path: Path) -> None:
    _record(store, "nowhere", tmp_path, "20250101-000000-bbbb0000")
    with pytest.raises(ResultError, match="no value source for 'nowhere'"):
        locate(store, "20250101-000000-bbbb0000", "model")


def test_run_ids_by_prefix(store: RunStore, tmp_path: Path, cluster_source: Path) -> None:
    _record(store, "fake-cluster", tmp_path, "20250101-000000-cccc0000")
    _record(store, "fake-cluster", tmp_path, "20250101-000000-cccc1111")
    with pytest.raises(ResultError, match="the start of several runs' ids"):
        find_run(store, "20250101-000000-cccc")
    assert find_run(store, "20250101-000000-cccc1").run_id == "20250101-000000-cccc1111"
    with pytest.raises(ResultError, match=r"no run 'zzz'.*the latest runs are"):
        find_run(store, "zzz")


def test_a_local_value_whose_cache_was_cleared(tmp_path: Path) -> None:
    # Given: a local run's step output, then the step cache removed
    home = tmp_path / "home"
    store = RunStore(home / "runs.sqlite")
    record = _record(store, "local", home, "20250101-000000-dddd0000")
    run_dir = Path(record.outputs)
    run_dir.mkdir(parents=True)
    (run_dir / "bundle.json").write_text(
        '{"steps": {"train": {"name": "Train it", "hands_on": ["model"], "metrics": []}}}'
    )
    cache = home / "cache" / "train-key"
    values.save(3, cache / "model")
    step = record.steps["Train it"]
    step.outputs = str(cache)
    store.update_step(record.run_id, step)
    assert load(record.run_id, "model", home=home) == 3
    # When
    shutil.rmtree(home / "cache")
    # Then
    with pytest.raises(ResultError, match="no longer on this machine"):
        load(record.run_id, "model", home=home)
