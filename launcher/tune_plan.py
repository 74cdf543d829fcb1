"""The plan of a tune, for every tuning engine: `plan_tune` checks a request against the
notebook (the parameters searched, their spaces' types, the objective a metric) and says which
steps depend on a tuned parameter (directly, or through what they receive or run after), which
run in every trial, and which do not, which run once. Nothing runs here.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cellpipe.converter.model import Pipeline, Step

from .errors import UserError
from .notebooks import Prepared
from .tune_records import TuneRecord, new_tune_id
from .tune_spaces import ALGORITHMS, Space, grid_size, parse_search
from .vocabulary import LOCAL_ENGINE, TUNING_ENGINES

DEFAULT_TRIALS = 12
DEFAULT_MAX_FAILED = 3  # as Katib's examples' maxFailedTrialCount
DIRECTIONS = ("maximize", "minimize")


@dataclass
class TuneRequest:
    """What to tune: `search` holds NAME=SPACE texts as on the command line."""

    objective: str
    direction: str
    search: list[str]
    trials: int | None = None
    parallel: int | None = None
    algorithm: str = "random"
    seed: int | None = None
    goal: float | None = None
    max_failed: int = DEFAULT_MAX_FAILED
    engine: str = LOCAL_ENGINE
    tune_id: str | None = None  # chosen earlier (a server answering before the tune starts)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class TunePlan:
    """A checked tune: its spaces, how many trials, and the steps trials share or rerun."""

    prepared: Prepared
    request: TuneRequest
    spaces: list[Space]
    trials: int
    parallel: int
    objective_step: Step
    tuned_steps: list[Step]  # depend on a tuned parameter: they run in every trial
    shared_steps: list[Step]  # depend on none: they run once
    # depend on none, but here run in every trial: the notebook keeps them out of the step cache
    uncached_steps: list[Step] = field(default_factory=list)

    @property
    def maximize(self) -> bool:
        return self.request.direction == "maximize"

    def new_record(self) -> TuneRecord:
        request = self.request
        return TuneRecord(
            tune_id=request.tune_id or new_tune_id(),
            notebook=str(Path(self.prepared.path or self.prepared.name).resolve()),
            engine=request.engine,
            metric=request.objective,
            direction=request.direction,
            algorithm=request.algorithm,
            search={s.name: s.text for s in self.spaces},
            settings={
                "trials": self.trials,
                "parallel": self.parallel,
                "seed": request.seed,
                "goal": request.goal,
                "max_failed": request.max_failed,
                "tuned_steps": [s.name for s in self.tuned_steps],
                "shared_steps": [s.name for s in self.shared_steps],
            },
        )


# --- the plan ---------------------------------------------------------------------------


def plan_tune(prepared: Prepared, request: TuneRequest) -> TunePlan:
    """Check `request` against the notebook; a UserError names what to change."""
    prepared.raise_for_errors()
    pipeline, name = prepared.pipeline, prepared.name
    _check_choices(request, name)
    spaces = parse_search(request.search, pipeline.parameters, name)
    if request.objective not in pipeline.metrics:
        metrics = ", ".join(pipeline.metrics) or "none: tag a cell `metrics`"
        raise UserError(
            f"{name}: --objective {request.objective}: the notebook has no metric "
            f"{request.objective!r} (its metrics: {metrics})",
            reason="bad_objective",
        )
    tuned = depending_steps(pipeline, {s.name for s in spaces})
    objective_step = reporting_step(pipeline, request.objective)
    if objective_step.name not in {s.name for s in tuned}:
        searched = ", ".join(s.name for s in spaces)
        raise UserError(
            f"{name}: the objective {request.objective!r} is reported by step "
            f"{objective_step.name!r}, which uses none of {searched} (directly or through its "
            "inputs): every trial would give the same value",
            reason="bad_objective",
        )
    uncached: list[Step] = []
    if request.engine == LOCAL_ENGINE:
        # Here the trials share steps through the step cache: a step the notebook keeps out of
        # it (cache:false, Kale's enable_caching: false) runs again in every trial, and so do
        # the steps after it (its key is new each run, and theirs follow from it).
        rerun = _and_after(pipeline, lambda step: not step.options.cache)
        uncached = [s for s in rerun if s not in tuned]
        tuned = [s for s in pipeline.steps if s in tuned or s in uncached]
    trials = _trial_count(request, spaces)
    return TunePlan(
        prepared,
        request,
        spaces,
        trials,
        request.parallel or os.cpu_count() or 1,
        objective_step,
        tuned,
        [s for s in pipeline.steps if s not in tuned],
        uncached,
    )


def _check_choices(request: TuneRequest, name: str) -> None:
    if request.direction not in DIRECTIONS:
        raise UserError(f"direction must be one of {', '.join(DIRECTIONS)}", reason="bad_search")
    if request.algorithm not in ALGORITHMS:
        raise UserError(
            f"{name}: --algorithm {request.algorithm}: use one of {', '.join(ALGORITHMS)}",
            reason="bad_search",
        )
    if request.engine not in TUNING_ENGINES:
        raise UserError(
            f"{name}: --engine {request.engine}: the tuning engines are "
            f"{', '.join(TUNING_ENGINES)}",
            reason="unknown_engine",
        )
    for option, value in (("--trials", request.trials), ("--parallel", request.parallel)):
        if value is not None and value < 1:
            raise UserError(f"{name}: {option} must be at least 1", reason="bad_search")
    if request.max_failed < 0:
        raise UserError(f"{name}: --max-failed must be 0 or more", reason="bad_search")
    if request.goal is not None and not math.isfinite(request.goal):
        raise UserError(f"{name}: --goal must be a finite number", reason="bad_search")


def _trial_count(request: TuneRequest, spaces: list[Space]) -> int:
    if request.algorithm != "grid":
        return request.trials or DEFAULT_TRIALS
    size = grid_size(spaces)
    return min(request.trials, size) if request.trials else size


def depending_steps(pipeline: Pipeline, tuned: set[str]) -> list[Step]:
    """The steps that read a parameter of `tuned`, or receive from or run after one that
    does (the step cache keys a step by both, so these are the steps a trial runs again)."""
    return _and_after(pipeline, lambda step: bool(tuned & set(step.parameters)))


def _and_after(pipeline: Pipeline, seed: Callable[[Step], bool]) -> list[Step]:
    """The steps `seed` picks, and those that receive from or run after one of them."""
    picked: set[str] = set()
    changed = True
    while changed:
        changed = False
        for step in pipeline.steps:
            if step.name in picked:
                continue
            before = set(step.after) | set(step.received_from.values())
            if seed(step) or before & picked:
                picked.add(step.name)
                changed = True
    return [s for s in pipeline.steps if s.name in picked]


def reporting_step(pipeline: Pipeline, metric: str) -> Step:
    """The step that reports `metric` (the last one, as the run's metrics keep the last)."""
    reporting = [s for s in pipeline.steps if metric in s.metrics]
    return reporting[-1] if reporting else pipeline.steps[-1]
