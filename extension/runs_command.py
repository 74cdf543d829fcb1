"""`cellpipe runs | status | logs | cancel | delete | gpus`: follow runs of every engine and
see the cluster's GPUs. Thin adapters over cellpipe.launcher.tracking and .gpus."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.errors import UserError
from cellpipe.submit_command import add_cluster_arguments, load_config

EXIT_CLUSTER_ERROR = 1


def add_runs_arguments(commands: Any) -> None:
    runs = commands.add_parser(
        "runs", help="list runs of every engine", description="List runs, newest first."
    )
    runs.add_argument("--notebook", metavar="NOTEBOOK", help="only this notebook's runs")
    runs.add_argument("--engine", metavar="ENGINE", help="only runs of this engine")
    runs.add_argument("--status", metavar="STATUS", help="only runs with this status")
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="default: 50")
    runs.add_argument(
        "--refresh", action="store_true", help="ask the engines for unfinished runs' status"
    )
    runs.add_argument("--format", choices=["text", "json"], default="text")
    add_cluster_arguments(runs)

    status = commands.add_parser(
        "status",
        help="a run's status and its steps'",
        description="Show a run (RUN is its id, or the start of it), asking its engine first.",
    )
    status.add_argument("run", metavar="RUN")
    status.add_argument("--format", choices=["text", "json"], default="text")
    status.add_argument(
        "--no-refresh", action="store_true", help="show the stored record; ask no engine"
    )
    status.add_argument(
        "--compiled", action="store_true", help="print the compiled pipeline (or job) kept"
    )
    add_cluster_arguments(status)

    logs = commands.add_parser(
        "logs",
        help="what a run's steps printed",
        description="Print a step's log (or the run's own); cluster runs' from the step pods.",
    )
    logs.add_argument("run", metavar="RUN")
    logs.add_argument("--step", metavar="STEP", help="a step's name or task name")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing while the run goes on"
    )
    add_cluster_arguments(logs)

    cancel = commands.add_parser("cancel", help="stop a run", description="Stop a run.")
    cancel.add_argument("run", metavar="RUN")
    cancel.add_argument("--format", choices=["text", "json"], default="text")
    add_cluster_arguments(cancel)

    delete = commands.add_parser(
        "delete",
        help="forget a run (and delete it in its engine)",
        description="Delete a run: its record and folder here, and what it made in its "
        "engine (the KFP run; the training job and the claim cellpipe created for it).",
    )
    delete.add_argument("run", metavar="RUN")
    delete.add_argument(
        "--keep-remote", action="store_true", help="leave the run in its engine; forget it here"
    )
    delete.add_argument(
        "--force", action="store_true", help="delete a run that is still going on here too"
    )
    add_cluster_arguments(delete)

    gpus = commands.add_parser(
        "gpus",
        help="the cluster's GPU types, totals and free counts",
        description="List each GPU type of the cluster's nodes with its resource name, total, "
        "free (allocatable minus what running pods request) and nodes; where nodes may not "
        "be listed, the configured c.CellPipe.gpu_types with counts unknown.",
    )
    gpus.add_argument("--format", choices=["text", "json"], default="text")
    gpus.add_argument("--kubeconfig", metavar="PATH")
    gpus.add_argument("--context", metavar="NAME")


def _context(args: argparse.Namespace) -> tuple[Any, Path, Any, Any]:
    from cellpipe.launcher.k8s import KubeSettings
    from cellpipe.launcher.kfp_engine import KfpSettings
    from cellpipe.launcher.store import RunStore, cellpipe_home

    config = load_config()
    home = cellpipe_home()
    store = RunStore(home / "runs.sqlite")
    kube = KubeSettings(args.kubeconfig, args.context, None)
    kfp = KfpSettings.from_environment(
        host=getattr(args, "host", None) or config.kfp_host, token=config.kfp_token, kube=kube
    )
    return store, home, kube, kfp


def _find(store: Any, text: str) -> Any:
    from cellpipe.launcher.tracking import RunNotFound, find_run

    try:
        return find_run(store, text)
    except RunNotFound as exc:
        raise UserError(str(exc)) from None


def _tracker(record: Any, store: Any, home: Path, kube: Any, kfp: Any) -> Any:
    from cellpipe.launcher.tracking import tracker_for

    return tracker_for(record, store, home, kube=kube, kfp=kfp)


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def runs_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.launcher.tracking import refresh_quietly
    from cellpipe.launcher.vocabulary import FINISHED, LOCAL_ENGINES

    store, home, kube, kfp = _context(args)
    notebook = str(Path(args.notebook).resolve()) if args.notebook else None
    records = store.list(notebook)
    if args.engine:
        records = [r for r in records if r.engine == args.engine]
    warnings = []
    shown = []
    for record in records:
        if record.status not in FINISHED and (args.refresh or record.engine in LOCAL_ENGINES):
            record, problem = refresh_quietly(_tracker(record, store, home, kube, kfp), record)
            if problem:
                warnings.append(f"{record.run_id}: {problem}")
        if args.status and record.status != args.status:
            continue
        shown.append(record)
        if len(shown) >= args.limit:
            break
    for warning in warnings:
        print(f"cellpipe: warning: showing the last known status of {warning}", file=err)
    if args.format == "json":
        print(json.dumps({"runs": [_run_json(r) for r in shown]}, indent=2), file=out)
        return 0
    if not shown:
        print("no runs", file=out)
        return 0
    print(
        f"{'RUN':<26} {'ENGINE':<11} {'STATUS':<10} {'CREATED':<20} PIPELINE (NOTEBOOK)", file=out
    )
    for record in shown:
        print(
            f"{record.run_id:<26} {record.engine:<11} {record.status:<10} "
            f"{_when(record.created):<20} {record.pipeline} ({Path(record.notebook).name})",
            file=out,
        )
    return 0


def _run_json(record: Any) -> dict[str, Any]:
    result: dict[str, Any] = record.to_json()
    return result


def status_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.launcher.tracking import refresh_quietly

    store, home, kube, kfp = _context(args)
    record = _find(store, args.run)
    problem = None
    if not args.no_refresh:
        record, problem = refresh_quietly(_tracker(record, store, home, kube, kfp), record)
    if problem:
        print(f"cellpipe: warning: showing the last known status: {problem}", file=err)
    if args.compiled:
        out.write(record.compiled or "")
        return 0
    if args.format == "json":
        result = _run_json(record)
        result["refreshed"] = not args.no_refresh and problem is None
        result["refresh_error"] = problem
        print(json.dumps(result, indent=2), file=out)
        return 0
    print(f"run {record.run_id}: {record.status} ({record.engine})", file=out)
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
        print(f"  step {name} [{step.task}]: {step.status}{extra}{seconds}{error}", file=out)
    for name, value in record.metrics.items():
        print(f"  {name} = {value:g}", file=out)
    if record.engine in ("pytorchjob", "tfjob", "xgboostjob", "mpijob", "trainjob"):
        print(
            f"  outputs: PVC {record.external.get('pvc')}, runs/{record.run_id}/outputs",
            file=out,
        )
    else:
        print(f"  outputs: {record.outputs}", file=out)
    return 0


def logs_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    store, home, kube, kfp = _context(args)
    record = _find(store, args.run)
    if args.step is not None and not any(
        args.step in (s.name, s.task) for s in record.steps.values()
    ):
        names = ", ".join(repr(s) for s in record.steps)
        raise UserError(f"run {record.run_id} has no step {args.step!r}; its steps are {names}")
    tracker = _tracker(record, store, home, kube, kfp)
    for text in tracker.logs(record, args.step, args.follow):
        out.write(text)
        out.flush()
    return 0


def cancel_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.launcher.k8s import ClusterError
    from cellpipe.launcher.tracking import refresh_quietly
    from cellpipe.launcher.vocabulary import FINISHED

    store, home, kube, kfp = _context(args)
    record = _find(store, args.run)
    tracker = _tracker(record, store, home, kube, kfp)
    record, _ = refresh_quietly(tracker, record)
    if record.status in FINISHED:
        raise UserError(f"run {record.run_id} has already ended: {record.status}")
    try:
        record = tracker.cancel(record)
    except ClusterError as exc:
        print(f"cellpipe: error: cannot cancel run {record.run_id}: {exc}", file=err)
        return EXIT_CLUSTER_ERROR
    if args.format == "json":
        print(json.dumps(_run_json(record), indent=2), file=out)
    else:
        print(f"run {record.run_id}: {record.status}", file=out)
    return 0


def delete_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.launcher.k8s import ClusterError
    from cellpipe.launcher.tracking import refresh_quietly
    from cellpipe.launcher.vocabulary import FINISHED

    store, home, kube, kfp = _context(args)
    record = _find(store, args.run)
    tracker = _tracker(record, store, home, kube, kfp)
    record, _ = refresh_quietly(tracker, record)
    if record.status not in FINISHED and not args.force:
        raise UserError(
            f"run {record.run_id} is {record.status}; cancel it first (`cellpipe cancel "
            f"{record.run_id}`), or delete it anyway with --force"
        )
    deleted: list[str] = []
    if not args.keep_remote:
        try:
            deleted = tracker.delete(record)
        except ClusterError as exc:
            print(
                f"cellpipe: error: run {record.run_id} is kept: deleting it in its engine "
                f"failed: {exc} (--keep-remote forgets it here only)",
                file=err,
            )
            return EXIT_CLUSTER_ERROR
    store.delete(record.run_id)
    print(f"deleted run {record.run_id}", file=out)
    for what in deleted:
        print(f"  and {what}", file=out)
    return 0


def gpus_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.launcher import gpus
    from cellpipe.launcher.k8s import KubeSettings

    config = load_config()
    types = gpus.configured_types(config.gpu_types, config.gpu_resource)
    inventory = gpus.cluster_inventory(
        KubeSettings(args.kubeconfig, args.context, None),
        types,
        config.gpu_resource,
        config.gpu_label,
    )
    if args.format == "json":
        print(json.dumps(inventory.to_json(), indent=2), file=out)
        return 0
    if inventory.message:
        print(f"cellpipe: note: {inventory.message}", file=err)
    data = inventory.to_json()
    if not data["types"]:
        print("no GPUs" + (" configured" if inventory.source == "configuration" else ""), file=out)
        return 0
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
    return 0
