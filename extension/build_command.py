"""`cellpipe build` and `cellpipe requirements`: thin adapters over the launcher's builders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.errors import UserError


def add_build_arguments(commands: Any) -> None:
    build = commands.add_parser(
        "build",
        help="build and push the image the pipeline's steps run in",
        description="Build the image the pipeline's steps run in (requirements, runtime, step "
        "code) and push it. Nothing changed, nothing built: the tag is a content hash.",
    )
    build.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
    build.add_argument("--registry", metavar="HOST/REPO", help="where to push the image")
    build.add_argument("--base", metavar="IMAGE", help="base image (default: the notebook's)")
    build.add_argument(
        "--builder",
        choices=["append", "engine", "kaniko"],
        default="append",
        help="append: layers added through the registry API, no daemon (default); engine: a "
        "Docker Engine API (DOCKER_HOST: Docker or podman); kaniko: a Job to build in the cluster",
    )
    build.add_argument("--format", choices=["text", "json"], default="text")
    add_file_size_argument(build)
    build.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="kaniko: where to write the Job and its context (default: cellpipe-build/ beside "
        "the notebook)",
    )
    requirements = commands.add_parser(
        "requirements",
        help="show what the pipeline's image needs, and why",
        description="Show the requirements found for the notebook (pinned to its kernel's "
        "environment), the local modules and files that go into the image, and what is left out.",
    )
    requirements.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
    requirements.add_argument("--format", choices=["text", "json"], default="text")
    add_file_size_argument(requirements)


def add_file_size_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-file-size",
        type=float,
        default=20.0,
        metavar="MB",
        help="files the notebook names are baked into the image up to this size (default 20 MB)",
    )


def _load(notebook: Path, err: TextIO) -> tuple[Any, dict[str, Any]]:
    from cellpipe.converter import (
        CompileOptions,
        NotebookError,
        build_pipeline,
        read_notebook,
    )

    try:
        raw = read_notebook(notebook)
    except NotebookError as exc:
        raise UserError(f"{notebook}: {exc}") from None
    pipeline = build_pipeline(raw, str(notebook), CompileOptions(local_only=True))
    for warning in pipeline.warnings:
        print(f"cellpipe: warning: {warning.for_people(str(notebook))}", file=err)
    if pipeline.errors:
        messages = "\n".join(e.for_people(str(notebook)) for e in pipeline.errors)
        raise UserError(messages)
    return pipeline, raw


def requirements_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.launcher.requirements import find_requirements

    notebook = Path(args.notebook)
    pipeline, raw = _load(notebook, err)
    found = find_requirements(pipeline, raw, notebook, int(args.max_file_size * 1e6))
    if args.format == "json":
        print(json.dumps(found.to_json(), indent=2), file=out)
        return 0
    print(f"Python: {found.python}, {found.python_version}", file=out)
    print("requirements:", file=out)
    for requirement in found.requirements:
        print(f"  {requirement.spec:<32} {requirement.source}", file=out)
    for title, files in (("local modules", found.local_modules), ("files", found.files)):
        if files:
            print(f"{title} (baked into the image):", file=out)
            for baked in files:
                print(f"  {baked.path:<32} {baked.size:>10,} bytes  {baked.why}", file=out)
    for warning in found.warnings:
        print(f"warning: {warning}", file=out)
    return 0


def build_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.launcher.build import BuildError, BuildRequest, build_image
    from cellpipe.launcher.registry import RegistryError

    notebook = Path(args.notebook)
    pipeline, raw = _load(notebook, err)
    request = BuildRequest(
        pipeline,
        notebook,
        raw,
        registry=args.registry or pipeline.settings.registry,
        builder=args.builder,
        base=args.base,
        max_file_bytes=int(args.max_file_size * 1e6),
        output_dir=Path(args.output) if args.output else None,
    )

    def progress(message: str) -> None:
        print(f"  {message}", file=err, flush=True)

    try:
        results = build_image(request, progress)
    except (BuildError, RegistryError) as exc:
        raise UserError(f"{notebook}: {exc}") from None
    for warning in results[0].warnings:
        print(f"cellpipe: warning: {notebook}: {warning}", file=err)
    if args.format == "json":
        main = results[0].to_json()
        main["images"] = [r.to_json() for r in results]
        print(json.dumps(main, indent=2), file=out)
        return 0
    for result in results:
        state = "cached" if result.cached else f"built with {result.builder}"
        print(
            f"{result.image} ({state}, {result.seconds:.1f} s, "
            f"{result.pushed_bytes:,} bytes pushed)",
            file=out,
        )
        for path in result.files:
            print(f"  wrote {path}", file=out)
    return 0


def build_for_run(args: argparse.Namespace, pipeline: Any, notebook: Path, err: TextIO) -> str:
    """`cellpipe run --build`: build (or find) the image with the default builder; its ref."""
    from cellpipe.converter import NotebookError, read_notebook
    from cellpipe.launcher.build import BuildError, BuildRequest, build_image
    from cellpipe.launcher.registry import RegistryError

    try:
        raw = read_notebook(notebook)
        request = BuildRequest(
            pipeline,
            notebook,
            raw,
            registry=args.registry or pipeline.settings.registry,
            builder=args.builder,
        )
        results = build_image(request, lambda message: print(f"  {message}", file=err))
    except (NotebookError, BuildError, RegistryError) as exc:
        raise UserError(f"{notebook}: {exc}") from None
    if len(results) > 1:
        raise UserError(
            f"{notebook}: steps use {len(results)} base images; `run --build` runs one image: "
            "build with `cellpipe build` and submit to a cluster instead"
        )
    return str(results[0].image)
