"""`make bench`: a 12-trial tune beside the runs it stands for (issue 18).

On examples/iris_cellpipe.ipynb, searching `epochs` over 12 values (5..60:5, a grid):

  a. `cellpipe tune` (local engine, trials side by side on the cores; the steps that use no
     tuned parameter, `load data` and `split`, run once), whole process, empty home;
  b. the same 12 values as 12 plain `cellpipe run -p epochs=V`, one after another in one
     empty home (as a user would type them: the step cache reuses what it can there too);
  c. Kale 2.3's route: one pipeline run per trial (`kale --nb` then its pipeline on
     kfp.local, examples/iris_kale.ipynb), timed for one trial and multiplied by 12.

Each figure through measure.py (min, median, max, spread); the goal, the tune at most as
long as the 12 runs, judged from the best run. The objective per trial is checked equal to
the plain run's with the same value, so that the speed is not bought with other results.

    python benchmarks/bench_tune.py [--runs 3] [--no-kale]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_run import (  # noqa: E402
    RUN_WORK,
    Runs,
    cellpipe_env,
    cellpipe_run,
    fresh_home,
    progress,
    quotient,
    timed,
    try_kale,
)
from measure import Figure, Goal, Load  # noqa: E402

NOTEBOOK = ROOT / "examples" / "iris_cellpipe.ipynb"
KALE_NOTEBOOK = ROOT / "examples" / "iris_kale.ipynb"
SEARCH = "epochs=5..60:5"
VALUES = list(range(5, 61, 5))
TRIALS = len(VALUES)


def tune_command() -> list[str]:
    return [
        sys.executable, "-m", "cellpipe.cli", "tune", str(NOTEBOOK), "--objective", "accuracy",
        "--maximize", "--search", SEARCH, "--algorithm", "grid", "--format", "json",
    ]  # fmt: skip


def one_tune(runs: Runs) -> dict[int, float]:
    """One timed tune in an empty home: each trial's accuracy by its epochs."""
    home = fresh_home()
    try:
        timing = runs.add(timed(tune_command(), RUN_WORK, cellpipe_env(home), runs.label))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    tune = json.loads(timing.stdout)
    assert tune["status"] == "Succeeded", tune
    shared_once = sum("load data" in t["steps_ran"] for t in tune["trials"])
    assert shared_once == 1, f"load data ran in {shared_once} trials"
    return {t["parameters"]["epochs"]: t["value"] for t in tune["trials"]}


def plain_runs(runs: Runs) -> dict[int, float]:
    """The 12 values as 12 `cellpipe run -p`, in turn, in one empty home; timed together."""
    home = fresh_home()
    found: dict[int, float] = {}
    total = 0.0
    try:
        for epochs in VALUES:
            command = cellpipe_run(NOTEBOOK, "-p", f"epochs={epochs}", "--format", "json")
            timing = timed(command, RUN_WORK, cellpipe_env(home), "cellpipe run -p")
            total += timing.wall
            found[epochs] = json.loads(timing.stdout)["metrics"]["accuracy"]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    runs.walls.append(total)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-kale", action="store_true")
    args = parser.parse_args()
    RUN_WORK.mkdir(parents=True, exist_ok=True)
    load = Load.now()
    tune = Runs(f"a  cellpipe tune, {TRIALS} trials (grid, parallel = cores)")
    plain = Runs(f"b  {TRIALS} x cellpipe run -p, in turn")
    progress(f"a, b: cellpipe tune and {TRIALS} plain runs, {args.runs} times each, in turn")
    for _ in range(args.runs):
        tuned = one_tune(tune)
        ran = plain_runs(plain)
        assert tuned == ran, f"trials differ from the plain runs: {tuned} != {ran}"
    print(f"cellpipe tune against plain runs and Kale's route, {NOTEBOOK.name}, {SEARCH}")
    print(tune.seconds().line())
    print(plain.seconds().line())
    print(quotient("   b / a (how much faster the tune is)", plain.walls, tune.walls).line())
    print("   each trial's accuracy equals the plain run's with the same epochs: yes")
    if not args.no_kale:
        kale = try_kale(KALE_NOTEBOOK, 1)
        if isinstance(kale, str):
            print(f"   c  Kale 2.3: not measured here ({kale})")
        else:
            one = kale.totals
            print(Figure("c  Kale 2.3, one trial (kale --nb + kfp.local)", one).line())
            whole = Figure(f"   Kale 2.3, x {TRIALS} trials", [t * TRIALS for t in one])
            print(whole.line())
            print(quotient("   Kale x 12 / a", whole.samples, tune.walls).line())
    print(Goal(tune.seconds(), "<=", min(plain.walls), f"{TRIALS} plain runs' best").line())
    print(load.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
