"""Run one step's code the way the notebook ran it, outside any kernel.

The namespace is a real `__main__` module, so functions and classes the notebook defines
pickle and unpickle as they would in the kernel. The cells run through IPython's own shell
(runtime/shell.py): display(), a cell's last value, magics and figures behave as in Jupyter,
and every cell's outputs are kept in the step's report (REPORT_FILE) for the executed notebook.
Each cell is compiled under its own name (`iris.ipynb, cell 7`), so a traceback points at the
notebook, not at generated code.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import models, values
from .cells import CellError, CellRecord, error_output

RUNTIME_DIR = str(Path(__file__).resolve().parent)
REPORT_FILE = "cellpipe-report.json"
_PRINTED_KEPT = 100_000  # characters of what the step printed kept in its report


class StepFailed(Exception):
    """User code failed, or a value could not be handed on; `details` is for people.
    `cells`: the cells that ran, the failing one last with its error output."""

    def __init__(self, message: str, details: str = "", cells: list[CellRecord] | None = None):
        super().__init__(message)
        self.details = details or message
        self.cells = cells or []


@dataclass
class StepResult:
    outputs: dict[str, str] = field(default_factory=dict)  # name -> format
    metrics: dict[str, float] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> SavedModel json
    printed: str = ""
    seconds: float = 0.0
    cells: list[CellRecord] = field(default_factory=list)


def fresh_main() -> dict[str, Any]:
    """A new, empty `__main__` module for a step's code, installed as the real one."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    return module.__dict__


class Cells:
    """The cells this process runs, through one IPython shell, and what they showed.

    Made once per process; a forked step inherits it with the prelude's records."""

    def __init__(self, bundle: dict[str, Any], namespace: dict[str, Any]) -> None:
        from .shell import CellRunner  # IPython: imported by a step that runs cells, only

        self.runner = CellRunner(namespace, bundle.get("notebook", "notebook"))
        self.prelude: list[CellRecord] = []

    def run(self, cells: list[dict[str, Any]], records: list[CellRecord], step: str | None) -> None:
        """Runs `cells`; a cell that raises gets its error output and ends the run
        (CellError)."""
        try:
            self.runner.run(cells, records, step=step)
        except CellError as exc:
            records[-1].outputs.append(error_output(exc.error, user_traceback(exc.error)))
            raise


_CELLS: dict[int, Cells] = {}  # this process's, by the id of the namespace it runs in


def cells_for(bundle: dict[str, Any], namespace: dict[str, Any]) -> Cells:
    if id(namespace) not in _CELLS:
        _CELLS.clear()  # one namespace per process at a time: a fresh __main__ is a new run
        _CELLS[id(namespace)] = Cells(bundle, namespace)
    return _CELLS[id(namespace)]


def run_prelude(bundle: dict[str, Any], namespace: dict[str, Any]) -> list[CellRecord]:
    """The imports and functions cells, which every step starts with; their records."""
    cells = cells_for(bundle, namespace)
    try:
        cells.run(bundle["prelude"], cells.prelude, step=None)
    except CellError as exc:
        raise StepFailed(
            "the imports/functions cells failed", user_traceback(exc.error), cells.prelude
        ) from None
    return cells.prelude


def coerce_parameter(value: Any, kind: str) -> Any:
    """A parameter value as the type its default has (JSON gives 3.0 for 3)."""
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in ("list", "dict") and isinstance(value, str):
        return json.loads(value)
    return value


def run_step(
    bundle: dict[str, Any],
    task: str,
    namespace: dict[str, Any],
    parameters: dict[str, Any],
    load_input: Callable[[str], Any],
    output_dir: Path,
    release: bool = False,
) -> StepResult:
    """Bind parameters and inputs, run the step's cells, hand on its outputs.

    `namespace` already holds the prelude's names. `load_input(name)` returns a received
    value. Outputs go to `output_dir/NAME/`. Raises StepFailed with a cell-mapped traceback.
    `release`: the process ends after this step and reads none of its values again, so large
    outputs' memory may go back to the OS as they are written (values.save_all).
    """
    step = bundle["steps"][task]
    started = time.perf_counter()
    cells = cells_for(bundle, namespace)
    records: list[CellRecord] = []
    failure: StepFailed | None = None
    try:
        types_ = {name: spec["type"] for name, spec in bundle["parameters"].items()}
        for name in step["parameters"]:
            namespace[name] = coerce_parameter(parameters[name], types_[name])
        for name in step["receives"]:
            namespace[name] = load_input(name)
        try:
            cells.run(step["cells"], records, step=task)
        except CellError as exc:
            raise StepFailed(
                f"step {step['name']!r} failed: {type(exc.error).__name__}: {exc.error}",
                user_traceback(exc.error),
            ) from None
        result = StepResult(printed=printed(records), cells=records)
        # Metrics and models first: the outputs' memory may be released as they are saved
        result.metrics = collect_metrics(step, namespace)
        result.models = keep_models(step, namespace, output_dir)
        result.outputs = hand_on(step, namespace, output_dir, release)
    except StepFailed as exc:
        exc.cells = records
        failure = exc
        raise
    finally:
        seconds = time.perf_counter() - started
        write_report(output_dir / REPORT_FILE, cells.prelude, records, seconds, failure)
    result.seconds = seconds
    return result


def printed(records: list[CellRecord]) -> str:
    """What the cells wrote to stdout and stderr, in order."""
    return "".join(
        output["text"]
        for record in records
        for output in record.outputs
        if output["output_type"] == "stream"
    )


def write_report(
    path: Path,
    prelude: list[CellRecord],
    cells: list[CellRecord],
    seconds: float,
    failure: StepFailed | None,
) -> None:
    """The step's report (REPORT_FILE in its folder): what it printed (for its log view), and
    each cell's outputs. A value no JSON holds (in a display's metadata) is kept as its repr."""
    report = {
        "printed": printed(cells)[-_PRINTED_KEPT:],
        "seconds": seconds,
        "status": "Failed" if failure else "Succeeded",
        "error": str(failure) if failure else None,
        "prelude": [record.to_json() for record in prelude],
        "cells": [record.to_json() for record in cells],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, default=repr))


def hand_on(
    step: dict[str, Any], namespace: dict[str, Any], output_dir: Path, release: bool = False
) -> dict[str, str]:
    for name in step["hands_on"]:
        if name not in namespace:
            raise StepFailed(
                f"step {step['name']!r} was to hand on {name!r} but did not define it "
                "(was it set only inside an if or a loop that did not run?)"
            )
    outputs = {name: namespace[name] for name in step["hands_on"]}
    try:
        return values.save_all(outputs, output_dir, release)
    except values.UnsavableValue as exc:
        name = exc.name or ""
        message = values.unsavable_message(name, outputs.get(name), step["name"], exc)
        raise StepFailed(message) from None


def keep_models(
    step: dict[str, Any], namespace: dict[str, Any], output_dir: Path
) -> dict[str, dict[str, Any]]:
    """Each of the step's models (`model:NAME`) in its serving format, in
    `output_dir/OUTPUT` (OUTPUT: the component's Model output, bundle's `models`)."""
    kept = {}
    for name, output in (step.get("models") or {}).items():
        if name not in namespace:
            raise StepFailed(
                f"step {step['name']!r} was to keep model {name!r} but did not define it "
                "(was it set only inside an if or a loop that did not run?)"
            )
        try:
            saved = models.save_model(name, namespace[name], output_dir / output, namespace)
        except models.UnsavableModel as exc:
            raise StepFailed(
                f"model {name!r} of step {step['name']!r} could not be saved ({exc}); a model "
                "must be a scikit-learn, XGBoost, LightGBM or PyTorch model, or a value "
                "cloudpickle can write"
            ) from None
        kept[name] = {**saved.to_json(), "output": output}
    return kept


def collect_metrics(step: dict[str, Any], namespace: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    for name in step["metrics"]:
        value = namespace.get(name)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise StepFailed(
                f"metric {name!r} of step {step['name']!r} is {type(value).__name__} "
                f"{value!r:.60}, not a number; metrics must be numbers"
            ) from None
        if math.isnan(number) or math.isinf(number):
            raise StepFailed(f"metric {name!r} of step {step['name']!r} is {number}")
        metrics[name] = number
    return metrics


def user_traceback(exc: BaseException) -> str:
    """The traceback without the runtime's own frames: cells and the libraries they call."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith((RUNTIME_DIR, *_ipython_dir()))
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def _ipython_dir() -> tuple[str, ...]:
    """IPython's own folder, whose frames (the shell running a cell) are not the user's."""
    ipython = sys.modules.get("IPython")
    path = getattr(ipython, "__file__", None)
    return (str(Path(path).resolve().parent),) if path else ()
