"""`cellpipe run`: compile, run on this machine, follow the steps, print the metrics.

What people see, in order: a header (the pipeline, its steps, the engine), each step's line
as it ends with what it printed under it (`--quiet` hides the output), then how the run
ended, its total time, its metrics and what to look at next (its log, its status, the
executed notebook). Errors go to stderr, before the warnings that matter less."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from cellpipe.launcher.config import load_config
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.run_logs import step_output
from cellpipe.launcher.running import check_image, image_for_run, run_here
from cellpipe.launcher.store import RunRecord
from cellpipe.launcher.vocabulary import KFP_LOCAL_ENGINE, RunStatus

from .outcome import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR, Outcome, print_problems
from .progress import progress_for
from .terminal import console_for, safe_text, status_text, terminal_safe

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
    print_problems(err, str(notebook), pipeline)
    if pipeline.errors:
        return Outcome(EXIT_USER_ERROR, pipeline.to_json())
    parameters = prepared.text_parameters(args.parameter)
    no_gpus = prepared.gpus_here(args.require_gpus, "--require-gpus")
    if no_gpus:
        print(f"cellpipe: warning: {no_gpus}", file=err)
    image = _image_to_run_in(args, prepared, config, err)
    step_names = [s.name for s in pipeline.steps]
    engine = _engine_name(args, image, config)
    progress: StepDisplay | None
    if display is not None:
        progress = display(step_names)
    elif args.format == "json":
        progress = None
    else:
        _header(pipeline.settings.name, len(step_names), engine, image, out)
        printed = (lambda step: step_output(engine, step)) if not args.quiet else None
        progress = progress_for(out, step_names, printed)
    started = time.monotonic()
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
    seconds = time.monotonic() - started
    failed = [s for s in record.steps.values() if s.status == RunStatus.FAILED]
    shown_above = args.format != "json" and display is None and not args.quiet
    for step in failed:  # its traceback is under its line already, unless hidden
        details = (step.error if shown_above else step.details or step.error) or ""
        named = f"step {step.name!r} failed"
        print(
            f"cellpipe: {details if details.startswith(named) else f'{named}: {details}'}", file=err
        )
    if record.status != RunStatus.SUCCEEDED and not failed and record.error:
        print(f"cellpipe: run {record.run_id} {record.status}: {record.error}", file=err)
    result = record.to_json()
    data = {k: result[k] for k in RUN_JSON_KEYS}
    data["notebook"] = record.executed_notebook
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
    else:
        _summary(record, seconds, out)
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


def _engine_name(args: argparse.Namespace, image: str | None, config: Any) -> str:
    """The engine the run goes to, as launcher.running.engine_here chooses it."""
    if image is not None:
        return KFP_LOCAL_ENGINE
    name: str = args.engine or config.default_engine
    return name


def _header(pipeline: str, steps: int, engine: str, image: str | None, out: TextIO) -> None:
    console = console_for(out)
    where = f" in {image}" if image else ""
    plural = "" if steps == 1 else "s"
    console.print(safe_text(f"pipeline {pipeline}: {steps} step{plural}, engine {engine}{where}"))


def _summary(record: RunRecord, seconds: float, out: TextIO) -> None:
    """How the run ended and in how long, its metrics, and where to look next."""
    from rich.text import Text

    console = console_for(out)
    ended = Text("run ")
    ended.append(terminal_safe(record.run_id), "bold")
    ended.append(": ")
    ended.append_text(status_text(record.status))
    ended.append(f" in {seconds:.1f} s")
    console.print(ended)
    for name, value in record.metrics.items():
        console.print(safe_text(f"  {name} = {value:g}"))
    console.print(safe_text("next:"))
    for command, what in (
        (f"cellpipe logs {record.run_id}", "what every step printed"),
        (f"cellpipe status {record.run_id}", "its steps, metrics and outputs"),
    ):
        console.print(safe_text(f"  {command:<43} {what}"))
    if record.executed_notebook:
        console.print(safe_text(f"  executed notebook: {record.executed_notebook}"))
    console.print(safe_text(f"  outputs: {record.outputs}"))
