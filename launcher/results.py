"""Values and metrics a run kept, brought back by name: `cellpipe.load(run_id, name)`.

The lookup goes through the run store. The run's record names its engine; the engine's value
source says what each step handed on (the run's bundle) and where a step's value lives as a
folder on this machine (the value and its `cellpipe-format.json`, read back by
cellpipe.runtime.values). The local engines keep values here (`runs/ID/steps/TASK/NAME`, the
step's output folder); a cluster engine plugs in a source that downloads from its artifact
store, through the `cellpipe.value_sources` entry-point group (name: the engine) or
`register_value_source`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from cellpipe.runtime import values

from .step_cache import private_problem
from .store import ResultError, RunRecord, RunStore, StepRecord, find_run, open_store

ENTRY_POINT_GROUP = "cellpipe.value_sources"


class ValueSource(Protocol):
    """Where an engine's runs keep what their steps handed on."""

    def bundle(self, record: RunRecord) -> dict[str, Any] | None:
        """The run's bundle (cellpipe.converter.bundle): what each step hands on, in
        pipeline order; None when the engine does not know it."""
        ...

    def value_dir(self, record: RunRecord, step: StepRecord, name: str) -> Path:
        """A folder on this machine holding the value `name` that `step` handed on (a cluster
        source downloads it first); ResultError when there is none."""
        ...


class LocalValues:
    """The `local` and `kfp-local` engines: values in each step's output folder."""

    def bundle(self, record: RunRecord) -> dict[str, Any] | None:
        path = Path(record.outputs) / "bundle.json"
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def value_dir(self, record: RunRecord, step: StepRecord, name: str) -> Path:
        candidates = [Path(record.outputs) / "steps" / step.task / name]
        if step.outputs:
            candidates.insert(0, Path(step.outputs) / name)
            # kfp.local keeps an output under its name in the component (`self` is `self_`)
            spec = ((self.bundle(record) or {}).get("steps") or {}).get(step.task) or {}
            renamed = (spec.get("output_artifacts") or {}).get(name)
            if renamed and renamed != name:
                candidates.insert(0, Path(step.outputs) / renamed)
        for candidate in candidates:
            if (candidate / values.FORMAT_FILE).is_file():
                return candidate
        raise ResultError(
            f"run {record.run_id}: the value {name!r} of step {step.name!r} is no longer on "
            f"this machine (looked in {candidates[0]}; was the step cache cleared?); "
            "run the pipeline again"
        )


_SOURCES: dict[str, Callable[[], ValueSource]] = {"local": LocalValues, "kfp-local": LocalValues}


def register_value_source(engine: str, factory: Callable[[], ValueSource]) -> None:
    """Make runs of `engine` loadable (what an entry point in `cellpipe.value_sources` does)."""
    _SOURCES[engine] = factory


def value_source(engine: str) -> ValueSource:
    """The value source of `engine`: built in, registered, or from an entry point."""
    if engine in _SOURCES:
        return _SOURCES[engine]()
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == engine:
            factory = entry.load()
            source: ValueSource = factory()
            return source
    raise ResultError(
        f"runs of the {engine!r} engine keep their values where cellpipe cannot read them from "
        f"here (no value source for {engine!r}: entry-point group {ENTRY_POINT_GROUP}); "
        "their metrics are in `cellpipe status`"
    )


@dataclass(frozen=True)
class Located:
    """Where a name of a run was found: a handed-on value (its folder) or a metric."""

    run_id: str
    name: str
    kind: Literal["value", "metric"]
    step: str | None  # the step's display name (None: a metric of the run)
    directory: Path | None = None
    metric: float | None = None

    def load(self) -> Any:
        if self.kind == "metric":
            return self.metric
        assert self.directory is not None
        try:
            return values.load(self.directory)
        except Exception as exc:  # a damaged file: say which, never a traceback
            raise ResultError(
                f"{self.describe()} could not be read from {self.directory} "
                f"({type(exc).__name__}: {exc}); run the pipeline again to make it anew"
            ) from None

    def describe(self) -> str:
        if self.kind == "metric":
            return f"metric {self.name!r} of run {self.run_id}"
        return f"{self.name!r} from run {self.run_id}, step {self.step!r}"


def _find_step(record: RunRecord, name: str) -> StepRecord:
    for step in record.steps.values():
        if name in (step.name, step.task):
            return step
    known = ", ".join(repr(s) for s in record.steps)
    raise ResultError(f"run {record.run_id} has no step {name!r}; its steps are {known}")


def locate(store: RunStore, run_id: str, name: str, step: str | None = None) -> Located:
    """Find `name` in a run: the value the last step that hands it on kept (or `step`'s), or
    else a metric of the run."""
    record = find_run(store, run_id)
    source = value_source(record.engine)
    chosen = _find_step(record, step) if step is not None else None
    bundle = source.bundle(record)
    by_task = {s.task: s for s in record.steps.values()}
    if bundle is not None:
        producers = [
            by_task[task]
            for task, spec in bundle["steps"].items()
            if name in spec["hands_on"] and task in by_task
        ]
    else:  # the source cannot tell: try every step, the last one first
        producers = list(record.steps.values())
    if chosen is not None:
        producers = [s for s in producers if s.task == chosen.task]
    if not producers:
        if name in record.metrics and (chosen is None or _measures(bundle, chosen, name)):
            return Located(record.run_id, name, "metric", None, metric=record.metrics[name])
        raise ResultError(_nothing_kept(record, name, chosen, bundle))
    errors = []
    for producer in reversed(producers):
        if producer.status != "Succeeded":
            errors.append(
                f"step {producer.name!r} of run {record.run_id} is {producer.status}, so it "
                f"handed nothing on"
                + (f" ({producer.error.splitlines()[0]})" if producer.error else "")
            )
            continue
        try:
            directory = source.value_dir(record, producer, name)
        except ResultError as exc:
            errors.append(str(exc))
            continue
        # values are unpickled: never from a folder another user could have written
        if isinstance(source, LocalValues):
            problem = private_problem(directory, store.path.parent)
            if problem:
                raise ResultError(problem)
        return Located(record.run_id, name, "value", producer.name, directory=directory)
    if name in record.metrics and chosen is None:
        return Located(record.run_id, name, "metric", None, metric=record.metrics[name])
    raise ResultError(errors[0])


def _measures(bundle: dict[str, Any] | None, step: StepRecord, name: str) -> bool:
    """Whether `step` reports the metric `name` (unknown without a bundle: assume so)."""
    if bundle is None:
        return True
    spec = bundle["steps"].get(step.task) or {}
    return name in spec.get("metrics", [])


def _nothing_kept(
    record: RunRecord, name: str, chosen: StepRecord | None, bundle: dict[str, Any] | None
) -> str:
    kept: list[str] = []
    for spec in (bundle or {}).get("steps", {}).values():
        if chosen is None or spec["name"] == chosen.name:
            kept.extend(f"{n} ({spec['name']})" for n in spec["hands_on"])
    where = f"step {chosen.name!r} of run {record.run_id}" if chosen else f"run {record.run_id}"
    what = f"; what it kept: {', '.join(kept)}" if kept else "; it kept no values"
    metrics = f"; its metrics: {', '.join(record.metrics)}" if record.metrics else ""
    return (
        f"{where} did not hand on {name!r} (a step keeps only the names a later step reads, "
        f"and metrics){what}{metrics}"
    )


def load(run_id: str, name: str, step: str | None = None, *, home: Path | None = None) -> Any:
    """The value `name` as a finished run kept it, or its metric `name`.

    Args:
        run_id: the run's id (or the start of exactly one run's id).
        name: a variable a step handed on, or a metric.
        step: the step (display or task name) whose value to take; default: the last step
            that hands `name` on.
        home: cellpipe's home (default $CELLPIPE_HOME, as the engines use).
    """
    store = open_store(home)
    return locate(store, run_id, name, step).load()
