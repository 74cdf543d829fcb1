"""The benchmark's 60-step notebook: both dialects give the same pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

from cellpipe.converter import build_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from make_notebook import make_notebook


def test_both_dialects_of_the_benchmark_notebook_give_the_same_dag() -> None:
    ours = build_pipeline(make_notebook(60, 300, "cellpipe"), "bench.ipynb")
    kale = build_pipeline(make_notebook(60, 300, "kale"), "bench.ipynb")
    assert ours.errors == [] and kale.errors == []
    assert len(ours.steps) == 60
    shape = [(s.task, s.after, s.receives, s.hands_on) for s in ours.steps]
    assert shape == [(s.task, s.after, s.receives, s.hands_on) for s in kale.steps]
    assert ours.metrics == kale.metrics != []
