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
    """Read a notebook as a plain dict, validating its shape with nbformat."""
    import nbformat  # imported here: nbformat's import pulls in jsonschema

    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError as exc:
        raise NotebookError("no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read the file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise NotebookError(f"not a notebook: invalid JSON at line {exc.lineno}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise NotebookError("not a notebook: it has no list of cells")
    if raw.get("nbformat") != 4:
        raise NotebookError(
            f"notebook format {raw.get('nbformat')} is not supported; save it as format 4 "
            "(jupyter nbconvert --to notebook)"
        )
    try:
        nbformat.validate(raw, version=4)
    except nbformat.ValidationError as exc:
        raise NotebookError(f"not a valid notebook: {exc.message}") from exc
    return raw


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
