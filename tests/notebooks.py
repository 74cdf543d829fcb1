"""Notebooks built in memory for tests: each cell is (tags, source) or a markdown string."""

from __future__ import annotations

from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

Cell = tuple[list[str], str] | str


def notebook(*cells: Cell, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    nb = new_notebook(metadata=metadata or {})
    for index, cell in enumerate(cells):
        if isinstance(cell, str):
            nb.cells.append(new_markdown_cell(cell, id=f"md-{index}"))
        else:
            tags, source = cell
            code = new_code_cell(source, id=f"cell-{index}")
            if tags:
                code.metadata["tags"] = list(tags)
            nb.cells.append(code)
    nbformat.validate(nb)
    result: dict[str, Any] = nbformat.from_dict(nb)
    return result


def write(path: Any, nb: dict[str, Any]) -> Any:
    nbformat.write(nbformat.from_dict(nb), str(path))
    return path
