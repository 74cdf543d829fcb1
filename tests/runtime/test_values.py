"""Values handed between steps keep their type and contents, in a format chosen by type."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from cellpipe.runtime import values


def roundtrip(value: Any, tmp_path: Path) -> tuple[str, Any]:
    fmt = values.save(value, tmp_path / "v")
    return fmt, values.load(tmp_path / "v")


def test_plain_python_values(tmp_path: Path) -> None:
    value = {"a": [1, 2.5, "x", None, (3, 4)], "b": {1, 2}, "c": b"\x00\xff"}
    assert roundtrip(value, tmp_path) == ("cloudpickle", value)


def test_numpy_arrays_are_npy_and_large_ones_are_mapped_copy_on_write(tmp_path: Path) -> None:
    small = np.arange(12, dtype=np.int32).reshape(3, 4)
    fmt, loaded = roundtrip(small, tmp_path)
    assert fmt == "npy" and np.array_equal(loaded, small) and loaded.dtype == np.int32
    large = np.random.default_rng(0).random((512, 512))
    fmt, mapped = roundtrip(large, tmp_path / "large")
    assert fmt == "npy" and isinstance(mapped, np.memmap)
    mapped[0, 0] = -1.0  # a step may change what it received
    assert values.load(tmp_path / "large" / "v")[0, 0] == large[0, 0]


def test_dataframes_and_series_travel_as_arrow(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"x": [1, 2, 3], "y": ["a", "b", None], "when": pd.date_range("2024-01-01", periods=3)},
        index=pd.Index([10, 20, 30], name="id"),
    )
    fmt, loaded = roundtrip(frame, tmp_path)
    assert fmt == "arrow-pandas"
    pd.testing.assert_frame_equal(loaded, frame)
    series = pd.Series([1.5, 2.5], index=["p", "q"], name="score")
    fmt, loaded_series = roundtrip(series, tmp_path / "s")
    assert fmt == "arrow-pandas"
    pd.testing.assert_series_equal(loaded_series, series)


def test_a_frame_arrow_cannot_hold_exactly_falls_back_to_pickle(tmp_path: Path) -> None:
    frame = pd.DataFrame({1: [object(), 2], "b": [3, 4]})  # int label, object column
    fmt, loaded = roundtrip(frame, tmp_path)
    assert fmt == "cloudpickle"
    assert list(loaded.columns) == [1, "b"]


def test_arrow_tables(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    fmt, loaded = roundtrip(table, tmp_path)
    assert fmt == "arrow" and loaded.equals(table)


def test_sklearn_estimators_use_joblib(tmp_path: Path) -> None:
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    fmt, loaded = roundtrip(model, tmp_path)
    assert fmt == "joblib"
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]


def test_notebook_functions_lambdas_and_classes_are_saved_by_value(tmp_path: Path) -> None:
    # Given code defined in a step's __main__, as the runtime runs it
    main = types.ModuleType("__main__")
    source = "class Scaler:\n    k = 3\n    def apply(self, v):\n        return v * self.k\n"
    source += "double = lambda v: v * 2\ndef triple(v):\n    return v * 3\n"
    exec(compile(source, "nb.ipynb, cell 1", "exec"), main.__dict__)
    saved_main = sys.modules["__main__"]
    sys.modules["__main__"] = main
    try:
        formats = [values.save(main.__dict__[n], tmp_path / n) for n in ("double", "triple")]
        formats.append(values.save(main.__dict__["Scaler"](), tmp_path / "scaler"))
    finally:
        sys.modules["__main__"] = saved_main
    # Then they load in a process that never saw that code
    assert formats == ["cloudpickle"] * 3
    assert values.load(tmp_path / "double")(4) == 8
    assert values.load(tmp_path / "triple")(4) == 12
    assert values.load(tmp_path / "scaler").apply(2) == 6


def test_a_value_nothing_can_save_raises_with_the_reason(tmp_path: Path) -> None:
    generator = (i for i in range(3))
    with pytest.raises(values.UnsavableValue):
        values.save(generator, tmp_path / "g")
    message = values.unsavable_message("rows", generator, "load", RuntimeError("no"))
    assert message == (
        "step 'load' cannot hand on 'rows': a generator cannot be saved (no); "
        "turn it into a list (list(...)) before the step ends"
    )
