"""The `local` engine: the compiled pipeline on this machine, fast, with a step cache.

It plans (which steps can reuse cached outputs), hands the plan to the runtime's warm
fork-per-step executor (cellpipe.runtime.local), and turns the executor's events into run
records. Steps write into the run's own folders (runs/RUN_ID/steps/TASK); a step that
succeeded is published to the step cache whole (launcher/step_cache.py), so runs of one
notebook at once never share a folder.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellpipe.converter.bundle import make_bundle
from cellpipe.converter.model import Pipeline
from cellpipe.converter.source import python_tree
from cellpipe.runtime.local import RUN_ID_VARIABLE
from cellpipe.runtime.step import REPORT_FILE
from cellpipe.runtime.version import VERSION as __version__

from .executed import PRELUDE_REPORT, StepOutcome, keep_source, read_report, write_executed
from .step_cache import StepCache, make_private, private_home
from .store import RunRecord, RunStore, StepRecord, cellpipe_home, open_store
from .vocabulary import UNFINISHED

RESULT_FILE = "cellpipe-result.json"
LOG_FILE = "cellpipe-log.txt"
_HASH_WHOLE_FILE_BELOW = 64 << 20
_STOP_SECONDS = 10.0  # a stopped executor's time to stop its steps before SIGKILL

log = logging.getLogger(__name__)

StepListener = Callable[[str, StepRecord], None]  # (event, step)


def guarded(listener: StepListener | None) -> StepListener | None:
    """The display, made harmless: one that breaks (a closed pipe) must not stop the run."""
    if listener is None:
        return None
    broken = False

    def guarded_listener(event: str, step: StepRecord) -> None:
        nonlocal broken
        if broken:
            return
        try:
            listener(event, step)
        except Exception as exc:  # the run matters more than its display
            broken = True
            log.warning("progress display stopped, the run goes on: %r", exc)

    return guarded_listener


@dataclass
class RunRequest:
    pipeline: Pipeline
    notebook: Path
    parameters: dict[str, Any]
    use_cache: bool = True
    max_parallel: int | None = None
    warnings: list[str] = field(default_factory=list)
    # For callers that must answer before the run is recorded (the server): the id to record
    # it under (store.new_run_id()), and an event that, once set, stops the run (Cancelled).
    run_id: str | None = None
    cancel: threading.Event | None = None
    # The hash of what runs when it is not the saved file (unsaved content the server was
    # sent); None: the notebook file's, as it is now.
    notebook_hash: str | None = None
    # The notebook content that runs (what was compiled), kept in the run folder for the
    # executed notebook; None: the notebook file, as it is when the run starts.
    source: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Parameters not given take the notebook's defaults, as in a KFP run.
        unknown = sorted(set(self.parameters) - set(self.pipeline.parameters))
        if unknown:
            raise ValueError(f"the pipeline has no parameters {', '.join(unknown)}")
        defaults = {name: p.default for name, p in self.pipeline.parameters.items()}
        self.parameters = {**defaults, **self.parameters}


def machine_has_gpu() -> bool:
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


class LocalEngine:
    name = "local"
    cancellable = True  # honours RunRequest.cancel while the run goes on

    def __init__(self, store: RunStore | None = None, home: Path | None = None) -> None:
        self.home = home or cellpipe_home()
        self.store = store or open_store(self.home)
        self.cache = StepCache(self.home)

    def run(self, request: RunRequest, listener: StepListener | None = None) -> RunRecord:
        listener = guarded(listener)
        pipeline = request.pipeline
        workdir = request.notebook.resolve().parent
        bundle = make_bundle(pipeline, str(workdir))
        private_home(self.home)  # values are unpickled from here: refused if others can write
        self.cache.clear_leftovers()
        record = self.store.create(
            str(request.notebook.resolve()),
            pipeline.settings.name,
            self.name,
            request.parameters,
            [(s.name, s.task) for s in pipeline.steps],
            self.home / "runs",
            request.run_id,
            notebook_hash=request.notebook_hash,
        )
        run_dir = make_private(Path(record.outputs))
        (run_dir / "bundle.json").write_text(json.dumps(bundle))
        keep_source(run_dir, request.source or request.notebook)
        plan, cached_results = self._plan(bundle, request, workdir, run_dir)
        by_task = {s.task: s for s in record.steps.values()}
        for task, result in cached_results.items():
            step = by_task[task]
            step.status, step.cached, step.seconds = "Succeeded", True, 0.0
            step.outputs = plan["outputs"][task]
            self.store.update_step(record.run_id, step)
            record.metrics.update(result.get("metrics", {}))
            if listener:
                listener("cached", step)
        record.status = "Running"
        self.store.update_run(record)
        self._execute(record, plan, by_task, run_dir, listener, request)
        return record

    # -- planning -------------------------------------------------------------------------
    def _plan(
        self, bundle: dict[str, Any], request: RunRequest, workdir: Path, run_dir: Path
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The executor's plan, and the results of the steps the cache gives."""
        keys = step_keys(bundle, request.parameters, workdir, request.pipeline)
        cached_results: dict[str, dict[str, Any]] = {}
        for task, step in bundle["steps"].items():
            if request.use_cache and step["cache"]:
                found = self.cache.lookup(keys[task], step["hands_on"])
                if found is not None:
                    cached_results[task] = found
        cached = list(cached_results)
        # A step that runs writes into this run's own folder; a cached one is read from the
        # cache, and runs/ID/steps/TASK links there (browseable either way).
        steps_dir = make_private(run_dir / "steps")
        outputs: dict[str, str] = {}
        for task, key in keys.items():
            here = steps_dir / task
            if task in cached_results:
                outputs[task] = str(self.cache.entry(key))
                here.symlink_to(outputs[task], target_is_directory=True)
            else:
                outputs[task] = str(make_private(here))
        inputs = {
            task: {n: str(Path(outputs[p]) / n) for n, p in step["received_from"].items()}
            for task, step in bundle["steps"].items()
        }
        plan = {
            "bundle": str(run_dir / "bundle.json"),
            "prelude_report": str(run_dir / PRELUDE_REPORT),
            "workdir": str(workdir),
            "parameters": request.parameters,
            "run": [t for t in bundle["steps"] if t not in cached],
            "cached": cached,
            "outputs": outputs,
            "inputs": inputs,
            "max_parallel": request.max_parallel,
            # what the launcher publishes to the cache once a step succeeds (by its key)
            "keys": keys,
            "publish": [
                t for t in bundle["steps"] if t not in cached and bundle["steps"][t]["cache"]
            ],
        }
        return plan, cached_results

    # -- execution ------------------------------------------------------------------------
    def _execute(
        self,
        record: RunRecord,
        plan: dict[str, Any],
        by_task: dict[str, StepRecord],
        run_dir: Path,
        listener: StepListener | None,
        request: RunRequest,
    ) -> None:
        cancel = request.cancel
        read_end, write_end = os.pipe()
        plan["events_fd"] = write_end
        plan["parent_pid"] = os.getpid()  # the executor stops when this process is gone
        plan_path = run_dir / "plan.json"
        plan_path.write_text(json.dumps(plan))
        with open(run_dir / "prelude-log.txt", "wb") as prelude_log:
            # A process group of its own: the run's processes, whatever the steps start, are
            # stopped together (and Ctrl-C reaches this process only, which stops them).
            process = subprocess.Popen(
                [sys.executable, "-m", "cellpipe.runtime.local", str(plan_path)],
                pass_fds=(write_end,),
                stdin=subprocess.DEVNULL,
                stdout=prelude_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, RUN_ID_VARIABLE: record.run_id},
            )
        os.close(write_end)
        if cancel is not None:
            threading.Thread(
                target=_terminate_when_cancelled,
                args=(cancel, process),
                name=f"cellpipe-cancel-{record.run_id}",
                daemon=True,
            ).start()
        try:
            with open(read_end, encoding="utf-8") as events:
                for line in events:
                    event = json.loads(line)
                    self._on_event(record, event, by_task, plan, listener, request.warnings)
            _end_group(process)
            if cancel is not None and cancel.is_set() and process.returncode != 0:
                record.error = "cancelled"
        except BaseException as exc:  # Ctrl-C, or anything else: stop the steps, keep the record
            process.terminate()
            _end_group(process, wait_seconds=_STOP_SECONDS)
            record.error = "cancelled" if isinstance(exc, KeyboardInterrupt) else repr(exc)
            self._finish(record, process.returncode, by_task, run_dir)
            if not isinstance(exc, KeyboardInterrupt):
                raise
        else:
            self._finish(record, process.returncode, by_task, run_dir)

    def _on_event(
        self,
        record: RunRecord,
        event: dict[str, Any],
        by_task: dict[str, StepRecord],
        plan: dict[str, Any],
        listener: StepListener | None,
        warnings: list[str],
    ) -> None:
        kind = event["event"]
        if kind == "prelude_failed":
            record.error = f"{event['error']}\n{event.get('details', '')}".strip()
            return
        if kind == "no_fork":
            record.error = None
            warnings.append(
                f"steps ran in fresh processes, each importing again, because {event['reason']} "
                "after the imports cell ran (slower, same results)"
            )
            return
        step = by_task[event["task"]]
        if kind == "started":
            step.status = "Running"
        else:
            step.status = event["status"]
            step.seconds = event.get("seconds")
            step.error = event.get("error")
            step.details = event.get("details")
            step.outputs = plan["outputs"][step.task]
            record.metrics.update(event.get("metrics") or {})
            if step.status == "Succeeded" and step.task in plan["publish"]:
                self._publish(plan["keys"][step.task], Path(step.outputs))
            unreadable = event.get("unreadable_input")
            if unreadable and (key := self.cache.owning_key(Path(unreadable))) is not None:
                self.cache.drop(key)
                step.error = (
                    f"{step.error}; the damaged value was dropped from the step cache, so the "
                    "next run makes it again"
                )
        self.store.update_step(record.run_id, step)
        if listener:
            listener(kind, step)

    def _publish(self, key: str, outputs: Path) -> None:
        try:
            self.cache.publish(key, outputs)
        except OSError as exc:  # the run's own outputs stand; only reuse is lost
            log.warning("cellpipe: the step cache did not take %s: %s", outputs, exc)

    def _finish(
        self,
        record: RunRecord,
        returncode: int | None,
        by_task: dict[str, StepRecord],
        run_dir: Path,
    ) -> None:
        if returncode not in (0, 1) and not record.error:
            log = (run_dir / "prelude-log.txt").read_text(errors="replace")[-4000:]
            record.error = f"the local executor stopped (status {returncode}):\n{log}"
        statuses = {s.status for s in by_task.values()}
        if record.error == "cancelled" or (statuses == {"Cancelled"} and returncode != 0):
            record.status = "Cancelled"
        elif statuses == {"Succeeded"} and returncode == 0:
            record.status = "Succeeded"
        else:
            record.status = "Failed"
            failed = [s for s in by_task.values() if s.status == "Failed"]
            if failed and not record.error:
                said = failed[0].error or ""
                prefix = f"step {failed[0].name!r} failed"
                record.error = said if said.startswith(prefix) else f"{prefix}: {said}"
            record.error = record.error or f"the local executor ended with status {returncode}"
        for step in by_task.values():
            if step.status in UNFINISHED:
                step.status = "Cancelled"
                step.error = step.error or "the run ended before this step finished"
                self.store.update_step(record.run_id, step)
        record.finished = time.time()
        self._write_executed(record, by_task, run_dir)
        self.store.update_run(record)

    def _write_executed(
        self, record: RunRecord, by_task: dict[str, StepRecord], run_dir: Path
    ) -> None:
        """The executed notebook, from the steps' reports (cached steps' too)."""
        try:
            bundle = json.loads((run_dir / "bundle.json").read_text(encoding="utf-8"))
            outcomes = [
                StepOutcome(
                    task,
                    step.name,
                    step.status,
                    step.cached,
                    read_report(Path(step.outputs or run_dir / "steps" / task) / REPORT_FILE),
                )
                for task, step in by_task.items()
            ]
            about = {"run": record.run_id, "engine": self.name, "status": record.status}
            write_executed(run_dir, bundle, outcomes, {**about, "parameters": record.parameters})
        except (OSError, ValueError) as exc:  # the run's record matters more than its notebook
            log.warning("cellpipe: no executed notebook for run %s: %s", record.run_id, exc)


def _end_group(process: subprocess.Popen[bytes], wait_seconds: float | None = None) -> None:
    """Wait for the executor to end (SIGKILL after `wait_seconds`), then SIGKILL what is
    left of the run's process group: what steps started and left running ends with the run."""
    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
    while deadline is not None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if deadline is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if hasattr(os, "waitid"):  # ended, but kept as a zombie: its group id is not reused
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _terminate_when_cancelled(cancel: threading.Event, process: subprocess.Popen[bytes]) -> None:
    """Stop the executor once `cancel` is set: it stops its steps and reports them Cancelled."""
    while process.poll() is None:
        if cancel.wait(0.1):
            process.terminate()
            return


def step_keys(
    bundle: dict[str, Any], parameters: dict[str, Any], workdir: Path, pipeline: Pipeline
) -> dict[str, str]:
    """A content key per step: same key, same outputs (so they can be reused)."""
    prelude = [c["source"] for c in bundle["prelude"]]
    bases = {s.task: s.base_image or pipeline.settings.base_image for s in pipeline.steps}
    keys: dict[str, str] = {}
    remaining = list(bundle["steps"])
    while remaining:
        for task in remaining:
            step = bundle["steps"][task]
            if all(p in keys for p in step["after"]):
                break
        remaining.remove(task)
        content = {
            "cellpipe": __version__,
            "python": sys.version,
            "prelude": prelude,
            "cells": [c["source"] for c in step["cells"]],
            "parameters": {n: parameters[n] for n in step["parameters"]},
            "receives": {n: keys[p] for n, p in step["received_from"].items()},
            "after": [keys[p] for p in step["after"]],
            "hands_on": step["hands_on"],
            "metrics": step["metrics"],
            # a model tagged since: the cached entry does not hold it, so the step runs again
            "models": step.get("models") or {},
            "image": bases[task],
            "files": _named_files(step["cells"], workdir),
            # A step that must not be cached gets a key of its own each run, so the steps
            # after it run again too.
            "nonce": None if step["cache"] else uuid.uuid4().hex,
        }
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
        keys[task] = f"{task}-{digest.hexdigest()[:20]}"
    return keys


def _named_files(cells: list[dict[str, Any]], workdir: Path) -> dict[str, str]:
    """Files in the notebook's folder that the step's code names in a string literal."""
    found: dict[str, str] = {}
    for cell in cells:
        tree = python_tree(cell["source"])  # IPython lines read as the Python they stand for
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if 0 < len(text) < 512 and "\n" not in text and "\0" not in text:
                    path = workdir / text
                    if path.is_file():
                        found[text] = _file_fingerprint(path)
    return found


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > _HASH_WHOLE_FILE_BELOW:
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(path.read_bytes()).hexdigest()
