"""`cellpipe compile`: the notebook's KFP v2 pipeline (YAML) and, with --format json, the
pipeline as the UI sees it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.config import load_config
from cellpipe.launcher.errors import UserError
from cellpipe.launcher.notebooks import Prepared, prepare_file

from .outcome import EXIT_OK, EXIT_USER_ERROR, Outcome, print_problems


def compile_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    notebook = Path(args.notebook)
    prepared = prepare_file(
        notebook,
        load_config(),
        registry=args.registry,
        base_image=args.base_image,
        gpu_resource=args.gpu_resource,
        gpu_label=args.gpu_label,
    )
    pipeline = prepared.pipeline
    print_problems(err, str(notebook), pipeline)
    if pipeline.errors:
        data = pipeline.to_json()
        if args.format == "json":
            print(json.dumps(data, indent=2), file=out)
        return Outcome(EXIT_USER_ERROR, data)
    yaml_text = prepared.yaml()
    destination = args.output or str(notebook.with_suffix(".yaml"))
    if destination == "-":
        out.write(yaml_text)
    else:
        try:
            Path(destination).write_text(yaml_text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {destination}: {exc.strerror}") from None
    data = {**pipeline.to_json(), "output": destination}
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
    elif destination != "-":
        print(summary(prepared, destination), file=out)
    return Outcome(EXIT_OK, data)


def summary(prepared: Prepared, destination: str) -> str:
    pipeline = prepared.pipeline
    lines = [f"pipeline {pipeline.settings.name!r}: {len(pipeline.steps)} steps -> {destination}"]
    for step in pipeline.steps:
        after = f" after {', '.join(step.after)}" if step.after else ""
        receives = f"; receives {', '.join(step.receives)}" if step.receives else ""
        lines.append(f"  {step.name} [{step.task}]{after}{receives}")
    lines.append(f"image: {pipeline.image}")
    return "\n".join(lines)
