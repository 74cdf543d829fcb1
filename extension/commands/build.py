"""`cellpipe build` and `cellpipe requirements`: thin adapters over the launcher's builders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.build import BuildRequest
from cellpipe.launcher.config import load_config
from cellpipe.launcher.notebooks import Prepared, prepare_file
from cellpipe.launcher.requirements import find_requirements
from cellpipe.launcher.submitting import build

from .outcome import EXIT_OK, Outcome, print_problems


def _prepare(notebook: Path, err: TextIO, **choices: str | None) -> Prepared:
    """The notebook compiled (settings in the one precedence), its warnings printed; its
    errors are a UserError."""
    prepared = prepare_file(notebook, load_config(), local_only=True, **choices)
    if not prepared.pipeline.errors:  # the errors alone (cellpipe.cli prints them): first
        print_problems(err, str(notebook), prepared.pipeline)
    return prepared.raise_for_errors()


def requirements_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    notebook = Path(args.notebook)
    prepared = _prepare(notebook, err, base_image=None)
    found = find_requirements(
        prepared.pipeline, prepared.notebook, notebook, int(args.max_file_size * 1e6)
    )
    if args.format == "json":
        print(json.dumps(found.to_json(), indent=2), file=out)
        return Outcome(EXIT_OK, found.to_json())
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
    return Outcome(EXIT_OK, found.to_json())


def build_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    config = load_config()
    notebook = Path(args.notebook)
    prepared = _prepare(notebook, err, base_image=args.base, registry=args.registry)
    request = BuildRequest(
        prepared.pipeline,
        notebook,
        prepared.notebook,
        registry=prepared.pipeline.settings.registry,
        builder=config.builder_for(args.builder),
        base=args.base,
        max_file_bytes=int(args.max_file_size * 1e6),
        output_dir=Path(args.output) if args.output else None,
    )

    def progress(message: str) -> None:
        print(f"  {message}", file=err, flush=True)

    results = build(request, config, progress, name=str(notebook))
    for warning in results[0].warnings:
        print(f"cellpipe: warning: {notebook}: {warning}", file=err)
    if args.format == "json":
        main = results[0].to_json()
        main["images"] = [r.to_json() for r in results]
        print(json.dumps(main, indent=2), file=out)
        return Outcome(EXIT_OK, main)
    for result in results:
        state = "cached" if result.cached else f"built with {result.builder}"
        print(
            f"{result.image} ({state}, {result.seconds:.1f} s, "
            f"{result.pushed_bytes:,} bytes pushed)",
            file=out,
        )
        for path in result.files:
            print(f"  wrote {path}", file=out)
    main = results[0].to_json()
    main["images"] = [r.to_json() for r in results]
    return Outcome(EXIT_OK, main)
