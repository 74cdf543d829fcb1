"""cellpipe's fast local executor: one warm process, a fork per step.

The process runs the imports and functions cells once; every step then starts as a fork of
that warm process, so neither the interpreter nor the step's libraries load again. Branches
that do not depend on each other run side by side (bounded by the cores). Where forking is
unsafe (threads already started, CUDA initialised, no fork on this platform) each step runs
in a fresh process instead: same code, same results, only slower.

    python -m cellpipe.runtime.local PLAN.json     # events as JSON lines on --events-fd
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from . import values
from .step import StepFailed, fresh_main, run_prelude, run_step

RESULT_FILE = "cellpipe-result.json"
LOG_FILE = "cellpipe-log.txt"


# Numeric libraries start thread pools when imported (OpenBLAS, OpenMP, MKL; Arrow's jemalloc
# starts a background thread), and a process with threads is not safe to fork. The warm
# process imports with these pools at one thread, so it can fork; each forked step then gets
# its thread pools back (threadpoolctl, where installed) and the user's own settings.
_THREAD_POOL_SETTINGS = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}


def quiet_thread_pools() -> dict[str, str | None]:
    """Sets single-threaded pools where the user set nothing; returns what was there before."""
    before = {name: os.environ.get(name) for name in _THREAD_POOL_SETTINGS}
    for name, value in _THREAD_POOL_SETTINGS.items():
        os.environ.setdefault(name, value)
    return before


def restore_thread_pools(before: dict[str, str | None]) -> None:
    """In a forked step: the user's environment back, and thread pools sized to the cores."""
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    pools_quieted = any(before[n] is None for n in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))
    if pools_quieted and "numpy" in sys.modules:  # a BLAS is loaded: give it its threads
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return  # without threadpoolctl the step's numeric pools stay at one thread
        threadpool_limits(limits=os.cpu_count() or 1)


def fork_is_safe() -> tuple[bool, str]:
    """Whether a fork of this process can run a step correctly, and why not."""
    if not hasattr(os, "fork"):
        return False, "this platform has no fork"
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch.cuda, "is_initialized", lambda: False)():
        return False, "CUDA is initialised"
    tasks = Path("/proc/self/task")
    if tasks.is_dir() and len(os.listdir(tasks)) > 1:
        return False, "threads are running (a numeric library's thread pool)"
    return True, ""


class Executor:
    def __init__(self, plan: dict[str, Any], events: TextIO) -> None:
        self.plan = plan
        self.bundle: dict[str, Any] = json.loads(Path(plan["bundle"]).read_text())
        self.events = events
        self.steps = self.bundle["steps"]
        self.done: set[str] = set(plan.get("cached", []))
        self.failed: set[str] = set()
        self.pending = [t for t in plan["run"] if t not in self.done]
        self.running: dict[int, tuple[str, float, subprocess.Popen[bytes] | None]] = {}
        self.max_parallel = max(1, int(plan.get("max_parallel") or os.cpu_count() or 1))

    def emit(self, **event: Any) -> None:
        self.events.write(json.dumps({"time": time.time(), **event}) + "\n")
        self.events.flush()

    def run(self) -> int:
        os.chdir(self.plan["workdir"])
        sys.path.insert(0, self.plan["workdir"])  # the notebook's own modules, as in Jupyter
        namespace = fresh_main()
        self.user_environment = quiet_thread_pools()
        try:
            run_prelude(self.bundle, namespace)
        except StepFailed as exc:
            self.emit(event="prelude_failed", error=str(exc), details=exc.details)
            return 1
        safe, why = fork_is_safe()
        if not safe:
            self.emit(event="no_fork", reason=why)
        self.namespace = namespace
        self.forking = safe
        signal.signal(signal.SIGTERM, self._cancel)
        while self.pending or self.running:
            self._start_ready()
            if self.running:
                self._wait_one()
        return 1 if self.failed else 0

    def _ready(self, task: str) -> bool:
        return all(parent in self.done for parent in self.steps[task]["after"])

    def _blocked(self, task: str) -> bool:
        return any(p in self.failed for p in self.steps[task]["after"])

    def _start_ready(self) -> None:
        for task in list(self.pending):
            if self._blocked(task):
                self.pending.remove(task)
                self.failed.add(task)  # so that its own dependants are cancelled too
                self.emit(
                    event="finished",
                    task=task,
                    status="Cancelled",
                    error="a step it runs after failed",
                )
            elif self._ready(task) and len(self.running) < self.max_parallel:
                self.pending.remove(task)
                self._start(task)

    def _start(self, task: str) -> None:
        output_dir = Path(self.plan["outputs"][task])
        output_dir.mkdir(parents=True, exist_ok=True)
        self.emit(event="started", task=task)
        started = time.perf_counter()
        if self.forking:
            pid = os.fork()
            if pid == 0:  # the child: run the step and leave without cleanup handlers
                os._exit(self._child(task, output_dir))
            self.running[pid] = (task, started, None)
        else:
            with open(output_dir / LOG_FILE, "wb") as log:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "cellpipe.runtime.local",
                        "--one",
                        task,
                        self.plan["path"],
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._user_env(),
                )
            self.running[process.pid] = (task, started, process)

    def _user_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name, value in self.user_environment.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def _child(self, task: str, output_dir: Path) -> int:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        restore_thread_pools(self.user_environment)
        log = os.open(output_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        return run_one(self.plan, self.bundle, task, self.namespace, output_dir)

    def _wait_one(self) -> None:
        pid, status = os.wait()
        if pid not in self.running:
            return
        task, started, _ = self.running.pop(pid)
        seconds = time.perf_counter() - started
        result_path = Path(self.plan["outputs"][task]) / RESULT_FILE
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        if os.waitstatus_to_exitcode(status) == 0 and result.get("status") == "Succeeded":
            self.done.add(task)
        else:
            self.failed.add(task)
            result.setdefault("error", f"the step's process ended with status {status}")
            result["status"] = "Failed"
        self.emit(event="finished", task=task, **{**result, "seconds": seconds})

    def _cancel(self, *_: Any) -> None:
        for pid in list(self.running):
            with _ignore_missing():
                os.kill(pid, signal.SIGTERM)
        for task in [*self.pending, *(t for t, _, _ in self.running.values())]:
            self.emit(event="finished", task=task, status="Cancelled", error="cancelled")
        os._exit(143)


class _ignore_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: Any) -> bool:
        return kind is ProcessLookupError


def run_one(
    plan: dict[str, Any],
    bundle: dict[str, Any],
    task: str,
    namespace: dict[str, Any],
    output_dir: Path,
) -> int:
    """Run one step in this process; writes RESULT_FILE; returns the exit status."""
    step = bundle["steps"][task]
    sources = plan["inputs"][task]  # name -> directory holding that value

    def load_input(name: str) -> Any:
        return values.load(Path(sources[name]))

    try:
        result = run_step(
            bundle, task, namespace, plan["parameters"], load_input, output_dir, echo=sys.stdout
        )
    except StepFailed as exc:
        print(exc.details, file=sys.stderr)
        record: dict[str, Any] = {"status": "Failed", "error": str(exc), "details": exc.details}
        (output_dir / RESULT_FILE).write_text(json.dumps(record))
        return 1
    except BaseException as exc:  # the runtime itself: still a result, never a silent death
        record = {
            "status": "Failed",
            "error": f"cellpipe runtime error in step "
            f"{step['name']!r}: {type(exc).__name__}: {exc}",
        }
        (output_dir / RESULT_FILE).write_text(json.dumps(record))
        return 1
    record = {
        "status": "Succeeded",
        "outputs": result.outputs,
        "metrics": result.metrics,
        "seconds": result.seconds,
    }
    (output_dir / RESULT_FILE).write_text(json.dumps(record))
    return 0


def _run_fresh(plan_path: str, task: str) -> int:
    """A step in a process of its own (where forking is unsafe): prelude, then the step."""
    plan = json.loads(Path(plan_path).read_text())
    bundle = json.loads(Path(plan["bundle"]).read_text())
    os.chdir(plan["workdir"])
    sys.path.insert(0, plan["workdir"])
    output_dir = Path(plan["outputs"][task])
    namespace = fresh_main()
    try:
        run_prelude(bundle, namespace)
    except StepFailed as exc:
        (output_dir / RESULT_FILE).write_text(
            json.dumps({"status": "Failed", "error": str(exc), "details": exc.details})
        )
        return 1
    return run_one(plan, bundle, task, namespace, output_dir)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--one"]:
        return _run_fresh(args[2], args[1])
    plan_path = args[0]
    plan = json.loads(Path(plan_path).read_text())
    plan["path"] = plan_path
    events_fd = int(plan.get("events_fd", 1))
    with open(events_fd, "w", buffering=1, closefd=False) as events:
        return Executor(plan, events).run()


if __name__ == "__main__":
    sys.exit(main())
