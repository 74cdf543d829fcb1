"""How a command ended: its exit status and what it printed as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

EXIT_OK = 0
EXIT_FAILED = 1  # a step failed, a submit did not reach its engine, the cluster refused
EXIT_USER_ERROR = 2


@dataclass
class Outcome:
    """How a command ended: its exit status and what `--format json` prints (None: nothing)."""

    status: int
    data: Any = None


def print_problems(
    err: TextIO,
    notebook: str,
    pipeline: Any,
    warnings: Iterable[Any] | None = None,
    *,
    errors: bool = True,
) -> None:
    """A compiled notebook's problems, errors first (what stops it), then its warnings
    (`warnings`: those that apply, default all), then notes; one line each, naming the
    notebook and the cell."""
    found = pipeline.warnings if warnings is None else warnings
    groups = [("error", pipeline.errors if errors else []), ("warning", found)]
    for kind, problems in [*groups, ("note", pipeline.notes)]:
        for problem in problems:
            print(f"cellpipe: {kind}: {problem.for_people(notebook)}", file=err)
