"""A step of a run, as it started: the values and parameters it received and the cell that
failed, for `%cellpipe debug RUN STEP` to load into a kernel (the user then re-runs the cell).

Only runs on this machine keep what a step received where a kernel can read it:

- `local`: the run's plan (runs/ID/plan.json) names the folder of every value each step
  received (a step's own output folder, or the step cache's entry it reused) and the
  parameters; each step's report (steps/TASK/cellpipe-report.json) marks the cell that failed.
- `kfp-local`: kfp.local keeps each task's outputs under the run's pipeline root
  (runs/ID/kfp/RUN/TASK/OUTPUT, the path the producing task's executor output names); a step's
  inputs are the outputs of the steps the bundle says they come from. The failed cell is read
  from the executed notebook (launcher/executed.py), which marks it.

Runs on a cluster (Kubeflow Pipelines, training jobs) keep their values there: a UserError
says so and what to do. Values are unpickled when loaded, so a folder another user could write
is refused, as `cellpipe.load` refuses it.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellpipe.runtime import values
from cellpipe.runtime.step import REPORT_FILE, coerce_parameter

from .errors import NotFound, UserError
from .results import LocalValues
from .step_cache import private_problem
from .store import (
    EXECUTED_FILE,
    ResultError,
    RunNotFound,
    RunRecord,
    StepRecord,
    cellpipe_home,
    find_run,
    open_store,
)
from .tracking import find_step
from .vocabulary import KFP_ENGINE, KFP_LOCAL_ENGINE, LOCAL_ENGINE, TRAINING_ENGINES

EXECUTOR_OUTPUT = "executor_output.json"  # kfp.local's, in each task's folder
PLAN_FILE = "plan.json"  # the local engine's, in the run's folder
PRELUDE_REPORT = "prelude-report.json"  # the imports/functions cells, when they failed
_FRAME = re.compile(r'File ".*, cell (\d+)", line (\d+)')


@dataclass
class StepInputs:
    """What a step of a run received, and where it failed.

    `values` are folders (cellpipe.runtime.values reads each: `load(name)`); `parameters` are
    typed as the step got them. Cells are the notebook's, counted from 0 (people count from 1:
    `cell N` in tracebacks is `failed_cell + 1`)."""

    run_id: str
    engine: str
    step: str  # the display name
    task: str
    status: str  # the step's
    parameters: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Path] = field(default_factory=dict)
    received_from: dict[str, str] = field(default_factory=dict)  # name -> producing step's name
    cells: list[int] = field(default_factory=list)  # the step's cells
    failed_cell: int | None = None
    failed_cell_id: str | None = None
    error: str | None = None  # `AssertionError: ...`, or why the step failed outside a cell
    error_line: int | None = None  # the line of the failed cell the error points at

    def load(self, name: str) -> Any:
        """The received value `name`, read from its folder; UserError when it cannot be."""
        directory = self.values[name]
        try:
            return values.load(directory)
        except Exception as exc:  # a damaged file, a module this kernel lacks: say which
            raise UserError(
                f"{name!r} (from step {self.received_from.get(name)!r} of run {self.run_id}) "
                f"could not be read from {directory} ({type(exc).__name__}: {exc}); a module "
                "missing here is installed into this kernel's environment, a damaged value is "
                "made again by running the pipeline again",
                reason="unreadable_value",
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "step": self.step,
            "task": self.task,
            "status": self.status,
            "parameters": self.parameters,
            "values": {name: str(path) for name, path in self.values.items()},
            "received_from": self.received_from,
            "cells": self.cells,
            "failed_cell": self.failed_cell,
            "failed_cell_id": self.failed_cell_id,
            "error": self.error,
            "error_line": self.error_line,
        }


def debug_inputs(run: str, step: str, *, home: Path | None = None) -> StepInputs:
    """The inputs of step `step` (display or task name) of run `run` (its id, or the start of
    exactly one run's id), from the run store of `home` (default: $CELLPIPE_HOME)."""
    home = home or cellpipe_home()
    try:
        record = find_run(open_store(home), run)
    except RunNotFound as exc:
        raise NotFound(str(exc)) from None
    return step_inputs(record, step, home=home)


def step_inputs(record: RunRecord, step_name: str, *, home: Path | None = None) -> StepInputs:
    """What `step_name` of the run received, where each value lies, and the cell that failed.

    Raises NotFound (no such step; the values are gone) or UserError (an engine that keeps no
    values here; a step that received nothing)."""
    _check_engine(record)
    step = find_step(record, step_name)
    run_dir = Path(record.outputs)
    bundle = _read_json(run_dir / "bundle.json")
    steps = bundle.get("steps") if isinstance(bundle, dict) else None
    if not run_dir.is_dir() or not isinstance(steps, dict) or step.task not in steps:
        why = "is gone" if not run_dir.is_dir() else "holds no bundle.json (it ended early)"
        raise NotFound(
            f"run {record.run_id}'s folder {run_dir} {why}, and what its steps received with it; "
            "run the pipeline again and debug the new run"
        )
    assert isinstance(bundle, dict)
    spec = bundle["steps"][step.task]
    found = StepInputs(
        record.run_id,
        record.engine,
        step.name,
        step.task,
        step.status,
        cells=[int(cell["index"]) for cell in spec["cells"]],
    )
    _find_failure(found, record, step, bundle)
    if not spec["receives"] and not spec["parameters"]:
        raise UserError(
            f"step {step.name!r} of run {record.run_id} received nothing: it reads no value an "
            f"earlier step handed on and no parameter, so there is nothing to load; "
            f"{_failure_words(found)}",
            reason="nothing_received",
        )
    plan = _read_json(run_dir / PLAN_FILE) if record.engine == LOCAL_ENGINE else None
    given = plan.get("parameters") if isinstance(plan, dict) else None
    parameters = given if isinstance(given, dict) else record.parameters
    for name in spec["parameters"]:
        declared = bundle["parameters"].get(name, {})
        value = parameters.get(name, declared.get("default"))
        found.parameters[name] = coerce_parameter(value, declared.get("type", "str"))
    by_task = {s.task: s for s in record.steps.values()}
    home = home or cellpipe_home()
    for name in spec["receives"]:
        producer = by_task.get(spec["received_from"][name])
        if producer is None:
            raise NotFound(f"run {record.run_id}: no step makes {name!r} (a damaged bundle)")
        directory = _value_dir(record, bundle, step, producer, name, plan, home)
        problem = private_problem(directory, home)
        if problem:
            raise UserError(problem, reason="not_private")
        found.values[name] = directory
        found.received_from[name] = producer.name
    return found


def _check_engine(record: RunRecord) -> None:
    if record.engine in (LOCAL_ENGINE, KFP_LOCAL_ENGINE):
        return
    instead = (
        "run the notebook here (`%cellpipe run`, engine local or kfp-local) and debug that "
        "run: `%cellpipe debug RUN STEP`"
    )
    if record.engine == KFP_ENGINE:
        link = record.links.get("kfp_ui")
        where = f"; the step's log and outputs are in the KFP UI: {link}" if link else ""
        message = (
            f"run {record.run_id} ran on Kubeflow Pipelines: what its steps received is in the "
            f"cluster's artifact store, which cellpipe does not load into a kernel; {instead}"
            f"{where}"
        )
    elif record.engine in TRAINING_ENGINES:
        message = (
            f"run {record.run_id} is a training job ({record.engine}): what its step received "
            f"is on the run's claim in the cluster, not on this machine; {instead}"
        )
    else:
        message = (
            f"run {record.run_id} ran on the {record.engine!r} engine, which keeps no values on "
            f"this machine; {instead}"
        )
    raise UserError(message, reason="values_elsewhere")


def _value_dir(
    record: RunRecord,
    bundle: dict[str, Any],
    step: StepRecord,
    producer: StepRecord,
    name: str,
    plan: dict[str, Any] | None,
    home: Path,
) -> Path:
    """The folder of the value `name` that `step` received from `producer`; NotFound, saying
    why, when it is not there."""
    candidates: list[Path] = []
    if isinstance(plan, dict):  # the local engine: exactly the folder the step was given
        given = (plan.get("inputs") or {}).get(step.task, {}).get(name)
        if isinstance(given, str):
            candidates.append(Path(given))
    if record.engine == KFP_LOCAL_ENGINE and producer.outputs:
        output = (bundle["steps"][producer.task].get("output_artifacts") or {}).get(name, name)
        candidates.append(_kfp_local_output(Path(producer.outputs), output))
    with contextlib.suppress(ResultError):
        candidates.append(LocalValues().value_dir(record, producer, name))
    for candidate in candidates:
        if (candidate / values.FORMAT_FILE).is_file():
            return candidate
    if producer.status != "Succeeded":
        said = f" ({producer.error.splitlines()[0]})" if producer.error else ""
        raise NotFound(
            f"step {step.name!r} of run {record.run_id} never received {name!r}: step "
            f"{producer.name!r}, which makes it, is {producer.status}{said}; debug step "
            f"{producer.name!r} instead"
        )
    looked = candidates[0] if candidates else Path(record.outputs) / "steps" / producer.task
    in_cache = looked.resolve().is_relative_to((home / "cache").resolve())
    cache = "step cache" if in_cache else "run's folder"
    raise NotFound(
        f"the value {name!r} that step {step.name!r} of run {record.run_id} received (from "
        f"step {producer.name!r}) is no longer on this machine: {looked} is gone (was the "
        f"{cache} cleared?); run the pipeline again and debug the new run"
    )


def _kfp_local_output(task_root: Path, output: str) -> Path:
    """Where kfp.local kept a task's output: the uri its executor output names, else the path
    kfp.local gives an output (task folder / output name)."""
    data = _read_json(task_root / EXECUTOR_OUTPUT)
    try:
        uri = data["artifacts"][output]["artifacts"][0]["uri"]
    except (KeyError, IndexError, TypeError):
        uri = None
    return Path(uri) if isinstance(uri, str) and uri.startswith("/") else task_root / output


def _find_failure(
    found: StepInputs, record: RunRecord, step: StepRecord, bundle: dict[str, Any]
) -> None:
    """The cell that failed (its index, id, error and line): from the step's report, else
    from the executed notebook; else, for a step that failed outside its cells, its error."""
    run_dir = Path(record.outputs)
    report = _read_json(Path(step.outputs or run_dir / "steps" / step.task) / REPORT_FILE)
    prelude = _read_json(run_dir / PRELUDE_REPORT)
    failed: dict[str, Any] | None = None
    for source in (report, prelude):
        if isinstance(source, dict):
            records = [*source.get("cells", []), *source.get("prelude", [])]
            failed = next((r for r in records if isinstance(r, dict) and r.get("failed")), None)
        if failed is not None:
            break
    if failed is None and step.status == "Failed":
        failed = _failed_in_notebook(run_dir / EXECUTED_FILE, step.task)
    if failed is not None and isinstance(failed.get("index"), int):
        found.failed_cell = failed["index"]
        found.failed_cell_id = failed.get("id") if isinstance(failed.get("id"), str) else None
        error = next(
            (o for o in failed.get("outputs", []) if o.get("output_type") == "error"), None
        )
        if error is not None:
            said = str(error.get("evalue") or "")
            found.error = f"{error.get('ename', 'Error')}: {said}" if said else error.get("ename")
            found.error_line = _line_in_cell(error.get("traceback", []), found.failed_cell)
        return
    if step.status == "Failed" and step.error:
        found.error = step.error


def _failed_in_notebook(path: Path, task: str) -> dict[str, Any] | None:
    """The failed cell of `task` in the executed notebook, as a report's cell record."""
    notebook = _read_json(path)
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    failed = [
        (index, cell)
        for index, cell in enumerate(cells or [])
        if isinstance(cell, dict)
        and ((cell.get("metadata") or {}).get("cellpipe") or {}).get("status") == "failed"
    ]
    for wanted in (task, None):  # the step's own cell, else an imports/functions cell
        for index, cell in failed:
            if cell["metadata"]["cellpipe"].get("task") == wanted:
                return {"index": index, "id": cell.get("id"), "outputs": cell.get("outputs") or []}
    return None


def _line_in_cell(traceback: list[str], index: int) -> int | None:
    """The line the traceback's last frame in the cell points at (`..., cell N", line L`)."""
    line = None
    for text in traceback:
        for match in _FRAME.finditer(text):
            if int(match.group(1)) == index + 1:
                line = int(match.group(2))
    return line


def _failure_words(found: StepInputs) -> str:
    if found.failed_cell is not None:
        at = f" at line {found.error_line}" if found.error_line else ""
        return f"cell {found.failed_cell + 1} failed{at}: {found.error}"
    if found.error:
        return f"it failed: {found.error}"
    if found.status == "Succeeded":
        return "its cells ran without an error"
    return f"it is {found.status}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


__all__ = ["StepInputs", "debug_inputs", "step_inputs"]
