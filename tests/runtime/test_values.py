"""Values handed between steps keep their type and contents, in a format chosen by type."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import mmap
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


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mapping_of(array: Any) -> Any:
    """What an array's memory finally belongs to (an mmap where it views a mapping)."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def test_plain_python_values(tmp_path: Path) -> None:
    value = {"a": [1, 2.5, "x", None, (3, 4)], "b": {1, 2}, "c": b"\x00\xff"}
    assert roundtrip(value, tmp_path) == ("cloudpickle", value)


def test_numpy_arrays_are_npy_and_large_ones_are_mapped_copy_on_write(tmp_path: Path) -> None:
    small = np.arange(12, dtype=np.int32).reshape(3, 4)
    fmt, loaded = roundtrip(small, tmp_path)
    assert fmt == "npy" and np.array_equal(loaded, small) and loaded.dtype == np.int32
    large = np.random.default_rng(0).random((512, 512))
    fmt, mapped = roundtrip(large, tmp_path / "large")
    before = file_digest(tmp_path / "large" / "v" / "value")
    # A plain ndarray, as in the notebook, over a copy-on-write mapping of the file
    assert fmt == "npy" and type(mapped) is np.ndarray and mapped.flags.writeable
    assert isinstance(mapping_of(mapped), mmap.mmap)
    mapped[0, 0] = -1.0  # a step may change what it received
    assert values.load(tmp_path / "large" / "v")[0, 0] == large[0, 0]
    assert file_digest(tmp_path / "large" / "v" / "value") == before


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


# --- pandas frames: exact, mapped copy-on-write when large, assignable ----------------------

READ_OR_MAPPED = ["read", "mapped"]


@pytest.fixture(params=READ_OR_MAPPED)
def how(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each frame test twice: a small value read into memory, and mapped as large ones are."""
    if request.param == "mapped":
        monkeypatch.setattr(values, "MAP_FROM_BYTES", 0)
    else:
        monkeypatch.setattr(values, "MAP_FROM_BYTES", 1 << 40)
    return str(request.param)


def every_kind(rows: int = 6) -> pd.DataFrame:
    """A column of each dtype a notebook's frame commonly holds, missing values included."""
    n = rows
    cycle = lambda items: [items[i % len(items)] for i in range(n)]  # noqa: E731
    index = pd.Index(np.arange(n) * 10, name="id")
    return pd.DataFrame(
        {
            "x": np.linspace(-1.0, 1.0, n),
            "nan": cycle([np.nan, -0.0, 1.5]),
            "f32": np.arange(n, dtype=np.float32),
            "n": np.arange(n, dtype=np.int64) * 7,
            "i8": np.arange(n, dtype=np.int8),
            "u16": np.arange(n, dtype=np.uint16),
            "flag": cycle([True, False]),
            "nullable": pd.array(cycle([1, None, 3]), dtype="Int64"),
            "nullable_bool": pd.array(cycle([True, None]), dtype="boolean"),
            "nullable_float": pd.array(cycle([0.5, None]), dtype="Float64"),
            "label": pd.Categorical(cycle(["b", "a", None])),
            "grade": pd.Categorical(cycle(["low", "high"]), ["low", "high"], ordered=True),
            "when": pd.date_range("2024-03-30", periods=n, freq="7h"),
            "when_tz": pd.date_range("2024-03-30", periods=n, freq="7h", tz="Europe/Paris"),
            "took": pd.to_timedelta(np.arange(n), unit="s"),
            "month": pd.period_range("2024-01", periods=n, freq="M"),
            "span": pd.interval_range(0, n),
            "text": cycle(["a", "bé", None]),
            # strings of object dtype (not pandas 3's str dtype, which it infers from a list)
            "objects": pd.Series(cycle(["p", None, "q"]), index=index, dtype=object),
            "raw": np.array(cycle([b"\x00\xff", None]), dtype=object),
        },
        index=index,
    )


def assert_same_frame(loaded: Any, frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    assert list(loaded.dtypes) == list(frame.dtypes)
    assert loaded.columns.dtype == frame.columns.dtype
    assert list(loaded.columns) == list(frame.columns)
    assert loaded.index.names == frame.index.names
    for name in frame.columns:  # the same objects where the column holds objects
        if frame[name].dtype == object:
            assert [type(v) for v in loaded[name]] == [type(v) for v in frame[name]]


def test_frames_of_every_kind_round_trip_exactly(how: str, tmp_path: Path) -> None:
    frame = every_kind()
    assert frame["objects"].dtype == object and frame["raw"].dtype == object
    fmt, loaded = roundtrip(frame, tmp_path)
    assert fmt == "arrow-pandas"
    assert_same_frame(loaded, frame)
    assert np.signbit(loaded["nan"].to_numpy()[1])  # -0.0 stays -0.0, NaN stays NaN


@pytest.mark.parametrize(
    "index",
    [
        pd.RangeIndex(3, 15, 2, name="r"),
        pd.MultiIndex.from_arrays(
            [["a", "a", "b", "b", "c", "c"], [1, 2, 1, 2, 1, 2]], names=["key", "n"]
        ),
        pd.DatetimeIndex(pd.date_range("2024-01-01", periods=6, tz="UTC"), name="at"),
        pd.Index(["p", "q", "r", "s", "t", "u"]),
        pd.CategoricalIndex(list("abcabc"), name="c"),
    ],
    ids=["range", "multi", "datetime-tz", "str", "categorical"],
)
def test_indexes_round_trip_exactly(index: pd.Index, how: str, tmp_path: Path) -> None:
    frame = every_kind().set_axis(index, axis=0)
    fmt, loaded = roundtrip(frame, tmp_path)
    assert fmt == "arrow-pandas"
    assert_same_frame(loaded, frame)
    assert type(loaded.index) is type(frame.index)


def test_empty_frames_and_series_round_trip_exactly(how: str, tmp_path: Path) -> None:
    empty_rows = every_kind().iloc[:0]
    assert_same_frame(roundtrip(empty_rows, tmp_path / "rows")[1], empty_rows)
    # Without a column Arrow keeps no rows: pickled
    no_columns = pd.DataFrame(index=pd.RangeIndex(4))
    assert roundtrip(no_columns, tmp_path / "columns")[0] == "cloudpickle"
    assert_same_frame(values.load(tmp_path / "columns" / "v"), no_columns)
    nothing = pd.DataFrame()
    assert_same_frame(roundtrip(nothing, tmp_path / "nothing")[1], nothing)
    frame = every_kind()
    for name in ("x", "label", "when_tz", "nullable", "objects"):
        series = frame[name].rename(f"the {name}")
        fmt, loaded = roundtrip(series, tmp_path / name)
        assert fmt == "arrow-pandas"
        pd.testing.assert_series_equal(loaded, series, check_exact=True)


def test_column_order_names_and_labels_are_kept(how: str, tmp_path: Path) -> None:
    frame = every_kind()[["text", "x", "label", "n", "nan", "when"]]
    frame.columns.name = "measures"
    fmt, loaded = roundtrip(frame, tmp_path)
    assert fmt == "arrow-pandas"
    assert_same_frame(loaded, frame)
    assert loaded.columns.name == "measures"


@pytest.mark.parametrize(
    "column",
    [
        [1, 2, 3],  # numbers in an object column
        ["a", 1, None],  # mixed types
        ["a", np.nan, "b"],  # NaN, not None, for a missing string
        [decimal.Decimal("1.10"), decimal.Decimal("2"), None],
        [datetime.date(2024, 1, 1), datetime.date(2024, 1, 2), None],
        [{"k": 1}, [1, 2], None],
    ],
    ids=["numbers", "mixed", "nan", "decimal", "date", "containers"],
)
def test_object_columns_arrow_would_change_are_pickled_exactly(
    column: list[Any], how: str, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "o": pd.Series(column, dtype=object)})
    fmt, loaded = roundtrip(frame, tmp_path)
    assert fmt == "cloudpickle"
    assert_same_frame(loaded, frame)
    assert [repr(v) for v in loaded["o"]] == [repr(v) for v in frame["o"]]


def test_an_object_index_stays_of_objects(how: str, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["a", "b"], dtype=object))
    _, loaded = roundtrip(frame, tmp_path)
    assert loaded.index.dtype == object
    assert_same_frame(loaded, frame)


def test_the_file_is_the_arrow_file_pyarrow_writes_for_the_frame(tmp_path: Path) -> None:
    # NaN is kept as a float value (no pass to turn it into nulls); all else as from_pandas
    frame = every_kind()
    values.save(frame, tmp_path / "v")
    table = pa.ipc.open_file(pa.memory_map(str(tmp_path / "v" / "value"))).read_all()
    theirs = pa.Table.from_pandas(frame, preserve_index=None)
    assert table.schema.equals(theirs.schema, check_metadata=True)
    nan_free = frame.drop(columns=["nan"])
    values.save(nan_free, tmp_path / "w")
    table = pa.ipc.open_file(pa.memory_map(str(tmp_path / "w" / "value"))).read_all()
    assert table.equals(pa.Table.from_pandas(nan_free, preserve_index=None), check_metadata=True)


def test_files_written_by_from_pandas_itself_still_load(how: str, tmp_path: Path) -> None:
    # Values saved before NaN stayed a value (nulls in float columns) load exactly
    frame = every_kind()
    table = pa.Table.from_pandas(frame, preserve_index=None)
    (tmp_path / "v").mkdir()
    sink = pa.OSFile(str(tmp_path / "v" / "value"), "wb")
    with sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    (tmp_path / "v" / values.FORMAT_FILE).write_text('{"format": "arrow-pandas"}')
    assert_same_frame(values.load(tmp_path / "v"), frame)


def test_a_received_frame_can_be_assigned_into_as_in_the_notebook(how: str, tmp_path: Path) -> None:
    frame = every_kind()
    values.save(frame, tmp_path / "v")
    digest = file_digest(tmp_path / "v" / "value")
    for position, name in enumerate(frame.columns):
        new = frame[name].iloc[1]
        # Given the notebook's frame and a step's, When each assigns the same way
        expected = every_kind()
        expected.loc[0, name] = new
        expected.iloc[2, position] = new
        received = values.load(tmp_path / "v")
        received.loc[0, name] = new
        received.iloc[2, position] = new
        # Then the step's frame is the notebook's
        assert_same_frame(received, expected)
    received = values.load(tmp_path / "v")
    received.at[10, "x"] = 99.0
    received.iat[3, 3] = -5
    received.loc[received["n"] > 14, ["x", "nan", "n"]] = 0
    received.update(pd.DataFrame({"f32": [4.5]}, index=[20]))
    assert received.loc[10, "x"] == 99.0 and received.iloc[3, 3] == -5
    # And no other load, nor the file, sees what the step changed
    assert_same_frame(values.load(tmp_path / "v"), frame)
    assert file_digest(tmp_path / "v" / "value") == digest


def test_a_large_frame_is_not_copied_but_mapped_copy_on_write(tmp_path: Path) -> None:
    rows = 200_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.random(rows) for i in range(4)})
    frame["n0"] = rng.integers(0, 9, rows)
    frame["n1"] = rng.integers(0, 9, rows)
    frame["label"] = pd.Categorical.from_codes(rng.integers(0, 3, rows), ["a", "b", "c"])
    assert values.save(frame, tmp_path / "v") == "arrow-pandas"
    assert (tmp_path / "v" / "value").stat().st_size >= values.MAP_FROM_BYTES
    loaded = values.load(tmp_path / "v")
    assert_same_frame(loaded, frame)
    # Its numbers view a private mapping of the file, columns of one dtype one block again
    for name in ("x0", "x3", "n1"):
        assert isinstance(mapping_of(loaded[name].to_numpy()), mmap.mmap)
    assert isinstance(mapping_of(loaded["label"].array.codes), mmap.mmap)
    assert np.shares_memory(loaded[["x0", "x1", "x2", "x3"]].to_numpy(), loaded["x0"].to_numpy())
    loaded.loc[0, "x0"] = -1.0
    loaded.loc[0, "label"] = "c"
    assert values.load(tmp_path / "v").loc[0, "x0"] == frame.loc[0, "x0"]


def test_before_pandas_3_a_large_frame_is_read_not_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(values, "MAP_FROM_BYTES", 0)
    monkeypatch.setattr(values, "_frame_from_blocks", lambda: None)
    frame = every_kind()
    fmt, loaded = roundtrip(frame, tmp_path)
    assert fmt == "arrow-pandas"
    assert_same_frame(loaded, frame)
    loaded.loc[0, "x"] = 5.0
    assert values.load(tmp_path / "v").loc[0, "x"] == frame.loc[0, "x"]


def read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@pytest.mark.parametrize(
    "array",
    [
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(20.0)[::2],
        np.array(3.5),
        np.zeros((0, 3)),
        np.array([(1, 2.0, b"ab"), (3, 4.5, b"c")], dtype=[("a", "i4"), ("b", "f8"), ("c", "S2")]),
        np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
        np.array([1 + 2j, np.nan]),
        read_only(np.arange(6, dtype=np.uint16)),
    ],
    ids=["fortran", "strided", "0-d", "empty", "structured", "datetime", "complex", "read-only"],
)
def test_arrays_round_trip_exactly(array: np.ndarray, how: str, tmp_path: Path) -> None:
    fmt, loaded = roundtrip(array, tmp_path)
    assert fmt == "npy" and type(loaded) is np.ndarray
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert loaded.tobytes() == array.tobytes()  # every value, NaN and NaT included
    assert loaded.flags.f_contiguous == array.flags.f_contiguous or array.ndim < 2
    # Writable where the notebook's was, and a change never reaches the file
    assert loaded.flags.writeable == array.flags.writeable
    if loaded.flags.writeable and loaded.size:
        loaded.flat[0] = loaded.flat[-1]
        assert values.load(tmp_path / "v").tobytes() == array.tobytes()


def test_saving_again_writes_a_new_file_the_old_ones_readers_keep_theirs(
    how: str, tmp_path: Path
) -> None:
    # Given a value a step has received, and a hard link to its file (as the step cache keeps)
    first = np.arange(300_000, dtype=np.float64)
    values.save(first, tmp_path / "v")
    received = values.load(tmp_path / "v")
    (tmp_path / "cached").mkdir()
    (tmp_path / "cached" / "value").hardlink_to(tmp_path / "v" / "value")
    # When another value is saved in the same folder
    values.save(np.zeros(10), tmp_path / "v")
    # Then the step's value and the linked file are as they were
    assert np.array_equal(received, first)
    assert np.load(tmp_path / "cached" / "value").tobytes() == first.tobytes()
