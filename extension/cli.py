"""The `cellpipe` command. A thin adapter: the converter does the work.

User errors print `cellpipe: error: NOTEBOOK: cell N (step 'S'): ...` on stderr and exit 2,
without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cellpipe import __version__
from cellpipe.launcher.errors import UserError

if TYPE_CHECKING:
    from cellpipe.converter import Pipeline

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellpipe",
        description="Tag notebook cells as steps; run the notebook as a Kubeflow pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"cellpipe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compile_cmd = commands.add_parser(
        "compile",
        help="turn a tagged notebook into a Kubeflow Pipelines v2 pipeline (YAML)",
        description="Turn a tagged notebook into a Kubeflow Pipelines v2 pipeline (YAML).",
    )
    compile_cmd.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
    compile_cmd.add_argument(
        "-o",
        "--output",
        metavar="PIPELINE.yaml",
        help="where to write the pipeline (default: NOTEBOOK with .yaml beside it; - for stdout)",
    )
    compile_cmd.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="what to print: a summary (text) or the pipeline as the UI sees it (json)",
    )
    compile_cmd.add_argument("--registry", help="registry the pipeline's image will be pushed to")
    compile_cmd.add_argument("--base-image", help="base image for steps without image: tags")
    compile_cmd.add_argument(
        "--gpu-resource",
        default="nvidia.com/gpu",
        help="Kubernetes resource name of a GPU (default: nvidia.com/gpu)",
    )
    compile_cmd.add_argument(
        "--gpu-label",
        default="nvidia.com/gpu.product",
        help="node label whose value is the GPU type (default: nvidia.com/gpu.product)",
    )
    run_cmd = commands.add_parser(
        "run",
        help="compile and run the notebook as its pipeline on this machine",
        description="Compile and run the notebook as its pipeline on this machine.",
    )
    run_cmd.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
    run_cmd.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter, typed by its default (repeatable)",
    )
    run_cmd.add_argument(
        "--image",
        metavar="REF",
        help="run every step inside this built image (kfp.local's DockerRunner; DOCKER_HOST)",
    )
    run_cmd.add_argument(
        "--build",
        action="store_true",
        help="build the image first (as `cellpipe build`), then run the steps inside it",
    )
    run_cmd.add_argument("--registry", metavar="HOST/REPO", help="with --build: where to push")
    run_cmd.add_argument(
        "--builder", choices=["append", "engine"], default="append", help="with --build"
    )
    run_cmd.add_argument(
        "--force",
        action="store_true",
        help="with --image: run it even if it was built from other notebook code",
    )
    run_cmd.add_argument(
        "--engine",
        choices=["local", "kfp-local"],
        default=None,
        help="local: cellpipe's fast executor (default); kfp-local: the kfp SDK's kfp.local",
    )
    run_cmd.add_argument("--format", choices=["text", "json"], default="text")
    run_cmd.add_argument("--no-cache", action="store_true", help="run every step again")
    run_cmd.add_argument(
        "--require-gpus",
        action="store_true",
        help="fail, rather than run on the CPU, when a step asks for GPUs this machine lacks",
    )
    from cellpipe.build_command import add_build_arguments

    add_build_arguments(commands)
    from cellpipe.runs_command import add_runs_arguments
    from cellpipe.submit_command import add_submit_arguments

    add_submit_arguments(commands)
    add_runs_arguments(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compile":
            return compile_command(args, sys.stdout, sys.stderr)
        if args.command == "run":
            from cellpipe.run_command import run_command

            return int(run_command(args, sys.stdout, sys.stderr))
        if args.command == "build":
            from cellpipe.build_command import build_command

            return int(build_command(args, sys.stdout, sys.stderr))
        if args.command == "requirements":
            from cellpipe.build_command import requirements_command

            return int(requirements_command(args, sys.stdout, sys.stderr))
        if args.command == "submit":
            from cellpipe.submit_command import submit_command

            return int(submit_command(args, sys.stdout, sys.stderr))
        if args.command in ("runs", "status", "logs", "cancel", "delete", "gpus"):
            from cellpipe import runs_command

            command = getattr(runs_command, f"{args.command}_command")
            return int(command(args, sys.stdout, sys.stderr))
    except UserError as exc:
        print(f"cellpipe: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cellpipe run ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return EXIT_USER_ERROR


def compile_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.converter import CompileOptions, NotebookError, compile_yaml, load_pipeline

    notebook = Path(args.notebook)
    options = CompileOptions(
        registry=args.registry,
        base_image=args.base_image,
        gpu_resource=args.gpu_resource,
        gpu_label=args.gpu_label,
    )
    try:
        pipeline = load_pipeline(notebook, options)
    except NotebookError as exc:
        raise UserError(f"{notebook}: {exc}") from None
    for warning in pipeline.warnings:
        print(f"cellpipe: warning: {warning.for_people(str(notebook))}", file=err)
    for error in pipeline.errors:
        print(f"cellpipe: error: {error.for_people(str(notebook))}", file=err)
    if pipeline.errors:
        if args.format == "json":
            print(json.dumps(pipeline.to_json(), indent=2), file=out)
        return EXIT_USER_ERROR
    yaml_text = compile_yaml(pipeline, options)
    destination = args.output or str(notebook.with_suffix(".yaml"))
    if destination == "-":
        out.write(yaml_text)
    else:
        try:
            Path(destination).write_text(yaml_text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {destination}: {exc.strerror}") from None
    if args.format == "json":
        print(json.dumps({**pipeline.to_json(), "output": destination}, indent=2), file=out)
    elif destination != "-":
        print(_summary(pipeline, destination), file=out)
    return 0


def _summary(pipeline: Pipeline, destination: str) -> str:
    lines = [f"pipeline {pipeline.settings.name!r}: {len(pipeline.steps)} steps -> {destination}"]
    for step in pipeline.steps:
        after = f" after {', '.join(step.after)}" if step.after else ""
        receives = f"; receives {', '.join(step.receives)}" if step.receives else ""
        lines.append(f"  {step.name} [{step.task}]{after}{receives}")
    lines.append(f"image: {pipeline.image}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
