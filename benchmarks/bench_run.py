"""Run speed: `cellpipe run` against Kale 2.3.0 on kfp.local and the notebook run top to bottom.

From one run of this script, on the same notebook (default: examples/iris_sklearn_kale.ipynb,
five scikit-learn steps in Kale's dialect, which both tools read unchanged):

  a. `cellpipe run NOTEBOOK` as a whole process, nothing cached (a fresh CELLPIPE_HOME each
     run); `--engine kfp-local` beside it;
  b. Kale 2.3.0: `kale --nb` compiles the notebook to KFP DSL (.kale/NAME.kale.py), then that
     pipeline runs on kfp.local (SubprocessRunner(use_venv=False)) inside Kale's own venv, each
     a whole process;
  c. the notebook top to bottom in a Jupyter kernel with nbclient (kernel start included);
  d. `cellpipe run` again after a one-cell edit to the last step: the whole process, and the
     seconds of step work that ran again (the steps not taken from the cache);
  e. a 1 GB value (a pandas frame of floats, integers and a categorical; a numpy array) made in
     one step and read whole by the next: a real two-step `cellpipe run` beside the same code
     in one step (the goal: <= 0.5 s more), the receiving step's peak memory over the value
     (<= 1.3x), two parallel readers of one value (their own memory: not copied twice), and
     beside them what this machine needs to copy 1 GB in memory and to write it to disk; then
     the same at 4 GB (scaled down, and said so, where memory is short), to show how it grows.
     In process: cellpipe's save and load beside pickle's (where the time goes). On a virtual
     machine that hands free memory back to its host, new memory costs far more than memory in
     use: both are printed, the floor of a handoff being its file's pages in new memory;
  f. a fan-out: 8 steps of 1 s of CPU each after one step, from the first one's start to the
     last one's end beside the ideal (4 s on 2 cores) and beside the same work in a process
     pool (what the machine gives now).

Every figure is reported through measure.py: minimum, median, maximum and spread over its runs,
goals PASS/FAIL from the best run, the load average before and after. Every whole process is
timed from outside (wall time and the peak memory of its process tree from the OS). Kale, numpy,
pandas and scikit-learn are installed into Kale's venv under benchmarks/.work on first use; where
that fails, Kale is reported as not measured.

    python benchmarks/bench_run.py [--runs 5] [--kale-runs 1] [--quick] [--no-kale]
                                   [--notebook NB] [--handoff-mb 1000] [--handoff-runs 5]
                                   [--large-mb 4000] [--large-runs 3] [--no-handoff]
                                   [--only-handoff]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_NOTEBOOK = ROOT / "examples" / "iris_sklearn_kale.ipynb"
# What the default notebook imports; Kale's components pip-install them otherwise (timed).
KALE_RUNTIME_PACKAGES = ["numpy", "pandas", "scikit-learn"]

sys.path.insert(0, str(HERE))
import nbformat  # noqa: E402
from bench_compile import KALE_VENV, KALE_VERSION, WORK, ensure_kale  # noqa: E402
from measure import Figure, Goal, Load  # noqa: E402

RUN_WORK = WORK / "run"

# Runs a notebook top to bottom in a real kernel, as Jupyter's "Run All" does (skip cells left
# out, as in the pipeline). With metric names after the notebook it prints them as JSON.
NBCLIENT_SCRIPT = """
import json, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

path = Path(sys.argv[1])
metrics = sys.argv[2:]
nb = nbformat.read(str(path), as_version=4)
nb.cells = [c for c in nb.cells if "skip" not in c.get("metadata", {}).get("tags", [])]
if metrics:
    code = "import json as _j; print(_j.dumps({m: float(globals()[m]) for m in %r}))" % metrics
    nb.cells.append(nbformat.v4.new_code_cell(code))
NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(path.parent)}}).execute()
if metrics:
    print("".join(o.get("text", "") for o in nb.cells[-1].outputs).strip().splitlines()[-1])
"""

# Runs Kale's generated DSL on kfp.local in Kale's venv; writes the metrics the steps logged.
KALE_RUNNER_SCRIPT = """
import importlib.util, json, sys
from pathlib import Path
from kfp import local

dsl, root, metrics_out = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("kale_pipeline", dsl)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
module.auto_generated_pipeline()  # raises when a task fails
metrics = {}
for output in Path(root).glob("*/*/executor_output.json"):
    outputs = json.loads(output.read_text()).get("artifacts", {})
    for artifact in outputs.get("kale_metrics_artifact", {}).get("artifacts", []):
        metrics.update(artifact.get("metadata", {}))
Path(metrics_out).write_text(json.dumps(metrics))
"""


class BenchError(Exception):
    pass


@dataclass
class Timing:
    wall: float
    peak_mib: float
    stdout: str


@dataclass
class Runs:
    """Whole processes of one kind: their wall seconds and peak memory, as figures."""

    label: str
    walls: list[float] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)

    def add(self, timing: Timing) -> Timing:
        self.walls.append(timing.wall)
        self.peaks.append(timing.peak_mib)
        return timing

    def seconds(self) -> Figure:
        return Figure(self.label, self.walls, "s")

    def memory(self, label: str = "") -> Figure:
        return Figure(label or f"{self.label}: peak", self.peaks, "MiB")


def difference(label: str, a: Sequence[float], b: Sequence[float], unit: str = "s") -> Figure:
    """a - b rank by rank (the best run of one beside the best of the other), so that a load
    that shifted between the runs does not decide it."""
    return Figure(label, [x - y for x, y in zip(sorted(a), sorted(b), strict=False)], unit)


def quotient(label: str, a: Sequence[float], b: Sequence[float]) -> Figure:
    """a / b rank by rank, as `difference`."""
    return Figure(label, [x / y for x, y in zip(sorted(a), sorted(b), strict=False)], "x")


def timed(
    command: Sequence[str], cwd: Path, env: dict[str, str] | None = None, label: str = ""
) -> Timing:
    """Wall seconds and peak memory (MiB, largest process of the tree) of one whole process.

    Raises BenchError, with the end of its output, when it does not exit 0.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # Forked, not vforked (a preexec_fn): a vforked child execs in this process's memory and
        # the OS keeps this process's own peak as the child's, whatever the child used.
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=_nothing,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if process.returncode != 0:
        tail = (stdout + stderr)[-3000:]
        raise BenchError(f"{label or command[0]} exited {process.returncode}:\n{tail}")
    return Timing(wall, usage.ru_maxrss / 1024, stdout)


def _nothing() -> None:
    pass


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def fresh_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="home-", dir=RUN_WORK))


def cellpipe_env(home: Path) -> dict[str, str]:
    return {**os.environ, "CELLPIPE_HOME": str(home)}


def cellpipe_run(notebook: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "cellpipe.cli", "run", str(notebook), *options]


def run_cellpipe_fresh(notebook: Path, runs: Runs, *options: str) -> dict[str, Any] | None:
    """One timed `cellpipe run` with an empty home; its JSON when asked for."""
    home = fresh_home()
    try:
        timing = runs.add(
            timed(cellpipe_run(notebook, *options), RUN_WORK, cellpipe_env(home), runs.label)
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if "json" in options:
        data: dict[str, Any] = json.loads(timing.stdout)
        return data
    return None


def nbclient_command(notebook: Path, metrics: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-c", NBCLIENT_SCRIPT, str(notebook), *metrics]


# --- a, c: whole runs --------------------------------------------------------------------------


def whole_runs(
    notebook: Path, runs: int
) -> tuple[Runs, Runs, Runs, dict[str, Any], dict[str, Any]]:
    """cellpipe run (local, kfp-local) and nbclient, in turn, `runs` times each."""
    progress(f"a, c: cellpipe run (local, kfp-local) and nbclient, {runs} runs each, in turn")
    local = Runs("a  cellpipe run (local engine, nothing cached)")
    kfp_local = Runs("   cellpipe run --engine kfp-local")
    kernel = Runs("c  nbclient, top to bottom (kernel start incl.)")
    # Warm-up (not counted): the OS's file cache, and the values to check against each other.
    home = fresh_home()
    try:
        first = timed(
            cellpipe_run(notebook, "--format", "json"),
            RUN_WORK,
            cellpipe_env(home),
            label="cellpipe run (warm-up)",
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    ours: dict[str, Any] = json.loads(first.stdout)
    metric_names = sorted(ours["metrics"])
    warm = timed(nbclient_command(notebook, metric_names), RUN_WORK, label="nbclient (warm-up)")
    theirs: dict[str, Any] = json.loads(warm.stdout.strip().splitlines()[-1])
    for _ in range(runs):
        run_cellpipe_fresh(notebook, local)
        run_cellpipe_fresh(notebook, kfp_local, "--engine", "kfp-local")
        kernel.add(timed(nbclient_command(notebook), RUN_WORK, label=kernel.label))
    return local, kfp_local, kernel, ours, theirs


# --- b: Kale -----------------------------------------------------------------------------------


def ensure_kale_runtime() -> Path:
    """Kale's venv with what the notebook imports (so that no timed step installs it)."""
    kale = ensure_kale()
    python = KALE_VENV / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import numpy, pandas, sklearn"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        print(f"installing {', '.join(KALE_RUNTIME_PACKAGES)} into {KALE_VENV} (once)...")
        subprocess.run(
            [str(KALE_VENV / "bin" / "pip"), "install", "-q", *KALE_RUNTIME_PACKAGES], check=True
        )
    return kale


@dataclass
class KaleRuns:
    compile: Runs
    run: Runs
    metrics: dict[str, Any]

    @property
    def totals(self) -> list[float]:
        return [c + r for c, r in zip(self.compile.walls, self.run.walls, strict=True)]


def kale_runs(notebook: Path, runs: int) -> KaleRuns:
    kale = ensure_kale_runtime()
    progress(f"b: kale --nb, then its pipeline on kfp.local, {runs} run(s) (about a minute each)")
    work = RUN_WORK / "kale"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runner = work / "run_kale_pipeline.py"
    runner.write_text(KALE_RUNNER_SCRIPT)
    name = "bench-run"
    # Outside a pod Kale's PodDefaults lookup fails early without HOSTNAME (docs/kale-dialect.md)
    env = {k: v for k, v in os.environ.items() if k != "HOSTNAME"}
    result = KaleRuns(
        Runs(f"b  kale {KALE_VERSION} --nb (compile to KFP DSL)"),
        Runs("   kale's pipeline on kfp.local (Subprocess)"),
        {},
    )
    compile_command = [str(kale), "--nb", str(notebook), "--pipeline_name", name]
    compile_command += ["--experiment_name", "bench"]
    dsl = work / ".kale" / f"{name}.kale.py"
    metrics_file = work / "metrics.json"
    for index in range(runs):
        result.compile.add(timed(compile_command, work, env, label="kale --nb"))
        root = work / f"root-{index}"
        run_command = [str(KALE_VENV / "bin" / "python"), str(runner), str(dsl), str(root)]
        result.run.add(
            timed([*run_command, str(metrics_file)], work, env, label="kale pipeline on kfp.local")
        )
        result.metrics = json.loads(metrics_file.read_text())
        shutil.rmtree(root, ignore_errors=True)
    return result


def try_kale(notebook: Path, runs: int) -> KaleRuns | str:
    """Kale's runs, or why they could not be measured (Kale 2.3 may not install here)."""
    try:
        return kale_runs(notebook, runs)
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as exc:
        reason = str(exc).strip().splitlines()
        return reason[-1] if reason else type(exc).__name__


# --- d: an edit to the last step ---------------------------------------------------------------


def last_step_cell(notebook: Path) -> int:
    """The index of the last cell of the pipeline's last step."""
    from cellpipe.converter import load_pipeline

    index: int = load_pipeline(notebook).steps[-1].cells[-1].index
    return index


def edit_runs(notebook: Path, runs: int) -> tuple[Runs, list[float], set[str]]:
    progress(f"d: cellpipe run after an edit to the last step, {runs} runs")
    work = RUN_WORK / "edit"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    copy = Path(shutil.copy(notebook, work / notebook.name))
    index = last_step_cell(copy)
    nb = nbformat.read(str(copy), as_version=4)
    original = nb.cells[index].source
    home = work / "home"
    env = cellpipe_env(home)
    command = cellpipe_run(copy, "--format", "json")
    timed(command, work, env, label="cellpipe run (filling the cache)")
    row = Runs("d  cellpipe run after a last-step edit")
    work_seconds: list[float] = []
    reran: set[str] = set()
    for number in range(runs):
        nb.cells[index].source = f"{original}\n_bench_edit = {number}  # a harmless edit"
        nbformat.write(nb, str(copy))
        result = json.loads(row.add(timed(command, work, env, label=row.label)).stdout)
        steps = [s for s in result["steps"].items() if not s[1]["cached"]]
        reran |= {name for name, _ in steps}
        work_seconds.append(sum(s["seconds"] or 0.0 for _, s in steps))
    shutil.rmtree(work, ignore_errors=True)
    return row, work_seconds, reran


# --- f: a fan-out ------------------------------------------------------------------------------

FAN_OUT_BRANCHES = 8
FAN_OUT_WORK = 1.0  # seconds of CPU in each branch
# Each branch spins on the CPU for FAN_OUT_WORK seconds and reports when it started and ended.
BRANCH_CODE = """b{i}_start = time.time()
t{i} = time.process_time()
while time.process_time() - t{i} < {work}:
    pass
b{i}_end = time.time()"""


def fan_out_ideal() -> float:
    """The branches' work spread evenly over the cores: 4.0 s for 8 x 1 s on 2 cores."""
    cores = os.cpu_count() or 1
    return -(-FAN_OUT_BRANCHES // cores) * FAN_OUT_WORK


def spin(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


def pool_seconds() -> float:
    """The branches' work in a plain process pool of one process per core: what the machine
    gives now (the ideal where nothing else runs)."""
    import multiprocessing

    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        pool.map(spin, [FAN_OUT_WORK] * FAN_OUT_BRANCHES, chunksize=1)
    return time.perf_counter() - started


def fan_out_runs(runs: int) -> tuple[Figure, Figure]:
    """From the first branch's start to the last one's end, over the ideal, `runs` times;
    beside it the same work in a plain process pool, run in turn with them."""
    progress(f"f: {FAN_OUT_BRANCHES} parallel branches of {FAN_OUT_WORK:g} s each, {runs} runs")
    work = RUN_WORK / "fan-out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    branches = range(FAN_OUT_BRANCHES)
    notebook = write_notebook(
        work / "fan-out.ipynb",
        [
            (["imports"], "import time"),
            (["step:start"], "started = time.time()"),
            *(
                ([f"step:branch{i}", "after:start"], BRANCH_CODE.format(i=i, work=FAN_OUT_WORK))
                for i in branches
            ),
            (["metrics"], "\n".join(f"b{i}_start\nb{i}_end" for i in branches)),
        ],
    )
    ideal = fan_out_ideal()
    ratios, pool = [], []
    for _ in range(runs):
        pool.append(pool_seconds() / ideal)
        result = run_cellpipe_fresh(notebook, Runs("f  fan-out"), "--format", "json")
        assert result is not None
        metrics = result["metrics"]
        span = max(metrics[f"b{i}_end"] for i in branches) - min(
            metrics[f"b{i}_start"] for i in branches
        )
        ratios.append(span / ideal)
    shutil.rmtree(work, ignore_errors=True)
    label = f"{FAN_OUT_BRANCHES} branches of {FAN_OUT_WORK:g} s: first start to last end / ideal"
    return Figure(label, ratios, "x"), Figure("   the same in a process pool / ideal", pool, "x")


# --- e: handing on a gigabyte ------------------------------------------------------------------

# The value is built in place (the floats' block filled column by column), so that the value is
# all the memory the code itself needs: what a run needs beyond it is the handing on.
FRAME_CODE = """rng = np.random.default_rng(0)
rows = ROWS
floats = np.empty((8, rows))
for i in range(8):
    rng.random(out=floats[i])
value = pd.DataFrame(floats.T, columns=[f"x{i}" for i in range(8)], copy=False)
del floats
value["n0"] = rng.integers(0, 1_000_000, rows)
value["n1"] = rng.integers(0, 1_000, rows)
codes = rng.integers(0, 5, rows, dtype=np.int8)
value["label"] = pd.Categorical.from_codes(codes, list("abcde"))
del codes"""
ARRAY_CODE = """rng = np.random.default_rng(0)
value = rng.random((ROWS, 100))"""
# Reads every byte of the value.
USE_CODE = {
    "DataFrame": "TOTAL = float(value.sum(numeric_only=True).sum())"
    " + float(value['label'].array.codes.sum())",
    "ndarray": "TOTAL = float(value.sum())",
}
BYTES_PER_ROW = {"DataFrame": 8 * 8 + 2 * 8 + 1, "ndarray": 100 * 8}
# What the step holds (Linux): its peak over the memory of its own the warm process it was forked
# from holds (a fork starts with the warm process's anonymous pages and none of its file pages:
# the libraries' pages it touches count here, so the figure errs high, never below 0), the memory
# of its own (anonymous: copies and what it allocated) and the file pages it maps (shared).
MEMORY_CODE = """import os as _os
def _memory(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status)
    except OSError:
        return {"VmHWM": 0.0, "VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}
_mine, _warm = _memory("self"), _memory(_os.getppid())
P_peak_mib = _mine["VmHWM"] - _warm["RssAnon"]
P_own_mib = _mine["RssAnon"] - _warm["RssAnon"]
P_mapped_mib = _mine["RssFile"]"""
MEMORY_NAMES = ("peak_mib", "own_mib", "mapped_mib")
KINDS = ("DataFrame", "ndarray")


def rows_for(kind: str, megabytes: int) -> int:
    return max(1, megabytes * 1_000_000 // BYTES_PER_ROW[kind])


def value_code(kind: str, megabytes: int) -> str:
    rows = rows_for(kind, megabytes)
    return (FRAME_CODE if kind == "DataFrame" else ARRAY_CODE).replace("ROWS", str(rows))


def value_mib(kind: str, megabytes: int) -> float:
    return rows_for(kind, megabytes) * BYTES_PER_ROW[kind] / 2**20


def make_value(code: str) -> Any:
    import numpy as np
    import pandas as pd

    namespace: dict[str, Any] = {"np": np, "pd": pd}
    exec(code, namespace)  # the same code the generated notebooks run
    return namespace["value"]


def read_all(value: Any) -> float:
    namespace = {"value": value}
    kind = "DataFrame" if hasattr(value, "columns") else "ndarray"
    exec(USE_CODE[kind].replace("TOTAL", "total"), namespace)
    return float(namespace["total"])


def use_code(kind: str, prefix: str) -> str:
    """Read all of `value` into PREFIX_total, then the step's memory as PREFIX_* metrics."""
    return (
        USE_CODE[kind].replace("TOTAL", f"{prefix}_total")
        + "\n"
        + MEMORY_CODE.replace("P_", f"{prefix}_")
    )


def metrics_cell(*prefixes: str) -> tuple[list[str], str]:
    names = [f"{p}_{n}" for p in prefixes for n in ("total", *MEMORY_NAMES)]
    return (["metrics"], "\n".join(names))


def write_notebook(path: Path, cells: list[tuple[list[str], str]]) -> Path:
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    for number, (tags, source) in enumerate(cells):
        nb.cells.append(new_code_cell(source, id=f"cell-{number}", metadata={"tags": tags}))
    nbformat.write(nb, str(path))
    return path


IMPORTS = (["imports"], "import numpy as np\nimport pandas as pd")


def handoff_notebooks(kind: str, code: str, work: Path) -> tuple[Path, Path, Path]:
    """Three notebooks: make, then use in a second step (the value handed on); make and use in
    one step; make, then two steps side by side that each read all of it."""
    two = write_notebook(
        work / f"{kind}-two-steps.ipynb",
        [
            IMPORTS,
            (["step:make"], code),
            (["step:use"], use_code(kind, "use")),
            metrics_cell("use"),
        ],
    )
    one = write_notebook(
        work / f"{kind}-one-step.ipynb",
        [IMPORTS, (["step:make_and_use"], f"{code}\n{use_code(kind, 'one')}"), metrics_cell("one")],
    )
    readers = write_notebook(
        work / f"{kind}-two-readers.ipynb",
        [
            IMPORTS,
            (["step:make"], code),
            (["step:read_a", "after:make"], use_code(kind, "a")),
            (["step:read_b", "after:make"], use_code(kind, "b")),
            metrics_cell("a", "b"),
        ],
    )
    return two, one, readers


@dataclass
class Handoff:
    """One kind of value at one size: the two-step runs beside the one-step runs."""

    kind: str
    megabytes: int
    two: Runs
    one: Runs
    steps: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    readers: dict[str, list[float]] = field(default_factory=dict)

    @property
    def value_mib(self) -> float:
        return value_mib(self.kind, self.megabytes)

    @property
    def name(self) -> str:
        return f"{self.kind} {self.megabytes / 1000:g} GB"

    def cost(self) -> Figure:
        return difference(
            f"{self.name}: two steps - one step (whole runs)", self.two.walls, self.one.walls
        )

    def receiving_peak(self) -> Figure:
        peaks = [peak / self.value_mib for peak in self.metrics["use_peak_mib"]]
        return Figure(f"{self.name}: receiving step's peak / value", peaks, "x")


def collect(
    result: dict[str, Any], into: dict[str, list[float]], steps: dict[str, list[float]]
) -> None:
    for name, value in result["metrics"].items():
        into.setdefault(name, []).append(float(value))
    for name, step in result["steps"].items():
        steps.setdefault(name, []).append(step["seconds"] or 0.0)


def handoff_runs(kind: str, megabytes: int, runs: int, readers: bool) -> Handoff:
    progress(f"e: {kind} of {megabytes} MB: two steps and one step, {runs} runs each, in turn")
    work = RUN_WORK / "handoff-runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    two, one, side_by_side = handoff_notebooks(kind, value_code(kind, megabytes), work)
    result = Handoff(
        kind, megabytes, Runs(f"{kind}: two steps (make, use)"), Runs(f"{kind}: one step")
    )
    for _ in range(runs):
        ours = run_cellpipe_fresh(two, result.two, "--format", "json")
        assert ours is not None
        collect(ours, result.metrics, result.steps)
        theirs = run_cellpipe_fresh(one, result.one, "--format", "json")
        assert theirs is not None
        collect(theirs, result.metrics, result.steps)
    if readers:
        progress(f"e: {kind} of {megabytes} MB read by two steps side by side, {runs} runs")
        reader_runs = Runs(f"{kind}: make, then two readers side by side")
        for _ in range(runs):
            read = run_cellpipe_fresh(side_by_side, reader_runs, "--format", "json")
            assert read is not None
            collect(read, result.readers, {})
    shutil.rmtree(work, ignore_errors=True)
    return result


def handoff_lines(handoff: Handoff) -> list[str]:
    mib = handoff.value_mib
    rows = rows_for(handoff.kind, handoff.megabytes)
    shape = f"{rows} rows x 11 columns" if handoff.kind == "DataFrame" else f"{rows} x 100"
    steps = handoff.steps
    lines = [
        f"   {handoff.name} ({shape}, {mib:.0f} MiB), nothing cached:",
        handoff.two.seconds().line(),
        handoff.one.seconds().line(),
        handoff.cost().line(),
        Figure("   step make (makes, saves)", steps["make"], "s").line(),
        Figure("   step use (loads, reads all)", steps["use"], "s").line(),
        Figure("   step make_and_use", steps["make_and_use"], "s").line(),
        difference(
            "   steps: make + use - make_and_use",
            [a + b for a, b in zip(steps["make"], steps["use"], strict=True)],
            steps["make_and_use"],
        ).line(),
        handoff.receiving_peak().line(),
        Figure(
            "   receiving step's own memory (copies) / value",
            [own / mib for own in handoff.metrics["use_own_mib"]],
            "x",
        ).line(),
        Figure(
            "   one step's peak / value",
            [peak / mib for peak in handoff.metrics["one_peak_mib"]],
            "x",
        ).line(),
        handoff.two.memory("   two steps: the run's peak (largest process, the OS)").line(),
        handoff.one.memory("   one step: the run's peak (largest process, the OS)").line(),
    ]
    if handoff.readers:
        lines += [
            f"   {handoff.name} read by two steps side by side:",
            Figure(
                "   each reader's own memory (copies) / value",
                [own / mib for own in handoff.readers["a_own_mib"] + handoff.readers["b_own_mib"]],
                "x",
            ).line(),
            Figure(
                "   each reader's mapped file pages (shared)",
                [*handoff.readers["a_mapped_mib"], *handoff.readers["b_mapped_mib"]],
                "MiB",
            ).line(),
        ]
    return lines


def readers_own(handoff: Handoff) -> Figure:
    """The memory two parallel readers hold of their own, together, over the value: near 0 when
    both map the same file pages, 2x and more when each copies it."""
    readers = handoff.readers
    together = [a + b for a, b in zip(readers["a_own_mib"], readers["b_own_mib"], strict=True)]
    return Figure(
        f"{handoff.name}: two parallel readers' own memory / value",
        [own / handoff.value_mib for own in together],
        "x",
    )


# --- e: what the machine needs to copy and write -----------------------------------------------


@dataclass
class Machine:
    megabytes: int
    copy_touched: list[float] = field(default_factory=list)
    copy_fresh: list[float] = field(default_factory=list)
    copy_cold: list[float] = field(default_factory=list)
    write: list[float] = field(default_factory=list)
    write_sync: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        size = f"{self.megabytes / 1000:g} GB"
        return [
            Figure(f"   machine: copy {size} in memory (pages in use)", self.copy_touched).line(),
            Figure(f"   machine: copy {size} into new memory", self.copy_fresh).line(),
            Figure(
                f"   machine: copy {size} into new memory, idle {COLD_SECONDS:g} s before",
                self.copy_cold,
            ).line(),
            Figure(f"   machine: write {size} to a file (page cache)", self.write).line(),
            Figure(f"   machine: write {size} to disk (and fsync)", self.write_sync).line(),
        ]

    def reference(self) -> str:
        size = f"{self.megabytes / 1000:g} GB"
        return (
            f"copy {size}: {min(self.copy_touched):.2f}-{min(self.copy_fresh):.2f} s, "
            f"into memory left idle {min(self.copy_cold):.2f} s; "
            f"write {size}: {min(self.write):.2f} s"
        )


# Memory freed a few seconds ago costs more to use again on some virtual machines (the guest
# hands free pages back to its host, which must supply them again on first touch): a step's new
# value and the page cache its file goes into are such memory.
COLD_SECONDS = 6.0


def machine_figures(megabytes: int, runs: int) -> Machine:
    """memcpy into memory in use, into new memory, and into new memory after the machine has
    had a few seconds to take its free memory back; a write to a new file, and with fsync. Of
    random bytes, which no layer below can compress."""
    import numpy as np

    progress(f"e: what this machine needs to copy and write {megabytes} MB, {runs} runs")
    machine = Machine(megabytes)
    source = np.random.default_rng(0).random(megabytes * 1_000_000 // 8)
    target = np.zeros_like(source)
    for _ in range(runs):
        started = time.perf_counter()
        np.copyto(target, source)
        machine.copy_touched.append(time.perf_counter() - started)
    del target
    for samples, pause in ((machine.copy_fresh, 0.0), (machine.copy_cold, COLD_SECONDS)):
        for _ in range(runs):
            time.sleep(pause)
            started = time.perf_counter()
            copy = source.copy()
            samples.append(time.perf_counter() - started)
            del copy
    path = RUN_WORK / "machine-write"
    for _ in range(runs):
        started = time.perf_counter()
        with open(path, "wb") as handle:
            handle.write(memoryview(source).cast("B"))
            machine.write.append(time.perf_counter() - started)
            os.fsync(handle.fileno())
        machine.write_sync.append(time.perf_counter() - started)
        path.unlink()
    return machine


# --- e: in process, where the time goes --------------------------------------------------------


@dataclass
class HandoffTiming:
    save: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    load_read: list[float] = field(default_factory=list)
    disk_bytes: int = 0
    fmt: str = ""


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def time_handoff(
    value: Any, save: Callable[[Any, Path], str], load: Callable[[Path], Any], runs: int
) -> HandoffTiming:
    result = HandoffTiming()
    work = RUN_WORK / "handoff"
    for _ in range(runs):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        target = work / "value"
        start = time.perf_counter()
        result.fmt = save(value, target)
        result.save.append(time.perf_counter() - start)
        result.disk_bytes = folder_bytes(target)
        start = time.perf_counter()
        loaded = load(target)
        result.load.append(time.perf_counter() - start)
        read_all(loaded)
        result.load_read.append(time.perf_counter() - start)
        del loaded
    shutil.rmtree(work, ignore_errors=True)
    return result


def save_pickle(value: Any, path: Path) -> str:
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=5)
    return "pickle 5"


def load_pickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)  # our own file, just written


def handoff_in_process(megabytes: int, runs: int) -> list[str]:
    from cellpipe.runtime import values

    progress(f"e: cellpipe's value formats and pickle, in process, {megabytes} MB, {runs} runs")
    lines = [f"   in process, {megabytes / 1000:g} GB (files in the OS cache): where the time goes"]
    for kind in KINDS:
        value = make_value(value_code(kind, megabytes))
        for timing in (
            time_handoff(value, values.save, values.load, runs),
            time_handoff(value, save_pickle, load_pickle, runs),
        ):
            name = f"   {kind} as {timing.fmt} ({timing.disk_bytes / 1e6:.0f} MB)"
            lines.append(Figure(f"{name}: save", timing.save).line())
            lines.append(Figure(f"{name}: load", timing.load).line())
            lines.append(Figure(f"{name}: load, read all", timing.load_read).line())
        del value
    return lines


# --- e: sizes that fit -------------------------------------------------------------------------


def available_mb() -> int | None:
    """MemAvailable (Linux), in MB; None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 1_000_000
    except OSError:
        return None
    return None


def fitting(megabytes: int) -> tuple[int, str]:
    """The size to measure: `megabytes`, or less where the machine has not 3x that available
    (the producer's value, the file in the OS cache, the copies of the machine figures)."""
    available = available_mb()
    if available is None or available >= 3 * megabytes:
        return megabytes, ""
    scaled = max(100, available // 3 // 100 * 100)
    return scaled, f" (scaled down from {megabytes} MB: {available} MB of memory available)"


# --- report ------------------------------------------------------------------------------------


def same_metrics(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def norm(metrics: dict[str, Any]) -> dict[str, float]:
        return {k.replace("-", "_"): round(float(v), 12) for k, v in metrics.items()}

    return norm(a) == norm(b)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=DEFAULT_NOTEBOOK)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kale-runs", type=int, default=1, help="Kale takes about a minute")
    parser.add_argument("--handoff-mb", type=int, default=1000)
    parser.add_argument("--handoff-runs", type=int, default=5)
    parser.add_argument("--large-mb", type=int, default=4000, help="0 leaves it out")
    parser.add_argument("--large-runs", type=int, default=3)
    parser.add_argument("--no-kale", action="store_true", help="leave Kale out")
    parser.add_argument("--no-handoff", action="store_true", help="leave section e out")
    parser.add_argument("--only-handoff", action="store_true", help="section e alone")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 2 runs, 1 Kale run, 20 MB and 40 MB handoffs twice",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.kale_runs, args.handoff_runs, args.large_runs = 2, 1, 2, 2
        args.handoff_mb, args.large_mb = 20, 40
    notebook = args.notebook.resolve()
    if not notebook.is_file():
        parser.error(f"no such notebook: {args.notebook}")
    RUN_WORK.mkdir(parents=True, exist_ok=True)
    try:
        return report(notebook, args)
    except BenchError as exc:
        print(f"bench_run: {exc}", file=sys.stderr)
        return 1


def report(notebook: Path, args: argparse.Namespace) -> int:
    load = Load.now()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; wall seconds of "
        "whole processes, peak = largest process; goals PASS/FAIL from the best run",
        flush=True,
    )
    if not args.only_handoff:
        report_runs(notebook, args)
    if not args.no_handoff:
        report_handoff(args)
    print()
    print(load.line())
    return 0


def report_runs(notebook: Path, args: argparse.Namespace) -> None:
    from cellpipe.converter import load_pipeline

    pipeline = load_pipeline(notebook)
    chain = " -> ".join(s.name for s in pipeline.steps)
    shown = notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook
    print(f"notebook: {shown} ({len(pipeline.steps)} steps: {chain})", flush=True)
    local, kfp_local, kernel, ours, theirs = whole_runs(notebook, args.runs)
    edit, edit_work, reran = edit_runs(notebook, args.runs)
    fan_out, pool = fan_out_runs(args.runs)
    kale: KaleRuns | str = "left out (--no-kale)"
    if not args.no_kale:
        kale = try_kale(notebook, args.kale_runs)
    print()
    for figure in (local.seconds(), local.memory(), kfp_local.seconds()):
        print(figure.line())
    if isinstance(kale, KaleRuns):
        print(kale.compile.seconds().line())
        print(kale.run.seconds().line())
        print(Figure("   kale compile + run", kale.totals).line())
    else:
        print(f"b  kale {KALE_VERSION}: could not be measured: {kale}")
    print(kernel.seconds().line())
    print(edit.seconds().line())
    rerun = Figure(f"   step work run again ({', '.join(sorted(reran))})", edit_work)
    print(rerun.line())
    print(Figure(f"f  {fan_out.label}", fan_out.samples, "x").line())
    print(pool.line())
    print()
    metric_text = ", ".join(f"{k}={v:.6g}" for k, v in sorted(ours["metrics"].items()))
    print(f"metrics: cellpipe {metric_text}")
    print(f"         nbclient {'the same' if same_metrics(ours['metrics'], theirs) else theirs}")
    if isinstance(kale, KaleRuns):
        same = same_metrics(ours["metrics"], kale.metrics)
        print(f"         kale     {'the same' if same else kale.metrics}")
    print()
    print("goals (PASS/FAIL from the best run)")
    if isinstance(kale, KaleRuns):
        ratio = quotient("kale (compile + run) / cellpipe run", kale.totals, local.walls)
        run_only = quotient("kale run only / cellpipe run", kale.run.walls, local.walls)
        print(Goal(ratio, ">=", 10, f"kale run only: {run_only.minimum:.1f}x").line())
    else:
        print(f"   ----  kale (compile + run) / cellpipe run: not measured ({kale})")
    ratio = quotient("cellpipe run / nbclient top to bottom", local.walls, kernel.walls)
    print(Goal(ratio, "<=", 1.5, f"nbclient: {min(kernel.walls):.2f} s").line())
    print(Goal(Figure("step work after a last-step edit", edit_work), "<=", 1.0).line())
    ideal = f"{fan_out_ideal():g} s on {os.cpu_count()} cores; a process pool: {pool.minimum:.2f}x"
    print(Goal(fan_out, "<=", 1.1, ideal).line())


def report_handoff(args: argparse.Namespace) -> None:
    print()
    size, note = fitting(args.handoff_mb)
    print(f"e  a value handed to a step that reads all of it: {size} MB{note}", flush=True)
    machine = machine_figures(size, args.handoff_runs)
    handoffs = [handoff_runs(kind, size, args.handoff_runs, readers=True) for kind in KINDS]
    in_process = handoff_in_process(size, max(1, min(3, args.handoff_runs)))
    for line in machine.lines():
        print(line)
    for handoff in handoffs:
        for line in handoff_lines(handoff):
            print(line)
    for line in in_process:
        print(line)
    large: tuple[Machine, list[Handoff]] | None = None
    if args.large_mb:
        large_size, large_note = fitting(args.large_mb)
        print()
        print(f"e  the same at {large_size} MB{large_note}: how it grows", flush=True)
        large = (
            machine_figures(large_size, args.large_runs),
            [handoff_runs(kind, large_size, args.large_runs, readers=False) for kind in KINDS],
        )
        for line in large[0].lines():
            print(line)
        for handoff in large[1]:
            for line in handoff_lines(handoff):
                print(line)
    print()
    print(f"goals for section e (PASS/FAIL from the best run; the machine: {machine.reference()})")
    for handoff in handoffs:
        one = min(handoff.one.walls)
        cold = min(machine.copy_cold)
        beside = f"one step: {one:.2f} s; {size / 1000:g} GB into idle memory: {cold:.2f} s"
        print(Goal(handoff.cost(), "<=", 0.5, beside).line())
        one_peak = min(handoff.metrics["one_peak_mib"]) / handoff.value_mib
        print(Goal(handoff.receiving_peak(), "<=", 1.3, f"one step: {one_peak:.2f}x").line())
        mapped = min(handoff.readers["a_mapped_mib"] + handoff.readers["b_mapped_mib"])
        print(
            Goal(readers_own(handoff), "<=", 0.3, f"each maps {mapped:.0f} MiB of one file").line()
        )
    if large is not None:
        print(f"   at {large[0].megabytes} MB (no goal; the machine: {large[0].reference()}):")
        for handoff in large[1]:
            print(handoff.cost().line())
            print(handoff.receiving_peak().line())


if __name__ == "__main__":
    sys.exit(main())
