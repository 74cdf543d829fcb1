"""`cellpipe run`: compile, run on this machine, follow the steps, print the metrics."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from cellpipe.launcher.config import load_config
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.running import check_image, image_for_run, run_here
from cellpipe.launcher.store import RunRecord
from cellpipe.launcher.vocabulary import RunStatus

from .outcome import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR, Outcome
from .progress import progress_for

RUN_JSON_KEYS = ("run_id", "status", "metrics", "steps", "outputs", "error")


class StepDisplay(Protocol):
    """What follows the steps of a run: an engine listener that can be closed."""

    def __call__(self, event: str, step: Any) -> None: ...

    def close(self) -> None: ...


def run_command(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    display: Callable[[Sequence[str]], StepDisplay] | None = None,
) -> Outcome:
    """`display(step_names)`: a front door's own view of the steps as they run (the magics'
    live table in a notebook), instead of the terminal's."""
    config = load_config()
    notebook = Path(args.notebook)
    prepared = prepare_file(notebook, config, local_only=True)
    pipeline = prepared.pipeline
    for note in pipeline.notes:
        print(f"cellpipe: note: {note.for_people(str(notebook))}", file=err)
    for warning in pipeline.warnings:
        print(f"cellpipe: warning: {warning.for_people(str(notebook))}", file=err)
    if pipeline.errors:
        for error in pipeline.errors:
            print(f"cellpipe: error: {error.for_people(str(notebook))}", file=err)
        return Outcome(EXIT_USER_ERROR, pipeline.to_json())
    parameters = prepared.text_parameters(args.parameter)
    no_gpus = prepared.gpus_here(args.require_gpus, "--require-gpus")
    if no_gpus:
        print(f"cellpipe: warning: {no_gpus}", file=err)
    image = _image_to_run_in(args, prepared, config, err)
    step_names = [s.name for s in pipeline.steps]
    progress: StepDisplay | None
    if display is not None:
        progress = display(step_names)
    else:
        progress = None if args.format == "json" else progress_for(out, step_names)
    try:
        record, warnings = run_here(
            prepared,
            parameters,
            config,
            engine=args.engine,
            image=image,
            use_cache=not args.no_cache,
            listener=progress,
        )
    finally:
        if progress:
            progress.close()
    for engine_warning in warnings:
        print(f"cellpipe: warning: {notebook}: {engine_warning}", file=err)
    failed = [s for s in record.steps.values() if s.status == RunStatus.FAILED]
    for step in failed:
        print(f"cellpipe: step {step.name!r} failed:\n{step.details or step.error}", file=err)
    if record.status != RunStatus.SUCCEEDED and not failed and record.error:
        print(f"cellpipe: run {record.run_id} {record.status}: {record.error}", file=err)
    result = record.to_json()
    data = {k: result[k] for k in RUN_JSON_KEYS}
    data["notebook"] = record.executed_notebook
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
    else:
        _summary(record, out)
    return Outcome(EXIT_OK if record.status == RunStatus.SUCCEEDED else EXIT_FAILED, data)


def _image_to_run_in(
    args: argparse.Namespace, prepared: Any, config: Any, err: TextIO
) -> str | None:
    """`--image REF` or `--build`: the built image the steps run in, checked against the
    notebook (an image of other code is refused, naming what differs, unless --force)."""
    if not (args.image or args.build):
        return None
    if args.build:
        return image_for_run(
            prepared,
            config,
            lambda message: print(f"  {message}", file=err),
            registry=args.registry,
            builder=args.builder,
        )
    warning = check_image(prepared, args.image, force=args.force)
    if warning:
        print(f"cellpipe: warning: {warning}", file=err)
    image: str = args.image
    return image


def _summary(record: RunRecord, out: TextIO) -> None:
    print(f"run {record.run_id}: {record.status}", file=out)
    for name, value in record.metrics.items():
        print(f"  {name} = {value:g}", file=out)
    print(f"outputs: {record.outputs}", file=out)
    if record.executed_notebook:
        print(f"executed notebook: {record.executed_notebook}", file=out)
