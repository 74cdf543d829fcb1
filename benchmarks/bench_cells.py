"""What running a step's cells through IPython costs, beside plain `exec`.

Since issue 15 every step runs its cells through IPython's InteractiveShell (runtime/shell.py)
so that display(), a cell's last value, magics and inline figures behave as in Jupyter. This
measures what that costs, from one run of this script on this machine:

  a. in the warm process (the local engine: a fork of a process that ran the imports): the
     shell's one-time start, and each cell through the shell beside the same cell by exec;
  b. in a fresh process (a KFP step, or a local step where forking is unsafe): a whole
     process that runs a step of CELLS cells through the shell, beside one that execs them.

Every figure is a median over --runs; the spread and the load average are printed with it.

    python benchmarks/bench_cells.py [--runs 7] [--cells 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A step as notebooks write them: assignments, a loop, a print and a value shown at the end.
CELL = "values = [i * i for i in range(200)]\ntotal = sum(values)\nprint(total)\ntotal"

THROUGH_SHELL = """
import sys, time
started = time.perf_counter()
from cellpipe.runtime.step import fresh_main
from cellpipe.runtime.shell import CellRunner
namespace = fresh_main()
runner = CellRunner(namespace, "bench.ipynb")
records = []
runner.run([{{"index": i, "source": {cell!r}}} for i in range({cells})], records)
"""

# The runtime before IPython: the same namespace, cells by exec, without importing IPython
THROUGH_EXEC = """
import sys, io, contextlib, types
module = types.ModuleType("__main__")
sys.modules["__main__"] = module
namespace = module.__dict__
for i in range({cells}):
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile({cell!r}, f"bench.ipynb, cell {{i}}", "exec"), namespace)
"""


def whole_process(code: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, cwd=ROOT.parent
        )
        times.append(time.perf_counter() - started)
    return times


def in_process(cells: int, runs: int) -> tuple[float, list[float], list[float]]:
    """The shell's start (once), then per cell: through the shell, and by exec."""
    import contextlib
    import io

    started = time.perf_counter()
    from cellpipe.runtime.shell import CellRunner
    from cellpipe.runtime.step import fresh_main

    namespace = fresh_main()
    runner = CellRunner(namespace, "bench.ipynb")
    start = time.perf_counter() - started
    shell_times, exec_times = [], []
    for _ in range(runs):
        records: list[object] = []
        with contextlib.redirect_stdout(io.StringIO()):
            started = time.perf_counter()
            runner.run([{"index": i, "source": CELL} for i in range(cells)], records)  # type: ignore[arg-type]
            shell_times.append((time.perf_counter() - started) / cells)
            started = time.perf_counter()
            for i in range(cells):
                exec(compile(CELL, f"bench.ipynb, cell {i}", "exec"), namespace)
            exec_times.append((time.perf_counter() - started) / cells)
    return start, shell_times, exec_times


def row(label: str, times: list[float]) -> str:
    median, low, high = (1000 * v for v in (statistics.median(times), min(times), max(times)))
    return f"{label:<44} {median:9.3f} ms   (min {low:.3f}, max {high:.3f})"


def goal(label: str, value: float, unit: str, target: str, met: bool) -> str:
    return f"   {label:<48} {value:8.2f}{unit:<3} goal {target:<9} {'PASS' if met else 'MISS'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cells", type=int, default=20)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    start, shell_cell, exec_cell = in_process(args.cells, args.runs)
    fresh_shell = whole_process(THROUGH_SHELL.format(cell=CELL, cells=args.cells), args.runs)
    fresh_exec = whole_process(THROUGH_EXEC.format(cell=CELL, cells=args.cells), args.runs)
    per_cell = statistics.median(shell_cell) - statistics.median(exec_cell)
    fresh_extra = statistics.median(fresh_shell) - statistics.median(fresh_exec)
    print(f"bench_cells: a step of {args.cells} cells, {args.runs} runs (medians)")
    print(row("a. warm process: IPython's import and start", [start]))
    print(row("   per cell through IPython", shell_cell))
    print(row("   per cell by exec", exec_cell))
    print(row("b. fresh process, cells through IPython", fresh_shell))
    print(row("   fresh process, cells by exec", fresh_exec))
    print("goals (medians)")
    print(
        goal(
            "IPython's cost per cell (warm process)",
            per_cell * 1000,
            "ms",
            "<= 1 ms",
            per_cell <= 0.001,
        )
    )
    print(
        goal(
            "IPython's cost per step (fresh process)",
            fresh_extra,
            "s",
            "<= 0.3 s",
            fresh_extra <= 0.3,
        )
    )
    print(
        f"\nload average before {load_before:.2f}, after {os.getloadavg()[0]:.2f} "
        "(a busy machine inflates times)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
