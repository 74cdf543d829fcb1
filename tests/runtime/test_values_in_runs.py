"""A large value read by two steps at once: each step's changes stay its own (a real local run).

Frames and arrays of a megabyte and more reach a step as a copy-on-write mapping of the
producer's file, shared by every step that reads it. A step that assigns into what it received
changes its own pages only: the other branch, and the producer's value in the step cache,
never see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellpipe.runtime import values
from tests.launcher.test_local_runs import run_json
from tests.notebooks import notebook, write

ROWS = 200_000  # 4.8 MB of frame and 1.6 MB of array: mapped, not read

MAKE = f"""rng = np.random.default_rng(0)
frame = pd.DataFrame({{"x": rng.random({ROWS}), "y": rng.random({ROWS})}})
frame["n"] = np.arange({ROWS})
frame["label"] = pd.Categorical.from_codes(rng.integers(0, 3, {ROWS}), ["a", "b", "c"])
array = rng.random({ROWS})"""

# Each branch changes row `row` of the frame (a float, an integer, a categorical) and of the
# array in place, through a function of a module beside the notebook (which the data-flow
# analysis does not see into: in the notebook the second branch would see the first's change;
# here each runs on the value as it was made), then reports rows 0 and 1 as it sees them.
HELPERS = """def mark(frame, array, row, value):
    frame.loc[row, "x"] = value
    frame.iloc[row, 2] = int(value)
    frame.loc[row, "label"] = "c"
    array[row] = value
"""
BRANCH = """mark(frame, array, {row}, {mark})
{name}_x0, {name}_x1 = float(frame.loc[0, "x"]), float(frame.loc[1, "x"])
{name}_n0, {name}_n1 = int(frame.loc[0, "n"]), int(frame.loc[1, "n"])
{name}_a0, {name}_a1 = float(array[0]), float(array[1])"""
MEASURES = ("x0", "x1", "n0", "n1", "a0", "a1")

TWO_BRANCHES = notebook(
    (["imports"], "import numpy as np\nimport pandas as pd\nfrom helpers import mark"),
    (["step:make"], MAKE),
    (["step:left", "after:make"], BRANCH.format(row=0, mark=-1.0, name="left")),
    (["step:right", "after:make"], BRANCH.format(row=1, mark=-2.0, name="right")),
    (["metrics"], "\n".join(f"{side}_{m}" for side in ("left", "right") for m in MEASURES)),
)


def made() -> tuple[pd.DataFrame, np.ndarray]:
    """The frame and the array as the notebook makes them."""
    namespace: dict[str, Any] = {"np": np, "pd": pd}
    exec(MAKE, namespace)
    return namespace["frame"], namespace["array"]


def test_two_branches_changing_a_received_frame_and_array_in_place_see_only_their_own(
    tmp_path: Path,
) -> None:
    # Given a frame and an array large enough to be mapped, made once
    path = write(tmp_path / "two_branches.ipynb", TWO_BRANCHES)
    (tmp_path / "helpers.py").write_text(HELPERS)
    home = tmp_path / "home"
    frame, array = made()
    x0, x1 = float(frame.loc[0, "x"]), float(frame.loc[1, "x"])
    a0, a1 = float(array[0]), float(array[1])
    # When two branches each change them in place, side by side
    run = run_json(home, str(path))
    # Then each sees its own change and not the other's
    assert run["status"] == "Succeeded"
    seen = run["metrics"]
    assert [seen[f"left_{m}"] for m in MEASURES] == [-1.0, x1, -1, 1, -1.0, a1]
    assert [seen[f"right_{m}"] for m in MEASURES] == [x0, -2.0, 0, -2, a0, -2.0]
    # And the producer's value, in the run and in the step cache, is as it was made
    cached = [entry for entry in (home / "cache").iterdir() if (entry / "frame").is_dir()]
    assert len(cached) == 1
    for folder in (Path(run["outputs"]) / "steps" / "make", cached[0]):
        assert (folder / "frame" / "value").stat().st_size >= values.MAP_FROM_BYTES
        assert (folder / "array" / "value").stat().st_size >= values.MAP_FROM_BYTES
        pd.testing.assert_frame_equal(values.load(folder / "frame"), frame, check_exact=True)
        assert np.array_equal(values.load(folder / "array"), array)
