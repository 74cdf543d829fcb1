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
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from measure import Figure, Goal, Load  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cells", type=int, default=20)
    args = parser.parse_args()
    load = Load.now()
    start, shell_cell, exec_cell = in_process(args.cells, args.runs)
    fresh_shell = whole_process(THROUGH_SHELL.format(cell=CELL, cells=args.cells), args.runs)
    fresh_exec = whole_process(THROUGH_EXEC.format(cell=CELL, cells=args.cells), args.runs)
    ms = [1000 * t for t in shell_cell], [1000 * t for t in exec_cell]
    # Per run: the shell's time beside exec's in the same run, so load shifts cancel out.
    per_cell = Figure(
        "IPython's cost per cell (warm process)", [a - b for a, b in zip(*ms, strict=True)], "ms"
    )
    per_step = Figure(
        "IPython's cost per step (fresh process)",
        [a - b for a, b in zip(sorted(fresh_shell), sorted(fresh_exec), strict=True)],
        "s",
    )
    print(f"bench_cells: a step of {args.cells} cells, {args.runs} runs")
    print(Figure("a. warm process: IPython's import and shell start", [start], "s").line())
    print(Figure("   per cell through IPython", ms[0], "ms").line())
    print(Figure("   per cell by exec", ms[1], "ms").line())
    print(Figure("b. fresh process, cells through IPython", fresh_shell, "s").line())
    print(Figure("   fresh process, cells by exec", fresh_exec, "s").line())
    print("goals (PASS/FAIL from the best run)")
    # IPython tokenizes each cell for its transforms and formats each shown value: about a
    # millisecond a cell, a third of a second for a 300-cell notebook
    print(Goal(per_cell, "<=", 2.0, f"exec: {statistics.median(ms[1]):.3f} ms a cell").line())
    print(Goal(per_step, "<=", 0.3, "IPython's import, once per step process").line())
    print(load.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
