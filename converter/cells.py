"""A notebook cell as the compiler reads it: its place, tags, code and syntax tree."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .model import Severity
from .tags import CellTags


@dataclass
class Cell:
    index: int
    id: str | None
    tags: CellTags
    code: str
    tree: ast.Module | None
    problems: list[tuple[str, Severity]] = field(default_factory=list)  # told once grouped
    # papermill's `parameters` (or `injected-parameters`) cell: that cell alone, so the cells
    # below it go on with the role above it; Kale's `pipeline-parameters` takes them along
    papermill: bool = False
    injected: bool = False  # papermill's `injected-parameters`: the run's values
