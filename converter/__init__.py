"""cellpipe.converter: a tagged notebook becomes a pipeline. Pure: no network, no builds.

pipeline = load_pipeline("train.ipynb")          # the typed IR, with its diagnostics
yaml_text = compile_yaml(pipeline)               # KFP v2 IR through the kfp SDK
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .build import CompileOptions, build_pipeline
from .model import Diagnostic, Pipeline, Step
from .tags import StepLineError, parse_step_line


class NotebookError(Exception):
    """The file is not a notebook cellpipe can read; the message says why."""


def read_notebook(path: str | Path) -> dict[str, Any]:
    """Read a notebook file as a plain dict, checking the parts cellpipe relies on.

    The checks are the nbformat v4 schema's rules for those parts, done by hand: a full schema
    validation costs more than the whole compile of a large notebook.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError as exc:
        raise NotebookError("no such file") from exc
    except IsADirectoryError as exc:
        raise NotebookError("is a directory, not a notebook") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read the file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise NotebookError(f"not a notebook: invalid JSON at line {exc.lineno}") from exc
    check_notebook(raw)
    result: dict[str, Any] = raw
    return result


def check_notebook(raw: Any) -> None:
    """Raise NotebookError unless `raw` has the notebook shape the converter reads."""
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise NotebookError("not a notebook: it has no list of cells")
    if raw.get("nbformat") != 4:
        raise NotebookError(
            f"notebook format {raw.get('nbformat')} is not supported; save it as format 4 "
            "(jupyter nbconvert --to notebook)"
        )
    if not isinstance(raw.get("metadata", {}), dict):
        raise NotebookError("not a valid notebook: its metadata is not an object")
    for number, cell in enumerate(raw["cells"], start=1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"not a valid notebook: cell {number} has no cell_type")
        source = cell.get("source", "")
        if not isinstance(source, str) and not (
            isinstance(source, list) and all(isinstance(line, str) for line in source)
        ):
            raise NotebookError(f"not a valid notebook: cell {number} has a malformed source")
        metadata = cell.get("metadata", {})
        tags = metadata.get("tags", []) if isinstance(metadata, dict) else None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise NotebookError(
                f"not a valid notebook: cell {number}'s metadata.tags is not a list of strings"
            )


def load_pipeline(path: str | Path, options: CompileOptions | None = None) -> Pipeline:
    """Read a notebook file and turn it into a Pipeline."""
    return build_pipeline(read_notebook(path), str(path), options)


def compile_yaml(pipeline: Pipeline, options: CompileOptions | None = None) -> str:
    """KFP v2 IR as YAML; imported lazily because the kfp SDK is slow to import."""
    from .kfp_ir import compile_yaml as _compile

    return _compile(pipeline, options)


__all__ = [
    "CompileOptions",
    "Diagnostic",
    "NotebookError",
    "Pipeline",
    "Step",
    "StepLineError",
    "build_pipeline",
    "compile_yaml",
    "load_pipeline",
    "parse_step_line",
    "read_notebook",
]
