"""Compile speed: cellpipe against Kale 2.3.0 on the same 60-step, 300-cell notebook.

Both are timed as whole processes in the same run (wall time and peak memory from the OS),
and cellpipe also in-process (after imports), which is what the JupyterLab sidebar pays on
each debounced compile. Kale is installed in its own virtual environment on first use.

Figures and the goal are printed by measure.py (minimum, median, spread; PASS/FAIL from the
best run), with the machine's load before and after. The goal (issue 17): the whole
`cellpipe compile` process of 60 steps / 300 cells in at most 0.5 s (it took about 1.9 s while
`import kfp` brought in the KFP client and the Kubernetes client).

    python benchmarks/bench_compile.py [--runs 9] [--kale-runs 1] [--steps 60] [--cells 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
KALE_VENV = WORK / "kale-venv"
KALE_VERSION = "2.3.0"

sys.path.insert(0, str(HERE))
import nbformat  # noqa: E402
from make_notebook import make_notebook  # noqa: E402
from measure import Figure, Goal, Load  # noqa: E402

GOAL_SECONDS = 0.5  # the whole `cellpipe compile` process, 60 steps / 300 cells
BEFORE = "before: about 1.9 s, import kfp bringing in its client"


def timed(command: Sequence[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak memory (MiB) and exit status of one whole process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, process.returncode


def ensure_kale() -> Path:
    kale = KALE_VENV / "bin" / "kale"
    if not kale.exists():
        print(f"installing kubeflow-kale=={KALE_VERSION} into {KALE_VENV} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KALE_VENV)], check=True)
        subprocess.run(
            [str(KALE_VENV / "bin" / "pip"), "install", "-q", f"kubeflow-kale=={KALE_VERSION}"],
            check=True,
        )
    return kale


def in_process_seconds(notebook: Path, runs: int) -> list[float]:
    from cellpipe.converter import compile_yaml, load_pipeline

    compile_yaml(load_pipeline(notebook))  # warm: imports, kfp's lazy registries
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        compile_yaml(load_pipeline(notebook))
        times.append(time.perf_counter() - start)
    return times


def figures(label: str, results: list[tuple[float, float, int]]) -> tuple[Figure, Figure]:
    """Wall seconds and peak memory of whole processes, as figures."""
    return (
        Figure(f"{label} (whole process)", [r[0] for r in results], "s"),
        Figure(f"{label}: peak memory", [r[1] for r in results], "MiB"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--kale-runs", type=int, default=1, help="Kale takes ~30 s a run here")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--no-kale", action="store_true", help="time cellpipe only")
    args = parser.parse_args(argv)
    load = Load.now()
    WORK.mkdir(exist_ok=True)
    ours = WORK / "bench_cellpipe.ipynb"
    theirs = WORK / "bench_kale.ipynb"
    nbformat.write(make_notebook(args.steps, args.cells, "cellpipe"), str(ours))
    nbformat.write(make_notebook(args.steps, args.cells, "kale"), str(theirs))
    cellpipe = [sys.executable, "-m", "cellpipe.cli", "compile", str(ours), "-o", "out.yaml"]
    # A warm-up run, writing the bytecode of whatever changed since it was last written (as an
    # install does; PYTHONDONTWRITEBYTECODE would leave it to compile on every timed run).
    warm_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(cellpipe, cwd=WORK, check=True, capture_output=True, env=warm_env)
    results = [timed(cellpipe, WORK) for _ in range(args.runs)]
    if any(r[2] != 0 for r in results):
        print("cellpipe failed to compile the notebook", file=sys.stderr)
        return 1
    print(f"notebook: {args.steps} steps, {args.cells} cells (benchmarks/make_notebook.py)")
    print(f"command: {' '.join(['python', *cellpipe[1:]])}")
    wall, peak = figures("cellpipe compile", results)
    print(wall.line())
    print(peak.line())
    print(Figure("cellpipe compile (in process)", in_process_seconds(ours, args.runs)).line())
    goals = (
        [Goal(wall, "<=", GOAL_SECONDS, BEFORE)] if (args.steps, args.cells) == (60, 300) else []
    )
    if not args.no_kale:
        kale = ensure_kale()
        kale_command = [
            str(kale),
            "--nb",
            str(theirs),
            "--pipeline_name",
            "bench",
            "--experiment_name",
            "bench",
        ]
        kale_results = [timed(kale_command, WORK) for _ in range(args.kale_runs)]
        if any(r[2] != 0 for r in kale_results):
            print(
                "kale failed to compile the notebook; see benchmarks/make_notebook.py",
                file=sys.stderr,
            )
            return 1
        kale_wall, kale_peak = figures(f"kale {KALE_VERSION} --nb", kale_results)
        print(kale_wall.line())
        print(kale_peak.line())
        ratio = kale_wall.median / wall.median
        print(f"ratio kale / cellpipe (whole process, medians): {ratio:.1f}x")
    if goals:
        print("Goals (PASS/FAIL from the best run):")
        for goal in goals:
            print(goal.line())
    print(load.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
