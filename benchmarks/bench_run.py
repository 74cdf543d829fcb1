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
  e. a 200 MB pandas DataFrame and a 200 MB numpy array handed from one step to the next:
     cellpipe's value formats (cellpipe.runtime.values) beside pickle, in process, and a real
     two-step `cellpipe run` beside the same code in one step.

Every whole process is timed from outside (wall time and the peak memory of its process tree
from the OS). Kale, numpy, pandas and scikit-learn are installed into Kale's venv under
benchmarks/.work on first use.

    python benchmarks/bench_run.py [--runs 5] [--kale-runs 1] [--quick] [--no-kale]
                                   [--notebook NB] [--handoff-mb 200] [--handoff-runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import statistics
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
class Row:
    label: str
    walls: list[float] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)

    def add(self, timing: Timing) -> Timing:
        self.walls.append(timing.wall)
        self.peaks.append(timing.peak_mib)
        return timing

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def line(self) -> str:
        return seconds_line(self.label, self.walls) + (
            f", peak {statistics.median(self.peaks):.0f} MiB" if self.peaks else ""
        )


def seconds_line(label: str, values: Sequence[float]) -> str:
    return (
        f"{label:<48} median {statistics.median(values):7.3f} s "
        f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
    )


def timed(
    command: Sequence[str], cwd: Path, env: dict[str, str] | None = None, label: str = ""
) -> Timing:
    """Wall seconds and peak memory (MiB, largest process of the tree) of one whole process.

    Raises BenchError, with the end of its output, when it does not exit 0.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
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


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def fresh_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="home-", dir=RUN_WORK))


def cellpipe_env(home: Path) -> dict[str, str]:
    return {**os.environ, "CELLPIPE_HOME": str(home)}


def cellpipe_run(notebook: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "cellpipe.cli", "run", str(notebook), *options]


def run_cellpipe_fresh(notebook: Path, row: Row, *options: str) -> dict[str, Any] | None:
    """One timed `cellpipe run` with an empty home; its JSON when asked for."""
    home = fresh_home()
    try:
        timing = row.add(
            timed(
                cellpipe_run(notebook, *options),
                RUN_WORK,
                cellpipe_env(home),
                label=row.label,
            )
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


def whole_runs(notebook: Path, runs: int) -> tuple[Row, Row, Row, dict[str, Any], dict[str, Any]]:
    """cellpipe run (local, kfp-local) and nbclient, in turn, `runs` times each."""
    progress(f"a, c: cellpipe run (local, kfp-local) and nbclient, {runs} runs each, in turn")
    local = Row("a  cellpipe run (local engine, nothing cached)")
    kfp_local = Row("   cellpipe run --engine kfp-local")
    kernel = Row("c  nbclient, top to bottom (kernel start incl.)")
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


def kale_runs(notebook: Path, runs: int) -> tuple[Row, Row, list[float], dict[str, Any]]:
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
    compile_row = Row(f"b  kale {KALE_VERSION} --nb (compile to KFP DSL)")
    run_row = Row("   kale's pipeline on kfp.local (Subprocess)")
    metrics: dict[str, Any] = {}
    compile_command = [str(kale), "--nb", str(notebook), "--pipeline_name", name]
    compile_command += ["--experiment_name", "bench"]
    dsl = work / ".kale" / f"{name}.kale.py"
    metrics_file = work / "metrics.json"
    for index in range(runs):
        compile_row.add(timed(compile_command, work, env, label="kale --nb"))
        root = work / f"root-{index}"
        run_command = [str(KALE_VENV / "bin" / "python"), str(runner), str(dsl), str(root)]
        run_row.add(
            timed([*run_command, str(metrics_file)], work, env, label="kale pipeline on kfp.local")
        )
        metrics = json.loads(metrics_file.read_text())
        shutil.rmtree(root, ignore_errors=True)
    totals = [c + r for c, r in zip(compile_row.walls, run_row.walls, strict=True)]
    return compile_row, run_row, totals, metrics


# --- d: an edit to the last step ---------------------------------------------------------------


def last_step_cell(notebook: Path) -> int:
    """The index of the last cell of the pipeline's last step."""
    from cellpipe.converter import load_pipeline

    index: int = load_pipeline(notebook).steps[-1].cells[-1].index
    return index


def edit_runs(notebook: Path, runs: int) -> tuple[Row, list[float], set[str]]:
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
    row = Row("d  cellpipe run after a last-step edit")
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


# --- e: handing on 200 MB ----------------------------------------------------------------------

FRAME_CODE = """rng = np.random.default_rng(0)
rows = ROWS
value = pd.DataFrame({f"x{i}": rng.random(rows) for i in range(8)})
value["n0"] = rng.integers(0, 1_000_000, rows)
value["n1"] = rng.integers(0, 1_000, rows)
value["label"] = pd.Categorical.from_codes(rng.integers(0, 5, rows), list("abcde"))"""
ARRAY_CODE = """rng = np.random.default_rng(0)
value = rng.random((ROWS, 100))"""
USE_CODE = {
    "DataFrame": "total = float(value.sum(numeric_only=True).sum())",
    "ndarray": "total = float(value.sum())",
}
BYTES_PER_ROW = {"DataFrame": 8 * 8 + 2 * 8 + 1, "ndarray": 100 * 8}


def value_code(kind: str, megabytes: int) -> str:
    rows = max(1, megabytes * 1_000_000 // BYTES_PER_ROW[kind])
    return (FRAME_CODE if kind == "DataFrame" else ARRAY_CODE).replace("ROWS", str(rows))


def make_value(code: str) -> Any:
    import numpy as np
    import pandas as pd

    namespace: dict[str, Any] = {"np": np, "pd": pd}
    exec(code, namespace)  # the same code the generated notebooks run
    return namespace["value"]


def read_all(value: Any) -> float:
    namespace = {"value": value}
    exec(USE_CODE["DataFrame" if hasattr(value, "columns") else "ndarray"], namespace)
    return float(namespace["total"])


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class HandoffTiming:
    save: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    load_read: list[float] = field(default_factory=list)
    disk_bytes: int = 0
    fmt: str = ""


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


def handoff_notebooks(kind: str, code: str, work: Path) -> tuple[Path, Path]:
    """Two notebooks: make and use in two steps (the value handed on), and in one step."""
    from nbformat.v4 import new_code_cell, new_notebook

    def write(name: str, cells: list[tuple[list[str], str]]) -> Path:
        nb = new_notebook()
        for number, (tags, source) in enumerate(cells):
            nb.cells.append(new_code_cell(source, id=f"cell-{number}", metadata={"tags": tags}))
        path = work / f"{name}.ipynb"
        nbformat.write(nb, str(path))
        return path

    imports = (["imports"], "import numpy as np\nimport pandas as pd")
    metrics = (["metrics"], "total")
    use = USE_CODE[kind]
    two = write(
        f"{kind}-two-steps",
        [imports, (["step:make"], code), (["step:use"], use), metrics],
    )
    one = write(f"{kind}-one-step", [imports, (["step:make_and_use"], f"{code}\n{use}"), metrics])
    return two, one


def handoff(megabytes: int, runs: int) -> list[str]:
    kinds = {kind: value_code(kind, megabytes) for kind in ("DataFrame", "ndarray")}
    # The real runs first, while this process is small: a child's peak memory counts what it
    # shared with this process before it started its program.
    runs_lines = handoff_runs(kinds, runs)
    return [*handoff_in_process(kinds, megabytes, runs), *runs_lines]


def handoff_in_process(kinds: dict[str, str], megabytes: int, runs: int) -> list[str]:
    from cellpipe.runtime import values

    progress("e: cellpipe's value formats and pickle, in process")
    lines = [
        f"e  handing on {megabytes} MB between two steps (in process, median of {runs}; "
        "files in the OS cache)",
        f"   {'value':<30} {'format':<13} {'save s':>7} {'load s':>7} {'save+load':>9} "
        f"{'load+read all':>13} {'MB on disk':>10}",
    ]
    for kind, code in kinds.items():
        value = make_value(code)
        in_memory = (
            value.memory_usage(deep=True).sum() if kind == "DataFrame" else value.nbytes
        ) / 1e6
        described = f"{kind} {'x'.join(map(str, value.shape))} ({in_memory:.0f} MB)"
        ours = time_handoff(value, values.save, values.load, runs)
        theirs = time_handoff(value, save_pickle, load_pickle, runs)
        for label, timing in ((described, ours), ("", theirs)):
            save_s = statistics.median(timing.save)
            load_s = statistics.median(timing.load)
            lines.append(
                f"   {label:<30} {timing.fmt:<13} {save_s:7.3f} {load_s:7.3f} "
                f"{save_s + load_s:9.3f} {statistics.median(timing.load_read):13.3f} "
                f"{timing.disk_bytes / 1e6:10.1f}"
            )
        del value
    return lines


def handoff_runs(kinds: dict[str, str], runs: int) -> list[str]:
    progress(f"e: two-step and one-step cellpipe runs handing on {', '.join(kinds)}")
    work = RUN_WORK / "handoff-runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lines = [
        "   `cellpipe run`, nothing cached: the value made in one step and used in the next,",
        "   against the same code in one step",
    ]
    for kind, code in kinds.items():
        two, one = handoff_notebooks(kind, code, work)
        two_row, one_row = Row(f"   {kind}: two steps"), Row(f"   {kind}: one step")
        step_seconds: dict[str, list[float]] = {}
        for _ in range(runs):
            result = run_cellpipe_fresh(two, two_row, "--format", "json")
            assert result is not None
            for name, step in result["steps"].items():
                step_seconds.setdefault(name, []).append(step["seconds"] or 0.0)
            run_cellpipe_fresh(one, one_row)
        steps = ", ".join(
            f"{name} {statistics.median(seconds):.2f} s" for name, seconds in step_seconds.items()
        )
        lines.append(two_row.line())
        lines.append(f"{'':<48} steps: {steps}")
        lines.append(one_row.line())
        lines.append(
            f"   {kind + ': cost of the handoff':<45} {two_row.median - one_row.median:+14.3f} s "
            "(medians, two steps - one step)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return lines


# --- report ------------------------------------------------------------------------------------


def goal(label: str, value: float, unit: str, target: str, met: bool) -> str:
    return f"   {label:<45} {value:7.2f}{unit:<2} goal {target:<8} {'PASS' if met else 'MISS'}"


def same_metrics(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def norm(metrics: dict[str, Any]) -> dict[str, float]:
        return {k.replace("-", "_"): round(float(v), 12) for k, v in metrics.items()}

    return norm(a) == norm(b)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=DEFAULT_NOTEBOOK)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kale-runs", type=int, default=1, help="Kale takes about a minute")
    parser.add_argument("--handoff-mb", type=int, default=200)
    parser.add_argument("--handoff-runs", type=int, default=3)
    parser.add_argument("--no-kale", action="store_true", help="leave Kale out")
    parser.add_argument("--no-handoff", action="store_true", help="leave section e out")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 2 runs, 1 Kale run, 20 MB handoffs once",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.kale_runs, args.handoff_mb, args.handoff_runs = 2, 1, 20, 1
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
    from cellpipe.converter import load_pipeline

    pipeline = load_pipeline(notebook)
    chain = " -> ".join(s.name for s in pipeline.steps)
    print(
        f"notebook: {notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook} "
        f"({len(pipeline.steps)} steps: {chain})"
    )
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, load average "
        f"{os.getloadavg()[0]:.2f}; wall seconds of whole processes, peak = largest process",
        flush=True,
    )
    local, kfp_local, kernel, ours, theirs = whole_runs(notebook, args.runs)
    edit, edit_work, reran = edit_runs(notebook, args.runs)
    kale: tuple[Row, Row, list[float], dict[str, Any]] | None = None
    if not args.no_kale:
        kale = kale_runs(notebook, args.kale_runs)
    print()
    print(local.line())
    print(kfp_local.line())
    if kale is not None:
        print(kale[0].line())
        print(kale[1].line())
        print(seconds_line("   kale compile + run", kale[2]))
    print(kernel.line())
    print(edit.line())
    print(seconds_line(f"   step work run again ({', '.join(sorted(reran))})", edit_work))
    print()
    metric_text = ", ".join(f"{k}={v:.6g}" for k, v in sorted(ours["metrics"].items()))
    print(f"metrics: cellpipe {metric_text}")
    print(f"         nbclient {'the same' if same_metrics(ours['metrics'], theirs) else theirs}")
    if kale is not None:
        same = same_metrics(ours["metrics"], kale[3])
        print(f"         kale     {'the same' if same else kale[3]}")
    print()
    print("goals (medians)")
    if kale is not None:
        ratio = statistics.median(kale[2]) / local.median
        print(goal("kale (compile + run) / cellpipe run", ratio, "x", ">= 10x", ratio >= 10))
        run_only = kale[1].median / local.median
        print(f"   {'(kale run only / cellpipe run)':<45} {run_only:7.2f}x")
    ratio = local.median / kernel.median
    print(goal("cellpipe run / nbclient top to bottom", ratio, "x", "<= 1.5x", ratio <= 1.5))
    work = statistics.median(edit_work)
    print(goal("step work after a last-step edit", work, "s", "< 1 s", work < 1.0))
    if not args.no_handoff:
        print()
        for line in handoff(args.handoff_mb, args.handoff_runs):
            print(line)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (a busy machine inflates times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
