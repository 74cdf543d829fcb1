"""Run one step's code the way the notebook ran it, outside any kernel.

The namespace is a real `__main__` module, so functions and classes the notebook defines
pickle and unpickle as they would in the kernel. Each cell is compiled under its own name
(`iris.ipynb, cell 7`), so a traceback points at the notebook, not at generated code.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import math
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import values

RUNTIME_DIR = str(Path(__file__).resolve().parent)
REPORT_FILE = "cellpipe-report.json"


class StepFailed(Exception):
    """User code failed, or a value could not be handed on; `details` is for people."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details or message


@dataclass
class StepResult:
    outputs: dict[str, str] = field(default_factory=dict)  # name -> format
    metrics: dict[str, float] = field(default_factory=dict)
    printed: str = ""
    seconds: float = 0.0


def fresh_main() -> dict[str, Any]:
    """A new, empty `__main__` module for a step's code, installed as the real one."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    return module.__dict__


def cell_filename(bundle: dict[str, Any], index: int) -> str:
    return f"{bundle.get('notebook', 'notebook')}, cell {index + 1}"


def run_cells(
    bundle: dict[str, Any], cells: list[dict[str, Any]], namespace: dict[str, Any]
) -> None:
    for cell in cells:
        filename = cell_filename(bundle, cell["index"])
        source = cell["source"]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec", dont_inherit=True)
        exec(code, namespace)  # the user's own notebook code, as Jupyter runs it


def run_prelude(bundle: dict[str, Any], namespace: dict[str, Any]) -> None:
    """The imports and functions cells, which every step starts with."""
    try:
        run_cells(bundle, bundle["prelude"], namespace)
    except BaseException as exc:
        raise StepFailed("the imports/functions cells failed", user_traceback(exc)) from None


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
    echo: TextIO | None = None,
) -> StepResult:
    """Bind parameters and inputs, run the step's cells, hand on its outputs.

    `namespace` already holds the prelude's names. `load_input(name)` returns a received
    value. Outputs go to `output_dir/NAME/`. Raises StepFailed with a cell-mapped traceback.
    """
    step = bundle["steps"][task]
    started = time.perf_counter()
    types_ = {name: spec["type"] for name, spec in bundle["parameters"].items()}
    for name in step["parameters"]:
        namespace[name] = coerce_parameter(parameters[name], types_[name])
    for name in step["receives"]:
        namespace[name] = load_input(name)
    buffer = io.StringIO()
    try:
        with _tee_stdout(buffer, echo):
            run_cells(bundle, step["cells"], namespace)
    except BaseException as exc:
        raise StepFailed(
            f"step {step['name']!r} failed: {type(exc).__name__}: {exc}", user_traceback(exc)
        ) from None
    result = StepResult(printed=buffer.getvalue())
    result.outputs = hand_on(step, namespace, output_dir)
    result.metrics = collect_metrics(step, namespace)
    result.seconds = time.perf_counter() - started
    (output_dir / REPORT_FILE).write_text(
        json.dumps({"printed": result.printed[-100_000:], "seconds": result.seconds})
    )
    return result


def hand_on(step: dict[str, Any], namespace: dict[str, Any], output_dir: Path) -> dict[str, str]:
    formats = {}
    for name in step["hands_on"]:
        if name not in namespace:
            raise StepFailed(
                f"step {step['name']!r} was to hand on {name!r} but did not define it "
                "(was it set only inside an if or a loop that did not run?)"
            )
        value = namespace[name]
        try:
            formats[name] = values.save(value, output_dir / name)
        except values.UnsavableValue as exc:
            raise StepFailed(values.unsavable_message(name, value, step["name"], exc)) from None
    return formats


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
        if not frame.filename.startswith(RUNTIME_DIR)
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


class _Tee(io.TextIOBase):
    def __init__(self, *targets: TextIO) -> None:
        self.targets = targets

    def write(self, text: str) -> int:
        for target in self.targets:
            target.write(text)
        return len(text)

    def flush(self) -> None:
        for target in self.targets:
            target.flush()


@contextlib.contextmanager
def _tee_stdout(buffer: io.StringIO, echo: TextIO | None) -> Iterator[None]:
    targets: list[TextIO] = [buffer] if echo is None else [buffer, echo]
    with contextlib.redirect_stdout(_Tee(*targets)):
        yield
