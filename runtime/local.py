"""cellpipe's fast local executor: one warm process, a fork per step.

The process runs the imports and functions cells once; every step then starts as a fork of
that warm process, so neither the interpreter nor the step's libraries load again. Branches
that do not depend on each other run side by side (bounded by the cores). Where forking is
unsafe (threads already started, CUDA initialised, no fork on this platform) each step runs
in a fresh process instead: same code, same results, only slower.

The run's processes end with it. The launcher starts the executor as the leader of a process
group of its own; the executor stops when the launcher dies (a parent-death signal on Linux,
and it watches its parent and the launcher's end of the events pipe everywhere), and each
step dies with the executor (a parent-death signal). Stopped (SIGTERM), the executor stops its
steps and everything they started (its process group) before it ends.

    python -m cellpipe.runtime.local PLAN.json     # events as JSON lines on --events-fd
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from . import values
from .step import REPORT_FILE, StepFailed, fresh_main, run_prelude, run_step, write_report

RESULT_FILE = "cellpipe-result.json"
LOG_FILE = "cellpipe-log.txt"
RUN_ID_VARIABLE = "CELLPIPE_RUN_ID"  # in the environment of every process of a local run
_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 3.0  # after SIGTERM, the steps' time to end before SIGKILL
_WATCH_SECONDS = 1.0  # how often a waiting executor looks whether its launcher is still there


def die_with_parent(signum: int, parent: int | None) -> None:
    """Ask the kernel for `signum` when the parent process dies (Linux; elsewhere the
    executor watches its parent instead), and end at once if it has died already."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if parent is not None and os.getppid() != parent:  # it died before we asked
        os._exit(128 + signum)


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
        self.parent = plan.get("parent_pid")
        self.executor_pid = os.getpid()
        self._wake: tuple[int, int] | None = None  # the SIGCHLD self-pipe, while steps run

    def emit(self, **event: Any) -> None:
        self.events.write(json.dumps({"time": time.time(), **event}) + "\n")
        self.events.flush()

    def _emit_quietly(self, **event: Any) -> None:
        """An event while stopping: the launcher may be gone (a broken pipe)."""
        with contextlib.suppress(OSError, ValueError):
            self.emit(**event)

    def run(self) -> int:
        os.chdir(self.plan["workdir"])
        sys.path.insert(0, self.plan["workdir"])  # the notebook's own modules, as in Jupyter
        namespace = fresh_main()
        self.user_environment = quiet_thread_pools()
        try:
            run_prelude(self.bundle, namespace)
        except StepFailed as exc:
            if self.plan.get("prelude_report"):  # the failing cell, for the executed notebook
                write_report(Path(self.plan["prelude_report"]), exc.cells, [], 0.0, exc)
            self.emit(event="prelude_failed", error=str(exc), details=exc.details)
            return 1
        safe, why = fork_is_safe()
        if not safe:
            self.emit(event="no_fork", reason=why)
        self.namespace = namespace
        self.forking = safe
        signal.signal(signal.SIGTERM, self._cancel)
        # A step's end wakes the wait (SIGCHLD through a self-pipe), and so does the
        # launcher's end of the events pipe closing; between, the parent is looked at.
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        self._wake = (wake_read, wake_write)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            while self.pending or self.running:
                self._start_ready()
                if self.running:
                    self._wait_one()
        except BrokenPipeError:  # nobody reads the events: the launcher has gone
            self._stop("the process that ran the run stopped", orphaned=True)
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
                        str(self.executor_pid),
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
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for fd in (*(self._wake or ()), self.events.fileno()):
            with contextlib.suppress(OSError):
                os.close(fd)  # the executor's own: a step's processes must not hold them
        die_with_parent(signal.SIGKILL, self.executor_pid)
        restore_thread_pools(self.user_environment)
        log = os.open(output_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        # The step's process ends (os._exit) once its outputs are saved: their memory may go
        # back to the OS as they are written
        return run_one(self.plan, self.bundle, task, self.namespace, output_dir, release=True)

    def _wait_one(self) -> None:
        pid, status = self._wait_child()
        if pid not in self.running:
            return
        task, started, _ = self.running.pop(pid)
        seconds = time.perf_counter() - started
        result = _read_result(Path(self.plan["outputs"][task]) / RESULT_FILE)
        if os.waitstatus_to_exitcode(status) == 0 and result.get("status") == "Succeeded":
            self.done.add(task)
        else:
            self.failed.add(task)
            result.setdefault("error", f"the step's process ended with status {status}")
            result["status"] = "Failed"
        self.emit(event="finished", task=task, **{**result, "seconds": seconds})

    def _wait_child(self) -> tuple[int, int]:
        """The next step process to end, waking early when the launcher has gone."""
        watched = select.poll()
        if self._wake is not None:
            watched.register(self._wake[0], select.POLLIN)
        with contextlib.suppress(OSError, ValueError):
            watched.register(self.events.fileno(), 0)  # its errors only: the reader left
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                return pid, status
            if self._orphaned():
                self._stop("the process that ran the run stopped", orphaned=True)
            for fd, _ in watched.poll(_WATCH_SECONDS * 1000):
                if self._wake is not None and fd == self._wake[0]:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        os.read(fd, 512)
                elif not self._orphaned():  # not an end that says the launcher left:
                    watched.unregister(fd)  # the parent check goes on, no busy wait

    def _orphaned(self) -> bool:
        """Whether the launcher that started this executor has gone: another parent, or
        nobody left reading the events."""
        if self.parent is not None and os.getppid() != self.parent:
            return True
        try:
            watched = select.poll()
            watched.register(self.events.fileno(), 0)
            return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in watched.poll(0))
        except (OSError, ValueError):
            return False

    def _cancel(self, *_: Any) -> None:
        self._stop("cancelled", orphaned=False)

    def _stop(self, why: str, orphaned: bool) -> None:
        """Stop every step and what it started, report them (unless nobody listens), end."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        group_is_ours = os.getpgrp() == os.getpid()
        with _ignore_missing():
            if group_is_ours:  # the steps and everything they started; not this process
                os.killpg(os.getpgrp(), signal.SIGTERM)
        for pid in list(self.running):
            with _ignore_missing():
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        while self.running and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid in self.running:
                self._report_stopped(self.running.pop(pid)[0], why, orphaned)
            elif not pid:
                time.sleep(0.02)
        for pid, (task, _, _) in list(self.running.items()):
            with _ignore_missing():
                os.kill(pid, signal.SIGKILL)
            self._report_stopped(task, why, orphaned)
        if group_is_ours:  # what the steps started and that would not stop
            for pid in _group_members(os.getpgrp()):
                with _ignore_missing():
                    os.kill(pid, signal.SIGKILL)
        for task in self.pending:
            self._report_stopped(task, why, orphaned)
        os._exit(143)

    def _report_stopped(self, task: str, why: str, orphaned: bool) -> None:
        if not orphaned:
            self._emit_quietly(event="finished", task=task, status="Cancelled", error=why)


def _group_members(group: int) -> list[int]:
    """The other processes of a process group (where /proc tells; else none)."""
    members = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(entry.path, "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) == group:
                    members.append(int(entry.name))
    return members


def _read_result(path: Path) -> dict[str, Any]:
    """A step's result file; {} when it is missing or not a result (a step that died)."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return result if isinstance(result, dict) else {}


class UnreadableInput(Exception):
    """A value handed to a step cannot be read back (a damaged file)."""

    def __init__(self, name: str, directory: str, error: BaseException) -> None:
        super().__init__(name, directory, error)
        self.name, self.directory, self.error = name, directory, error


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
    release: bool = False,
) -> int:
    """Run one step in this process; writes RESULT_FILE; returns the exit status. `release`:
    the process ends right after, so its outputs' memory may be released as they are saved."""
    step = bundle["steps"][task]
    sources = plan["inputs"][task]  # name -> directory holding that value

    def load_input(name: str) -> Any:
        try:
            return values.load(Path(sources[name]))
        except Exception as exc:
            raise UnreadableInput(name, sources[name], exc) from exc

    try:
        result = run_step(
            bundle, task, namespace, plan["parameters"], load_input, output_dir, release
        )
    except StepFailed as exc:
        print(exc.details, file=sys.stderr)
        record: dict[str, Any] = {"status": "Failed", "error": str(exc), "details": exc.details}
        (output_dir / RESULT_FILE).write_text(json.dumps(record))
        return 1
    except UnreadableInput as exc:  # the launcher drops it from the step cache
        record = {
            "status": "Failed",
            "error": f"step {step['name']!r} could not read {exc.name!r}, handed on to it in "
            f"{exc.directory} ({type(exc.error).__name__}: {exc.error})",
            "unreadable_input": exc.directory,
        }
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
        "models": result.models,
        "seconds": result.seconds,
    }
    (output_dir / RESULT_FILE).write_text(json.dumps(record))
    return 0


def _run_fresh(plan_path: str, task: str, executor: int | None = None) -> int:
    """A step in a process of its own (where forking is unsafe): prelude, then the step."""
    plan = json.loads(Path(plan_path).read_text())
    bundle = json.loads(Path(plan["bundle"]).read_text())
    os.chdir(plan["workdir"])
    sys.path.insert(0, plan["workdir"])
    output_dir = Path(plan["outputs"][task])
    die_with_parent(signal.SIGKILL, executor)
    namespace = fresh_main()
    try:
        run_prelude(bundle, namespace)
    except StepFailed as exc:
        write_report(output_dir / REPORT_FILE, exc.cells, [], 0.0, exc)
        (output_dir / RESULT_FILE).write_text(
            json.dumps({"status": "Failed", "error": str(exc), "details": exc.details})
        )
        return 1
    return run_one(plan, bundle, task, namespace, output_dir)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--one"]:
        return _run_fresh(args[2], args[1], int(args[3]) if len(args) > 3 else None)
    plan_path = args[0]
    plan = json.loads(Path(plan_path).read_text())
    plan["path"] = plan_path
    die_with_parent(signal.SIGTERM, plan.get("parent_pid"))
    events_fd = int(plan.get("events_fd", 1))
    with open(events_fd, "w", buffering=1, closefd=False) as events:
        return Executor(plan, events).run()


if __name__ == "__main__":
    sys.exit(main())
