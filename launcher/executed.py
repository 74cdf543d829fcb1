"""The executed notebook a run gives back: the notebook as it ran, with every cell's outputs.

Each step's report (runtime/step.py, REPORT_FILE) holds the outputs of the cells it ran; this
module puts them back into the notebook that was run (kept as SOURCE_FILE in the run folder):
execution counts in pipeline order, cell metadata (`cellpipe`) naming the step and its seconds,
the run in the notebook's metadata (RUN_METADATA), skip cells without outputs, the failing cell
with its error output, cells never reached left empty.
Every engine that can read its steps' reports writes EXECUTED_FILE the same way.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from .store import EXECUTED_FILE

# nbformat is untyped: its calls go through these
_from_dict: Any = nbformat.from_dict
_write: Any = nbformat.write

log = logging.getLogger(__name__)

RUN_METADATA = "cellpipe_run"  # the notebook's metadata key for the run it shows
SOURCE_FILE = "source.ipynb"  # the notebook as it was run (unsaved edits included)
PRELUDE_REPORT = "prelude-report.json"  # the imports/functions cells, when they failed


@dataclass
class StepOutcome:
    """What the launcher knows of one step when the run ends."""

    task: str
    name: str
    status: str
    cached: bool = False
    report: dict[str, Any] | None = None  # the step's report; None: it kept none


def keep_source(run_dir: Path, notebook: dict[str, Any] | Path) -> None:
    """Keeps the notebook that runs (its content, or the file as it is now), so the
    executed one is built from what ran."""
    if isinstance(notebook, Path):
        try:
            (run_dir / SOURCE_FILE).write_bytes(notebook.read_bytes())
        except OSError as exc:  # the run goes on; only its executed notebook is lost
            log.warning("cellpipe: %s not kept for the executed notebook: %s", notebook, exc)
        return
    (run_dir / SOURCE_FILE).write_text(json.dumps(notebook), encoding="utf-8")


def read_report(path: Path) -> dict[str, Any] | None:
    """A step's report; None when missing or unreadable (a step that never ran)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def pipeline_order(bundle: dict[str, Any]) -> list[str]:
    """The tasks in the order they may run: each after those it runs after, else as written."""
    steps = bundle["steps"]
    placed: list[str] = []
    remaining = list(steps)
    while remaining:
        ready = next(
            (t for t in remaining if all(p in placed for p in steps[t].get("after", []))),
            remaining[0],  # a cycle cannot compile; never loop forever on a damaged bundle
        )
        placed.append(ready)
        remaining.remove(ready)
    return placed


def assemble(
    source: dict[str, Any],
    bundle: dict[str, Any],
    outcomes: Iterable[StepOutcome],
    run: dict[str, Any],
    prelude_failure: dict[str, Any] | None = None,
) -> Any:
    """The executed notebook (an nbformat NotebookNode) from the notebook that ran."""
    notebook = _from_dict(copy.deepcopy(source))
    by_task = {outcome.task: outcome for outcome in outcomes}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("cellpipe", None)
    counter = _Counter()
    prelude_records = _prelude_records(bundle, by_task, prelude_failure)
    for record in prelude_records:
        _fill(notebook, record, counter, {"step": None, "role": "imports and functions"})
    for task in pipeline_order(bundle):
        step = bundle["steps"][task]
        outcome = by_task.get(task) or StepOutcome(task, step["name"], "Not run")
        records = {r["index"]: r for r in (outcome.report or {}).get("cells", [])}
        for cell in step["cells"]:
            about = {"step": step["name"], "task": task, "status": _status(outcome, cell, records)}
            if outcome.cached:
                about["cached"] = True
            if cell["index"] in records:
                _fill(notebook, records[cell["index"]], counter, about)
            else:
                _mark(notebook, cell["index"], about)
    # Beside the notebook's own settings (metadata.cellpipe), which stay as they were, so the
    # executed notebook compiles as the notebook did.
    notebook.metadata[RUN_METADATA] = {
        **run,
        "steps": {o.name: {"status": o.status, "cached": o.cached} for o in by_task.values()},
    }
    return notebook


def write_executed(
    run_dir: Path,
    bundle: dict[str, Any],
    outcomes: Iterable[StepOutcome],
    run: dict[str, Any],
) -> Path | None:
    """Writes EXECUTED_FILE in the run folder; None (and a log line) when the notebook that
    ran was not kept. A notebook that does not validate is still written, with a warning:
    the outputs are the user's own, and losing them helps nobody."""
    try:
        source = json.loads((run_dir / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("cellpipe: no executed notebook for %s: %s", run_dir, exc)
        return None
    prelude_failure = read_report(run_dir / PRELUDE_REPORT)
    notebook = assemble(source, bundle, outcomes, run, prelude_failure)
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        log.warning("cellpipe: the executed notebook of %s is not valid nbformat: %s", run_dir, exc)
    path = run_dir / EXECUTED_FILE
    temporary = path.with_suffix(".tmp")
    _write(notebook, str(temporary))
    temporary.replace(path)
    return path


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


def _prelude_records(
    bundle: dict[str, Any], by_task: dict[str, StepOutcome], failure: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The imports/functions cells' records: where they failed, else from the first step in
    pipeline order that ran them this run (a cached step's are from the run that made it)."""
    if failure is not None:
        return list(failure.get("prelude", []))
    ordered = [by_task[t] for t in pipeline_order(bundle) if t in by_task]
    for outcome in sorted(ordered, key=lambda o: o.cached):  # this run's first
        records = (outcome.report or {}).get("prelude")
        if records:
            return list(records)
    return []


def _status(outcome: StepOutcome, cell: dict[str, Any], records: dict[int, Any]) -> str:
    record = records.get(cell["index"])
    if record is not None:
        return "failed" if record.get("failed") else "ran"
    if outcome.report is None and outcome.status == "Succeeded":
        return "ran, outputs not kept"  # report:disabled, or a step that kept no report
    return "not run"


def _fill(notebook: Any, record: dict[str, Any], counter: _Counter, about: dict[str, Any]) -> None:
    cell = _cell(notebook, record.get("index"))
    if cell is None or cell.cell_type != "code":
        return
    count = counter.next()
    outputs = []
    for output in record.get("outputs", []):
        output = dict(output)
        if output.get("output_type") == "execute_result":
            output["execution_count"] = count
        outputs.append(_from_dict(output))
    cell.outputs = outputs
    cell.execution_count = count
    seconds = record.get("seconds")
    cell.metadata["cellpipe"] = {
        **about,
        **({"seconds": round(float(seconds), 3)} if isinstance(seconds, (int, float)) else {}),
        **({"status": "failed"} if record.get("failed") else {}),
    }


def _mark(notebook: Any, index: int, about: dict[str, Any]) -> None:
    cell = _cell(notebook, index)
    if cell is not None:
        cell.metadata["cellpipe"] = about


def _cell(notebook: Any, index: Any) -> Any:
    if isinstance(index, int) and 0 <= index < len(notebook.cells):
        return notebook.cells[index]
    return None
