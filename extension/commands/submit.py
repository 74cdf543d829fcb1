"""`cellpipe submit`: the notebook's pipeline to Kubeflow Pipelines, or one step of it as a
distributed training job. A thin adapter over the launcher's submit (cellpipe.launcher.
submitting): this module turns flags into SubmitChoices and presents what came back.

Settings, in the one precedence: the command's options > the notebook's metadata.cellpipe >
c.CellPipe.* in the Jupyter config files (the server extension's own) > defaults.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.cluster import SubmitOptions
from cellpipe.launcher.config import load_config
from cellpipe.launcher.errors import UserError
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.store import cellpipe_home, open_store
from cellpipe.launcher.submitting import (
    SubmitChoices,
    SubmitFailed,
    plan_submit,
    submit_warnings,
)
from cellpipe.launcher.vocabulary import KFP_ENGINE, RunStatus

from .outcome import EXIT_FAILED, EXIT_OK, Outcome, print_problems

SUBMIT_JSON_KEYS = ("run_id", "engine", "status", "error", "image", "gpus", "external", "links")


def submit_options(args: argparse.Namespace) -> SubmitOptions:
    """The flags as the launcher's SubmitOptions."""
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.gpus_per_worker is not None and args.gpus_per_worker < 0:
        raise UserError("--gpus-per-worker cannot be negative")
    return SubmitOptions(
        engine=args.engine,
        namespace=args.namespace,
        kube=KubeSettings(args.kubeconfig, args.context, args.namespace),
        host=args.host,
        experiment=args.experiment,
        ui_url=args.ui_url,
        step=args.step,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        gpu_type=args.gpu_type,
        pvc=args.pvc,
        storage_size=args.storage_size,
        storage_class=args.storage_class,
        runtime=args.runtime,
    )


def submit_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    config = load_config()
    notebook = Path(args.notebook)
    prepared = prepare_file(notebook, config, registry=args.registry)
    choices = SubmitChoices(
        submit_options(args),
        gpus=list(args.gpu),
        image=args.image,
        builder=args.builder,
        dry_run=args.dry_run,
    )
    if not prepared.pipeline.errors:  # the errors alone (cellpipe.cli prints them): first
        print_problems(err, str(notebook), prepared.pipeline, submit_warnings(prepared, choices))
    prepared.raise_for_errors()
    choices.parameters = prepared.text_parameters(args.parameter)
    home = cellpipe_home()
    submit = plan_submit(prepared, choices, config, open_store(home), home)

    def say(message: str) -> None:
        prefix = "cellpipe: " if message.startswith("note:") else "  "
        print(f"{prefix}{message}", file=err, flush=True)

    if args.dry_run:
        submit.check_gpus(say)
        submission = submit.plan()
        data = _print_dry_run(args, submission, submit.request, out)
        return Outcome(EXIT_OK, data)
    try:
        record = submit.run(say)
    except SubmitFailed as exc:
        raise UserError(str(exc)) from None
    result = record.to_json()
    data = {k: result[k] for k in SUBMIT_JSON_KEYS}
    _print_submitted(args, record, submit.summary, data, out, err)
    return Outcome(EXIT_OK if record.status != RunStatus.FAILED else EXIT_FAILED, data)


def _print_dry_run(
    args: argparse.Namespace, submission: Any, request: Any, out: TextIO
) -> dict[str, Any]:
    data = {
        "engine": submission.engine,
        "dry_run": True,
        "summary": submission.summary,
        "images": request.images,
        "gpus": request.gpus,
        "parameters": request.parameters,
        "external": submission.external,
        "objects": submission.objects,
    }
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
        return data
    lines = [f"# cellpipe submit --dry-run: nothing was sent ({submission.engine})"]
    lines += [f"# {line}" for line in submission.summary]
    if not args.image:
        lines.append("# image: the one a build would produce (not built in a dry run)")
    out.write("\n".join(lines) + "\n" + submission.yaml)
    return data


def _print_submitted(
    args: argparse.Namespace,
    record: Any,
    summary: list[str],
    data: dict[str, Any],
    out: TextIO,
    err: TextIO,
) -> None:
    if record.status == RunStatus.FAILED:
        print(f"cellpipe: error: run {record.run_id} was not submitted: {record.error}", file=err)
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
        return
    if record.status == RunStatus.FAILED:
        print(f"run {record.run_id}: Failed (kept: `cellpipe status {record.run_id}`)", file=out)
        return
    external = record.external
    if record.engine == KFP_ENGINE:
        where = f"Kubeflow Pipelines run {external.get('run_id')}"
        version = "uploaded" if external.get("version_uploaded") else "unchanged, reused"
        details = [
            f"pipeline {external.get('pipeline')!r}, "
            f"version {external.get('version_name')!r} ({version})"
        ]
    else:
        where = f"{external.get('kind')} {external.get('name')} in {external.get('namespace')}"
        details = summary
    print(f"run {record.run_id}: {record.status} on {record.engine} ({where})", file=out)
    for line in details:
        print(f"  {line}", file=out)
    for link in record.links.values():
        print(f"  {link}", file=out)
    print(
        f"follow it: cellpipe status {record.run_id}; cellpipe logs {record.run_id} --follow",
        file=out,
    )
