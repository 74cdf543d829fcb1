"""A pipeline step as a distributed training job: what runs in the job's pods.

    python -m cellpipe.runtime.train_entry prepare --run-dir DIR --steps TASK[,TASK...]
    python -m cellpipe.runtime.train_entry wait --run-dir DIR [--timeout SECONDS]
    python -m cellpipe.runtime.train_entry train --run-dir DIR --step TASK

`prepare` runs the steps before the trained one, once, in a Job of its own, and leaves their
values in DIR/values/TASK/NAME (DIR is on the storage every pod of the run mounts). `wait`
(each worker's init container) waits until `prepare` has ended and fails if it failed.
`train` runs the trained step on every worker; the worker of rank 0 keeps what the step sets
(every top-level name but modules, functions and classes: the model) in DIR/outputs/NAME, its
metrics in DIR/outputs/metrics.json, and says both in its termination message, which the
cluster keeps in the pod's status. Each step's report (its cells' outputs, REPORT_FILE, what
the executed notebook is made from) is beside its values: DIR/values/TASK/ for the steps
before, DIR/outputs/ for the trained one, from the worker of rank 0 only (also when the step
or its imports fail). The launcher cannot read the claim from outside the cluster; a pod
mounting it (or the notebook server, where it mounts the claim) can.

Parameters arrive as JSON in $CELLPIPE_PARAMETERS (data, never code); the steps' code is the
bundle baked into the image ($CELLPIPE_BUNDLE). Imports nothing of cellpipe but the runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import values
from .kfp_entry import load_bundle
from .step import REPORT_FILE, StepFailed, fresh_main, run_prelude, run_step, write_report

PREPARE_RESULT = "prepare.json"
TRAIN_RESULT = "result.json"
TERMINATION_LOG = "/dev/termination-log"
# torchrun and the training operator set RANK; MPI its own; Kubeflow Trainer PET_NODE_RANK
# (one process per node here); an indexed Job its completion index
RANK_VARIABLES = (
    "RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "PMIX_RANK",
    "PET_NODE_RANK",
)


def rank() -> int:
    """This worker's rank as the job's operator tells it (PyTorch, MPI, XGBoost, TF)."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            config = json.loads(tf_config)
            task = config.get("task") or {}
            kind, index = task.get("type"), int(task.get("index", 0))
        except (ValueError, TypeError, AttributeError):
            return 0
        if kind in ("chief", "master"):
            return 0
        has_chief = any(k in (config.get("cluster") or {}) for k in ("chief", "master"))
        return index + (1 if has_chief else 0) if kind == "worker" else 1 + index
    completion = os.environ.get("JOB_COMPLETION_INDEX", "")
    return int(completion) if completion.isdigit() else 0


def _parameters() -> dict[str, Any]:
    given: dict[str, Any] = json.loads(os.environ.get("CELLPIPE_PARAMETERS") or "{}")
    return given


def _enter_workdir(bundle: dict[str, Any]) -> None:
    workdir = os.environ.get("CELLPIPE_WORKDIR") or bundle.get("workdir") or "."
    if Path(workdir).is_dir():
        os.chdir(workdir)
        sys.path.insert(0, str(Path(workdir).resolve()))


def _run_one(
    bundle: dict[str, Any],
    task: str,
    run_dir: Path,
    output_dir: Path,
    parameters: dict[str, Any],
    keep_results: bool = False,
) -> dict[str, float]:
    """Run one step; its handed-on values go to `output_dir`. With `keep_results`, so do the
    other names its cells set (the trained step's model, which no later step reads)."""
    step = bundle["steps"][task]

    def load(name: str) -> Any:
        return values.load(run_dir / "values" / step["received_from"][name] / name)

    output_dir.mkdir(parents=True, exist_ok=True)
    namespace = fresh_main()
    try:
        run_prelude(bundle, namespace)
    except StepFailed as exc:  # the report (REPORT_FILE) says where, as run_step's would
        write_report(output_dir / REPORT_FILE, exc.cells, [], 0.0, exc)
        raise
    before = {name: id(value) for name, value in namespace.items()}
    wanted = {n: parameters.get(n, bundle["parameters"][n]["default"]) for n in step["parameters"]}
    result = run_step(bundle, task, namespace, wanted, load, output_dir)
    if keep_results:
        _keep_results(step, namespace, before, output_dir)
    return result.metrics


def _keep_results(
    step: dict[str, Any], namespace: dict[str, Any], before: dict[str, int], output_dir: Path
) -> list[str]:
    """Save every top-level name the step's cells set (not modules, functions or classes)."""
    import types

    skip = set(step["hands_on"]) | set(step["receives"]) | set(step["parameters"])
    kept = []
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in skip or before.get(name) == id(value):
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, type)):
            continue
        try:
            values.save(value, output_dir / name)
        except Exception as exc:  # kept what can be kept; say what could not
            print(f"cellpipe: {name!r} is not kept with the outputs: {exc}", flush=True)
            continue
        kept.append(name)
    return kept


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


def prepare(run_dir: Path, tasks: list[str]) -> int:
    bundle = load_bundle()
    _enter_workdir(bundle)
    parameters = _parameters()
    metrics: dict[str, float] = {}
    for task in tasks:
        print(f"cellpipe: step {bundle['steps'][task]['name']!r} starts", flush=True)
        started = time.time()
        try:
            metrics.update(_run_one(bundle, task, run_dir, run_dir / "values" / task, parameters))
        except StepFailed as exc:
            print(exc.details, file=sys.stderr, flush=True)
            _write_atomically(
                run_dir / PREPARE_RESULT,
                {"status": "Failed", "step": task, "error": str(exc), "metrics": metrics},
            )
            return 1
        print(f"cellpipe: step done in {time.time() - started:.1f} s", flush=True)
    _write_atomically(
        run_dir / PREPARE_RESULT, {"status": "Succeeded", "steps": tasks, "metrics": metrics}
    )
    return 0


def wait(run_dir: Path, timeout: float, interval: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    result_path = run_dir / PREPARE_RESULT
    while not result_path.exists():
        if time.monotonic() > deadline:
            print(f"cellpipe: the steps before this one did not end in {timeout:.0f} s")
            return 1
        time.sleep(interval)
    result = json.loads(result_path.read_text())
    if result.get("status") != "Succeeded":
        print(f"cellpipe: a step before this one failed: {result.get('error')}")
        return 1
    return 0


def train(run_dir: Path, task: str) -> int:
    bundle = load_bundle()
    _enter_workdir(bundle)
    mine = rank()
    keep = mine == 0
    scratch = Path(tempfile.mkdtemp(prefix="cellpipe-train-"))
    output_dir = run_dir / "outputs" if keep else scratch
    try:
        metrics = _run_one(bundle, task, run_dir, output_dir, _parameters(), keep_results=keep)
    except StepFailed as exc:
        print(exc.details, file=sys.stderr, flush=True)
        if keep:
            _termination({"status": "Failed", "error": str(exc)[:2000]})
        return 1
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if keep:
        outputs = sorted(
            p.name for p in output_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        _write_atomically(output_dir / "metrics.json", metrics)
        summary = {
            "status": "Succeeded",
            "metrics": metrics,
            "outputs": outputs,
            "dir": str(output_dir),
        }
        _write_atomically(run_dir / TRAIN_RESULT, summary)
        _termination(summary)
    return 0


def _termination(message: dict[str, Any]) -> None:
    """The pod's termination message (4 KiB at most): what `cellpipe status` reads."""
    text = json.dumps(message)[:4000]
    try:
        with open(TERMINATION_LOG, "w") as handle:
            handle.write(text)
    except OSError:
        pass
    print(f"cellpipe-result: {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cellpipe.runtime.train_entry")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "wait", "train"):
        command = commands.add_parser(name)
        command.add_argument("--run-dir", required=True, type=Path)
    commands.choices["prepare"].add_argument("--steps", required=True)
    commands.choices["train"].add_argument("--step", required=True)
    commands.choices["wait"].add_argument("--timeout", type=float, default=24 * 3600)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.run_dir, [t for t in args.steps.split(",") if t])
    if args.command == "wait":
        return wait(args.run_dir, args.timeout)
    return train(args.run_dir, args.step)


if __name__ == "__main__":
    sys.exit(main())
