"""`cellpipe runs | status | logs | cancel | delete | gpus`: follow runs of every engine and
see the cluster's GPUs. Thin adapters over cellpipe.launcher.tracking.Runs and .gpus."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.config import load_config
from cellpipe.launcher.errors import ClusterUnreachable, UserError
from cellpipe.launcher.gpus import gpu_inventory
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.run_logs import run_log
from cellpipe.launcher.tracking import Runs
from cellpipe.launcher.tuning import is_tune_id
from cellpipe.launcher.vocabulary import FINISHED

from .outcome import EXIT_FAILED, EXIT_OK, Outcome


def _runs(args: argparse.Namespace) -> Runs:
    config = load_config()
    if getattr(args, "host", None):
        config.kfp_host = args.host
    return Runs(config, kube=KubeSettings(args.kubeconfig, args.context, None))


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def runs_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    notebook = str(Path(args.notebook).resolve()) if args.notebook else None
    shown, warnings = _runs(args).list_runs(
        notebook, engine=args.engine, status=args.status, limit=args.limit, refresh=args.refresh
    )
    for warning in warnings:
        print(f"cellpipe: warning: showing the last known status of {warning}", file=err)
    from .serve import print_services_table, services_json

    data = {"runs": [r.to_json() for r in shown], "services": services_json()}
    from .tune import print_tunes, tunes_listed  # tunes: their trials are among the runs

    tunes = tunes_listed(notebook, args.status, args.engine)
    data["tunes"] = [t.to_json() for t in tunes]
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
        return Outcome(EXIT_OK, data)
    if not shown and not tunes:
        print("no runs", file=out)
        return Outcome(EXIT_OK, data)
    if shown:
        _print_runs_table(shown, out)
    if tunes:
        print_tunes(tunes, out)
    if data["services"]:
        print_services_table(data["services"], out)
    return Outcome(EXIT_OK, data)


def _print_runs_table(shown: list[Any], out: TextIO) -> None:
    """The runs in 80 columns (or the terminal's width): the pipeline and notebook column
    gives way, cut short with an ellipsis, so the id, engine, status and time stay whole."""
    from .terminal import print_fitted_table, safe_text, status_text

    widths = {"RUN": max(len(r.run_id) for r in shown), "ENGINE": 9, "STATUS": 9, "CREATED": 11}
    rows = [
        [
            safe_text(record.run_id),
            safe_text(record.engine),
            status_text(record.status),
            safe_text(time.strftime("%m-%d %H:%M", time.localtime(record.created))),
            safe_text(_pipeline_and_notebook(record)),
        ]
        for record in shown
    ]
    print_fitted_table(out, widths, "PIPELINE (NOTEBOOK)", rows)


def _pipeline_and_notebook(record: Any) -> str:
    """The pipeline's name, and its notebook's where the name does not say it already."""
    notebook = Path(record.notebook)
    if notebook.stem.lower().replace("_", "-") == record.pipeline:
        return str(record.pipeline)
    return f"{record.pipeline} ({notebook.name})"


def status_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    if is_tune_id(args.run):
        from .tune import tune_status_command

        return tune_status_command(args, out, err)
    runs = _runs(args)
    record = runs.find(args.run)
    problem = None
    if not args.no_refresh:
        record, problem = runs.refresh(record)
    if problem:
        print(f"cellpipe: warning: showing the last known status: {problem}", file=err)
    result = record.to_json()
    from .serve import print_services, services_json

    result["services"] = services_json(record.run_id)
    result["refreshed"] = not args.no_refresh and problem is None
    result["refresh_error"] = problem
    if args.compiled:
        out.write(record.compiled or "")
        return Outcome(EXIT_OK, result)
    if args.format == "json":
        print(json.dumps(result, indent=2), file=out)
        return Outcome(EXIT_OK, result)
    _print_with_status(out, f"run {record.run_id}: ", record.status, f" ({record.engine})")
    print(f"  notebook: {record.notebook} ({record.pipeline})", file=out)
    print(f"  created: {_when(record.created)}; finished: {_when(record.finished)}", file=out)
    if record.image:
        print(f"  image: {record.image}", file=out)
    if record.parameters:
        print(f"  parameters: {json.dumps(record.parameters)}", file=out)
    for name, gpu in record.gpus.items():
        kind = f":{gpu['type']}" if gpu.get("type") else ""
        print(f"  gpus: {name} = {gpu['count']}{kind} ({gpu.get('resource')})", file=out)
    for key in ("run_id", "kind", "name", "namespace", "pvc"):
        if record.external.get(key):
            print(f"  {key.replace('_', ' ')}: {record.external[key]}", file=out)
    for name, link in record.links.items():
        print(f"  {name}: {link}", file=out)
    if record.error:
        print(f"  error: {record.error}", file=out)
    for name, step in record.steps.items():
        extra = " (cached)" if step.cached else ""
        seconds = f" {step.seconds:.1f} s" if step.seconds is not None else ""
        error = f": {step.error}" if step.error and step.status != "Succeeded" else ""
        _print_with_status(
            out, f"  step {name} [{step.task}]: ", step.status, extra + seconds + error
        )
    for name, value in record.metrics.items():
        print(f"  {name} = {value:g}", file=out)
    if runs.config.trains_one_step(record.engine):
        print(
            f"  outputs: PVC {record.external.get('pvc')}, runs/{record.run_id}/outputs",
            file=out,
        )
    else:
        print(f"  outputs: {record.outputs}", file=out)
    note = record.external.get("notebook_note")  # a cluster run's (launcher/kfp_reports.py)
    if record.executed_notebook:
        print(f"  executed notebook: {record.executed_notebook}", file=out)
        if note:
            print(f"  executed notebook: {note}", file=out)
    elif note:
        print(f"cellpipe: warning: no executed notebook: {note}", file=err)
    print_services(result["services"], out, indent="  ")
    return Outcome(EXIT_OK, result)


def _print_with_status(out: TextIO, before: str, status: str, after: str) -> None:
    """A line with a status in it, the status in its colour (where colour is on)."""
    from .terminal import console_for, safe_text, status_text

    console_for(out).print(safe_text(before) + status_text(status) + safe_text(after))


def logs_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    """A step's log with --step; otherwise the run's whole log (launcher/run_logs.py): its
    own lines, then each step's output under a header, streamed while it runs with -f."""
    runs = _runs(args)
    record = runs.find(args.run)
    if args.step is not None:
        for text in runs.logs(record, args.step, args.follow):
            out.write(text)
            out.flush()
        return Outcome(EXIT_OK)
    from .logs_view import print_followed_log, print_run_log

    if args.follow:
        print_followed_log(runs, record, out)
    else:
        record, problem = runs.refresh(record)
        if problem:
            print(f"cellpipe: warning: showing the last known status: {problem}", file=err)
        print_run_log(run_log(runs, record), out)
    return Outcome(EXIT_OK)


def cancel_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    if is_tune_id(args.run):
        from .tune import tune_cancel_command

        return tune_cancel_command(args, out, err)
    runs = _runs(args)
    record = runs.find(args.run)
    try:
        record = runs.cancel(record)
    except ClusterUnreachable as exc:
        print(f"cellpipe: error: {exc}", file=err)
        return Outcome(EXIT_FAILED)
    data = record.to_json()
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
    else:
        print(f"run {record.run_id}: {record.status}", file=out)
    return Outcome(EXIT_OK, data)


def delete_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    if is_tune_id(args.run):
        from .tune import tune_delete_command

        return tune_delete_command(args, out, err)
    from .serve import delete_service, is_service_id, stop_services_of

    kube = KubeSettings(args.kubeconfig, args.context, None)
    if is_service_id(args.run):  # `cellpipe delete svc-...`: a service, not a run
        return delete_service(args.run, kube, out)
    runs = _runs(args)
    record = runs.find(args.run)
    record, _unreachable = runs.refresh(record)
    if record.status not in FINISHED and not args.force:
        raise UserError(
            f"run {record.run_id} is {record.status}; cancel it first (`cellpipe cancel "
            f"{record.run_id}`), or delete it anyway with --force"
        )
    try:
        stopped = stop_services_of(record.run_id, kube)  # they serve the run's models
        deleted = stopped + runs.delete(record, force=True, keep_remote=args.keep_remote)
    except ClusterUnreachable as exc:
        print(f"cellpipe: error: {exc} (--keep-remote forgets it here only)", file=err)
        return Outcome(EXIT_FAILED)
    print(f"deleted run {record.run_id}", file=out)
    for what in deleted:
        print(f"  and {what}", file=out)
    return Outcome(EXIT_OK, {"run_id": record.run_id, "deleted": deleted})


def gpus_command(args: argparse.Namespace, out: TextIO, err: TextIO, **_: Any) -> Outcome:
    inventory = gpu_inventory(load_config(), KubeSettings(args.kubeconfig, args.context, None))
    data = inventory.to_json()
    if args.format == "json":
        print(json.dumps(data, indent=2), file=out)
        return Outcome(EXIT_OK, data)
    if inventory.message:
        print(f"cellpipe: note: {inventory.message}", file=err)
    if not data["types"]:
        print("no GPUs" + (" configured" if inventory.source == "configuration" else ""), file=out)
        return Outcome(EXIT_OK, data)
    print(f"{'TYPE':<32} {'RESOURCE':<24} {'TOTAL':>5} {'FREE':>5}  NODES", file=out)
    for entry in data["types"]:
        name = entry["name"] or "(no type label)"
        if entry["display_name"] not in (entry["name"], None) and entry["name"]:
            name = f"{entry['name']} ({entry['display_name']})"
        total = "?" if entry["total"] is None else str(entry["total"])
        free = "?" if entry["free"] is None else str(entry["free"])
        nodes = ", ".join(
            f"{n['name']} {'?' if n['free'] is None else n['free']}/{n['total']}"
            + ("" if n["schedulable"] else " cordoned")
            for n in entry["nodes"]
        )
        print(f"{name:<32} {entry['resource']:<24} {total:>5} {free:>5}  {nodes or '-'}", file=out)
    return Outcome(EXIT_OK, data)
