"""A notebook made ready for every workflow: read (a saved file or unsaved content), compiled
with the one precedence of settings, its parameters typed, its GPU asks weighed against this
machine. Every front door starts here; nothing here prints or answers HTTP.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellpipe.converter import (
    CompileOptions,
    NotebookError,
    Pipeline,
    build_pipeline,
    check_notebook,
    compile_yaml,
    read_notebook,
)
from cellpipe.converter.images_ref import reference_problem, registry_problem
from cellpipe.converter.model import Diagnostic
from cellpipe.converter.params import ParameterError, given_values, parameter_values

from .config import CellPipe
from .errors import UserError


class NotebookErrors(UserError):
    """The notebook compiles with errors: each one names its cell and what to change."""

    reason = "notebook_errors"

    def __init__(self, prepared: Prepared) -> None:
        errors = prepared.pipeline.errors
        super().__init__(
            "\n".join(error.for_people(prepared.name) for error in errors),
            **prepared.pipeline.to_json(),
        )
        self.prepared = prepared


@dataclass
class Prepared:
    """A compiled notebook and everything a workflow needs to know about where it came from."""

    pipeline: Pipeline
    notebook: dict[str, Any]  # what was compiled: the saved file, or the content sent
    path: Path | None  # where the notebook lives (None: unsaved content with no path)
    name: str  # what messages call it (a path as the user gave it, or the API path)
    options: CompileOptions
    content_given: bool = False  # compiled from content sent, not from the saved file

    def raise_for_errors(self) -> Prepared:
        if self.pipeline.errors:
            raise NotebookErrors(self)
        return self

    def yaml(self) -> str:
        """The KFP v2 pipeline (IR YAML)."""
        return compile_yaml(self.pipeline, self.options)

    def content_hash(self) -> str | None:
        """The hash of what was compiled (the content sent, else the saved file's bytes)."""
        if self.content_given:
            return hashlib.sha256(json.dumps(self.notebook, sort_keys=True).encode()).hexdigest()
        if self.path is not None and self.path.is_file():
            return notebook_hash(self.path)
        return None

    def text_parameters(self, assignments: list[str]) -> dict[str, Any]:
        """`NAME=VALUE` texts (`-p`), typed by their parameter's default."""
        try:
            return parameter_values(self.pipeline.parameters, assignments)
        except ParameterError as exc:
            raise UserError(f"{self.name}: {exc}", reason="bad_parameter") from None

    def json_parameters(self, given: Any) -> dict[str, Any]:
        """`{name: value}` from JSON (a REST body, a form), typed by their defaults."""
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise UserError("'parameters' must be an object {name: value}")
        try:
            return given_values(self.pipeline.parameters, given)
        except ParameterError as exc:
            raise UserError(f"{self.name}: {exc}", reason="bad_parameter") from None

    def gpus_here(self, require: bool, require_option: str = "require_gpus") -> str | None:
        """Steps asking for GPUs on a machine with none: a warning (they run on the CPU), or
        with `require` an error. `require_option`: how the front door spells `require`."""
        asking = [s for s in self.pipeline.steps if s.resources.gpu]
        if not asking:
            return None
        # Here, not at the top: the local engine imports nbformat, which compiling never needs.
        from .local_engine import machine_has_gpu

        if machine_has_gpu():
            return None
        names = ", ".join(
            f"{s.name!r} ({s.resources.gpu.count})" for s in asking if s.resources.gpu
        )
        if require:
            raise UserError(
                f"{self.name}: steps {names} ask for GPUs and this machine has none",
                reason="no_gpus",
            )
        return (
            f"{self.name}: steps {names} ask for GPUs; this machine has none, so they run on "
            f"the CPU ({require_option} makes this an error)"
        )


def notebook_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(path: Path, name: str | None = None) -> dict[str, Any]:
    """The notebook file as a dict; a UserError naming it when it is not one."""
    try:
        return read_notebook(path)
    except NotebookError as exc:
        raise UserError(f"{name or path}: {exc}", reason="not_a_notebook") from None


def checked_content(content: Any, name: str) -> dict[str, Any]:
    """Notebook content sent by a client (unsaved edits), checked as nbformat."""
    try:
        check_notebook(content)
    except NotebookError as exc:
        raise UserError(f"{name}: {exc}", reason="not_a_notebook") from None
    notebook: dict[str, Any] = content
    return notebook


def prepare(
    notebook: dict[str, Any],
    config: CellPipe,
    *,
    path: Path | None,
    name: str,
    registry: str | None = None,
    base_image: str | None = None,
    gpu_resource: str | None = None,
    gpu_label: str | None = None,
    local_only: bool = False,
    content_given: bool = False,
) -> Prepared:
    """Compile `notebook` in the one precedence: the explicit choices given here > its
    metadata.cellpipe > `config` > defaults. Errors stay in `pipeline.errors` (the compile
    JSON shows them); `raise_for_errors` turns them into a NotebookErrors."""
    options = config.compile_options(
        notebook.get("metadata") or {},
        registry=registry,
        base_image=base_image,
        gpu_resource=gpu_resource,
        gpu_label=gpu_label,
        local_only=local_only,
    )
    pipeline = build_pipeline(notebook, name, options)
    pipeline.diagnostics.extend(image_errors(pipeline))
    return Prepared(pipeline, notebook, path, name, options, content_given)


def image_errors(pipeline: Pipeline) -> list[Diagnostic]:
    """The base image and the registry the pipeline ends up with (from an option, its
    metadata.cellpipe or c.CellPipe), checked by the OCI reference grammar before anything
    uses them (a Dockerfile's FROM, a manifest, a Job); `image:` tags are checked as they
    are read."""
    settings = pipeline.settings
    errors = []
    base_problem = reference_problem(settings.base_image) if settings.base_image else None
    if base_problem is not None:
        errors.append(
            Diagnostic(
                f"the base image {settings.base_image!r} is not an image reference: "
                f"{base_problem}; name one like python:3.11-slim (--base, 'base', "
                "metadata.cellpipe.base_image or c.CellPipe.base_image)"
            )
        )
    registry_error = registry_problem(settings.registry) if settings.registry else None
    if registry_error is not None:
        errors.append(
            Diagnostic(
                f"the registry {settings.registry!r} is not a registry (HOST[:PORT][/PATH]): "
                f"{registry_error} (--registry, 'registry', metadata.cellpipe.registry or "
                "c.CellPipe.registry)"
            )
        )
    return errors


def prepare_file(path: Path, config: CellPipe, **choices: Any) -> Prepared:
    """`prepare` of a saved notebook, named in messages as the path was given."""
    return prepare(read(path), config, path=path, name=str(path), **choices)
