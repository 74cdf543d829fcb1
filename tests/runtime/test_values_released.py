"""A step's large outputs written from their own memory, released to the OS as they are written.

A forked step process ends right after it saves its outputs, so values.save_all may hand each
large array's and frame's pages back to the OS once they are in the file (they then read as
zeros). The files must be exactly those values.save writes, whatever the outputs share: views
of one array, columns of one buffer, a pickled value that holds an array saved natively.
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cellpipe.runtime import values
from tests.launcher.test_local_runs import run_json
from tests.notebooks import notebook, write
from tests.runtime.test_values import assert_same_frame, every_kind

ROWS = 400_000  # 3.2 MB per float column: above values.MAP_FROM_BYTES, several pages


def released(array: np.ndarray) -> float:
    """The share of the array's whole pages that now read as zeros (their memory went back to
    the OS)."""
    flat = array.reshape(-1).view(np.uint8)
    start = -array.__array_interface__["data"][0] % 4096
    pages = flat[start : start + (flat.size - start) // 4096 * 4096].reshape(-1, 4096)
    return float((~pages.any(axis=1)).mean()) if len(pages) else 0.0


def saved_as_save_writes(outputs: dict[str, Any], copies: dict[str, Any], folder: Path) -> None:
    """Each released output's file is byte for byte the one values.save writes for its copy."""
    for name, copy in copies.items():
        values.save(copy, folder / "expected" / name)
        assert (folder / "out" / name / "value").read_bytes() == (
            folder / "expected" / name / "value"
        ).read_bytes(), name
        assert (folder / "out" / name / values.FORMAT_FILE).read_text() == (
            folder / "expected" / name / values.FORMAT_FILE
        ).read_text(), name


def test_the_test_process_can_release() -> None:
    # The tests below check that pages were released: they need this process single-threaded
    assert threading.active_count() == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.random.default_rng(0).random((ROWS, 4)),
        lambda: np.asfortranarray(np.random.default_rng(1).random((ROWS, 4))),
        lambda: np.random.default_rng(2).integers(0, 9, (ROWS, 2), dtype=np.int32),
        lambda: np.array(
            [(i, i / 3, b"ab") for i in range(ROWS // 2)],
            dtype=[("a", "i4"), ("b", "f8"), ("c", "S2")],
        ),
    ],
    ids=["C", "fortran", "int32", "structured"],
)
def test_a_released_array_is_saved_exactly_and_its_memory_given_back(
    make: Any, tmp_path: Path
) -> None:
    array, copy = make(), make()
    formats = values.save_all({"array": array}, tmp_path / "out", release=True)
    assert formats == {"array": "npy"}
    saved_as_save_writes({"array": array}, {"array": copy}, tmp_path)
    assert released(array if array.flags.c_contiguous else array.T) == 1.0
    loaded = values.load(tmp_path / "out" / "array")
    assert (
        loaded.tobytes() == copy.tobytes() and loaded.flags.f_contiguous == copy.flags.f_contiguous
    )


def large_frame() -> pd.DataFrame:
    frame = every_kind(ROWS // 4)
    frame["big"] = np.random.default_rng(3).random(len(frame))
    return frame


def test_a_released_frame_and_series_are_saved_exactly(tmp_path: Path) -> None:
    frame, series = large_frame(), large_frame()["big"].rename("s")
    outputs = {"frame": frame, "series": series}
    copies = {"frame": large_frame(), "series": large_frame()["big"].rename("s")}
    formats = values.save_all(outputs, tmp_path / "out", release=True)
    assert formats == {"frame": "arrow-pandas", "series": "arrow-pandas"}
    saved_as_save_writes(outputs, copies, tmp_path)
    assert released(frame["big"].to_numpy()) == 1.0
    assert_same_frame(values.load(tmp_path / "out" / "frame"), copies["frame"])
    pd.testing.assert_series_equal(values.load(tmp_path / "out" / "series"), copies["series"])


def made_together() -> dict[str, Any]:
    """Outputs that share memory: an array, a view of it, a read-only view, a frame over it
    without a copy, a frame two of whose columns are one buffer, and a pickled dict holding
    the array."""
    base = np.random.default_rng(4).random((ROWS, 3))
    column = pd.Series(np.random.default_rng(5).random(ROWS))
    view = base[: ROWS // 2]
    read_only = base[ROWS // 2 :]
    read_only.flags.writeable = False
    return {
        "held": {"base": base, "note": "a dict: pickled"},
        "base": base,
        "view": view,
        "read_only": read_only,
        "over": pd.DataFrame(base, columns=["a", "b", "c"], copy=False),
        "twice": pd.DataFrame({"p": column, "q": column}),  # one buffer until one changes
    }


def test_outputs_sharing_memory_are_each_saved_exactly(tmp_path: Path) -> None:
    outputs, copies = made_together(), made_together()
    assert np.shares_memory(outputs["over"].to_numpy(), outputs["base"])
    formats = values.save_all(outputs, tmp_path / "out", release=True)
    assert formats["held"] == "cloudpickle" and formats["twice"] == "arrow-pandas"
    for name, copy in copies.items():
        loaded = values.load(tmp_path / "out" / name)
        if isinstance(copy, pd.DataFrame):
            assert_same_frame(loaded, copy)
        elif isinstance(copy, dict):
            assert np.array_equal(loaded["base"], copy["base"])
        else:
            assert loaded.tobytes() == copy.tobytes()
            assert loaded.flags.writeable == copy.flags.writeable
    # The array's memory went back as its last writer wrote it (but the page the view and the
    # read-only view each hold part of: neither wrote it whole)
    assert released(outputs["base"]) > 0.99


def test_without_release_nothing_is_given_back(tmp_path: Path) -> None:
    array = np.random.default_rng(6).random((ROWS, 2))
    values.save_all({"array": array}, tmp_path / "out")
    assert released(array) == 0.0
    assert values.load(tmp_path / "out" / "array").tobytes() == array.tobytes()


def in_child(job: Any) -> int:
    """Run `job` in a forked child (as a step runs); its exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(job())
        except BaseException:
            traceback.print_exc()
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_write_that_fails_after_memory_was_released_is_not_saved_again(tmp_path: Path) -> None:
    # Given a file size limit (a full disk): 20 MB, and an array of 40 MB
    def save_limited(folder: Path) -> int:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past it fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 << 20, 20 << 20))
        array = np.ones(5_000_000)
        try:
            values.save_all({"array": array}, folder, release=True)
        except values.UnsavableValue as exc:
            # Then it says so, naming the output, and pickles nothing of released memory
            assert exc.name == "array" and "writing it failed" in str(exc)
            assert not any(folder.joinpath("array").iterdir())
            return 3
        return 0

    assert in_child(lambda: save_limited(tmp_path / "out")) == 3


MAKE = f"""rng = np.random.default_rng(0)
base = rng.random(({ROWS}, 3))
view = base[: {ROWS} // 2]
frame = pd.DataFrame(base, columns=["a", "b", "c"], copy=False)
frame["label"] = pd.Categorical.from_codes(rng.integers(0, 3, {ROWS}), ["x", "y", "z"])
held = {{"base": base}}
size = float(base.size)"""
USE = """total = float(base.sum()) + float(view.sum())
total += float(frame[["a", "b", "c"]].to_numpy().sum())
total += float(frame["label"].cat.codes.sum()) + float(held["base"].sum()) + size{edit}"""
NOTEBOOK = [
    (["imports"], "import numpy as np\nimport pandas as pd"),
    (["step:make"], MAKE),
    (["step:use"], USE.format(edit="")),
    (["metrics"], "total\nsize"),
]


def expected_total() -> float:
    namespace: dict[str, Any] = {"np": np, "pd": pd}
    exec(MAKE, namespace)
    exec(USE.format(edit=""), namespace)
    return float(namespace["total"])


def test_a_run_hands_on_released_values_exactly_and_the_cache_keeps_them(tmp_path: Path) -> None:
    # Given a step handing on an array, a view of it, a frame over it and a dict holding it
    home = tmp_path / "home"
    path = write(tmp_path / "released.ipynb", notebook(*NOTEBOOK))
    expected = expected_total()
    # When it runs (each step a forked process that releases what it hands on)
    first = run_json(home, str(path))
    # Then the next step receives exactly the values the notebook makes
    assert first["status"] == "Succeeded" and first["metrics"]["total"] == expected
    # And after an edit to the next step, the values from the step cache are the same
    cells = [*NOTEBOOK]
    cells[2] = (["step:use"], USE.format(edit="\ntotal = total + 0.0"))
    write(path, notebook(*cells))
    again = run_json(home, str(path))
    assert again["status"] == "Succeeded" and again["metrics"]["total"] == expected
    assert again["steps"]["make"]["cached"] is True
