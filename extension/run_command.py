"""`cellpipe run`: compile, run on this machine, follow the steps, print the metrics."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from cellpipe.launcher.errors import UserError
from cellpipe.progress import progress_for

EXIT_STEP_FAILED = 1
EXIT_USER_ERROR = 2


class StepDisplay(Protocol):
    """What follows the steps of a run: an engine listener that can be closed."""

    def __call__(self, event: str, step: Any) -> None: ...

    def close(self) -> None: ...


def run_command(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    display: Callable[[Sequence[str]], StepDisplay] | None = None,
) -> int:
    """`display(step_names)`: a front door's own view of the steps as they run (the magics'
    live table in a notebook), instead of the terminal's."""
    from cellpipe.converter import CompileOptions, NotebookError, load_pipeline
    from cellpipe.converter.params import ParameterError, parameter_values
    from cellpipe.launcher import LocalEngine, RunRequest
    from cellpipe.launcher.local_engine import machine_has_gpu

    notebook = Path(args.notebook)
    try:
        pipeline = load_pipeline(notebook, CompileOptions(local_only=True))
    except NotebookError as exc:
        raise UserError(f"{notebook}: {exc}") from None
    for warning in pipeline.warnings:
        print(f"cellpipe: warning: {warning.for_people(str(notebook))}", file=err)
    if pipeline.errors:
        for error in pipeline.errors:
            print(f"cellpipe: error: {error.for_people(str(notebook))}", file=err)
        return EXIT_USER_ERROR
    try:
        parameters = parameter_values(pipeline.parameters, args.parameter)
    except ParameterError as exc:
        raise UserError(f"{notebook}: {exc}") from None
    gpu_steps = [s for s in pipeline.steps if s.resources.gpu]
    if gpu_steps and not machine_has_gpu():
        names = ", ".join(
            f"{s.name!r} ({s.resources.gpu.count})" for s in gpu_steps if s.resources.gpu
        )
        if args.require_gpus:
            raise UserError(f"{notebook}: steps {names} ask for GPUs and this machine has none")
        print(
            f"cellpipe: warning: {notebook}: steps {names} ask for GPUs; this machine has none, "
            "so they run on the CPU (--require-gpus makes this an error)",
            file=err,
        )
    image = _image_to_run_in(args, pipeline, notebook, err)
    if image or args.engine == "kfp-local":
        from cellpipe.launcher.kfp_local import KfpLocalEngine

        engine: LocalEngine | KfpLocalEngine = KfpLocalEngine(image=image)
    else:
        engine = LocalEngine()
    step_names = [s.name for s in pipeline.steps]
    progress: StepDisplay | None
    if display is not None:
        progress = display(step_names)
    else:
        progress = None if args.format == "json" else progress_for(out, step_names)
    request = RunRequest(pipeline, notebook, parameters, use_cache=not args.no_cache)
    try:
        record = engine.run(request, progress)
    finally:
        if progress:
            progress.close()
    for warning in request.warnings:
        print(f"cellpipe: warning: {notebook}: {warning}", file=err)
    failed = [s for s in record.steps.values() if s.status == "Failed"]
    for step in failed:
        print(f"cellpipe: step {step.name!r} failed:\n{step.details or step.error}", file=err)
    if record.status != "Succeeded" and not failed and record.error:
        print(f"cellpipe: run {record.run_id} {record.status}: {record.error}", file=err)
    if args.format == "json":
        result = record.to_json()
        print(
            json.dumps(
                {
                    k: result[k]
                    for k in ("run_id", "status", "metrics", "steps", "outputs", "error")
                },
                indent=2,
            ),
            file=out,
        )
    else:
        _summary(record, out)
    return 0 if record.status == "Succeeded" else EXIT_STEP_FAILED


def _image_to_run_in(
    args: argparse.Namespace, pipeline: Any, notebook: Path, err: TextIO
) -> str | None:
    """`--image REF` or `--build`: the built image the steps run in, checked against the
    notebook (an image of other code is refused, naming what differs, unless --force)."""
    if not (args.image or args.build):
        return None
    if args.engine == "local":
        raise UserError(
            "--image and --build run the steps in the image through kfp.local's DockerRunner: "
            "leave out --engine local (or say --engine kfp-local)"
        )
    if args.build:
        from cellpipe.build_command import build_for_run

        return str(build_for_run(args, pipeline, notebook, err))
    from cellpipe.launcher.build import describe_difference
    from cellpipe.launcher.images import code_labels

    difference = describe_difference(_image_labels(args.image), code_labels(pipeline))
    if difference and not args.force:
        raise UserError(
            f"{notebook}: the image {args.image} does not hold this notebook's code: {difference}."
            " Build it again (--build), or run it anyway with --force"
        )
    if difference:
        print(f"cellpipe: warning: running {args.image} anyway: {difference}", file=err)
    image: str = args.image
    return image


def _image_labels(image: str) -> dict[str, str]:
    import docker
    from docker.errors import DockerException, ImageNotFound

    try:
        client = docker.from_env()
        try:
            found = client.images.get(image)
        except ImageNotFound:
            found = client.images.pull(image)
    except DockerException as exc:
        raise UserError(
            f"cannot read the image {image} through the Docker Engine API ({exc}); set DOCKER_HOST "
            "to a running Docker or podman service"
        ) from None
    labels: dict[str, str] = found.labels or {}
    return labels


def _summary(record: object, out: TextIO) -> None:
    from cellpipe.launcher import RunRecord

    assert isinstance(record, RunRecord)
    print(f"run {record.run_id}: {record.status}", file=out)
    for name, value in record.metrics.items():
        print(f"  {name} = {value:g}", file=out)
    print(f"outputs: {record.outputs}", file=out)
