"""Values handed between steps, each in a fast native format chosen by its type.

The format is written next to the value (and into the KFP artifact's metadata), so the
receiving step reads it back without guessing. Libraries are imported only when a value of
theirs is seen: a step that hands on a list never imports numpy.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

FORMAT_FILE = "cellpipe-format.json"


class UnsavableValue(Exception):
    """A value cannot be handed on (an open file, a generator...)."""


def _module_of(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def choose_format(value: Any) -> str:
    """The native format for `value`, by its type (without importing anything new)."""
    if type(value).__module__ == "__main__" or (
        callable(value) and getattr(value, "__module__", None) == "__main__"
    ):
        return "cloudpickle"  # defined in the notebook: saved by value, not by reference
    module = _module_of(value)
    name = type(value).__name__
    if module == "numpy" and name in ("ndarray", "memmap") and value.dtype != object:
        return "npy"
    if module == "pandas" and name in ("DataFrame", "Series") and _importable("pyarrow"):
        return "arrow-pandas"
    if module == "pyarrow" and name == "Table":
        return "arrow"
    if module == "torch":
        return "torch"
    if module == "sklearn" and _importable("joblib"):
        return "joblib"
    return "cloudpickle"


def _importable(name: str) -> bool:
    if name in sys.modules:
        return True
    from importlib.util import find_spec

    return find_spec(name) is not None


def save(value: Any, directory: Path) -> str:
    """Write `value` into `directory`; returns the format used.

    A native format that refuses a value (a frame with mixed-type columns, an estimator
    holding a lambda) falls back to cloudpickle; a value nothing can save raises
    UnsavableValue.
    """
    directory.mkdir(parents=True, exist_ok=True)
    # A new file, never written over: a step may still map the old one (copy-on-write maps
    # see the file's changes), and the step cache may hold it (a hard link)
    _clear(directory)
    candidates = dict.fromkeys([choose_format(value), "cloudpickle"])
    error: Exception | None = None
    for fmt in candidates:
        try:
            _SAVERS[fmt](value, directory / "value")
        except Exception as exc:
            error = exc
            _clear(directory)
            continue
        record: dict[str, Any] = {"format": fmt}
        if fmt == "npy" and not value.flags.writeable:  # read-only in the notebook: here too
            record["read_only"] = True
        (directory / FORMAT_FILE).write_text(json.dumps(record))
        return fmt
    raise UnsavableValue(str(error)) from error


def load(directory: Path, fmt: str | None = None) -> Any:
    record: dict[str, Any] = {"format": fmt}
    if fmt is None:
        record = json.loads((directory / FORMAT_FILE).read_text())
    value = _LOADERS[record["format"]](directory / "value")
    if record.get("read_only"):
        value.flags.writeable = False
    return value


def _clear(directory: Path) -> None:
    for path in directory.iterdir():
        if path.name.startswith("value"):
            path.unlink()


# --- savers and loaders -----------------------------------------------------------------------


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)  # our own step's output


def _save_cloudpickle(value: Any, path: Path) -> None:
    try:
        import cloudpickle
    except ImportError:  # an image without cloudpickle: plain pickle for plain values
        dump = pickle.dump
    else:
        dump = cloudpickle.dump
    with open(path, "wb") as handle:
        dump(value, handle, protocol=5)


def _save_npy(value: Any, path: Path) -> None:
    import numpy as np

    with open(path, "wb") as handle:
        np.save(handle, np.asarray(value), allow_pickle=False)


def _load_npy(path: Path) -> Any:
    import numpy as np

    if os.path.getsize(path) < MAP_FROM_BYTES:
        return np.load(path, allow_pickle=False)
    # Copy-on-write mapping: nothing is read until used, steps reading the same value share
    # the OS's pages, and a step may change its array freely without changing the file. A
    # plain ndarray, as in the notebook (the memmap it views keeps the mapping open).
    return np.asarray(np.load(path, mmap_mode="c", allow_pickle=False))


def _save_arrow_pandas(value: Any, path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    frame = value.to_frame(name=value.name) if isinstance(value, pd.Series) else value
    if not _arrow_keeps_labels(frame):  # e.g. integer column labels: keep exactness
        raise TypeError("Arrow does not round-trip this frame's labels")
    _check_objects(frame)
    table = _arrow_table(frame)
    _check_types(frame, table)
    metadata = dict(table.schema.metadata or {})
    if isinstance(value, pd.Series):
        metadata[_SERIES_KEY] = json.dumps({"name": _json_name(value.name)}).encode()
    if isinstance(frame.index, (pd.DatetimeIndex, pd.TimedeltaIndex)) and frame.index.freq:
        metadata[_FREQ_KEY] = frame.index.freqstr.encode()  # Arrow keeps no frequency
    table = table.replace_schema_metadata(metadata)
    # Uncompressed, one record batch: each column's buffer is written from the frame's own
    # memory (no second copy), and a reader maps it without decoding.
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
        if not table.num_rows:  # no batch at all would lose the categories of categoricals
            columns = [column.chunk(0) for column in table.columns]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=table.schema))


_SERIES_KEY = b"cellpipe.series"
_FREQ_KEY = b"cellpipe.index_freq"
# Object columns Arrow gives back as the same Python objects (str, bytes; None where missing).
_EXACT_OBJECTS = ("string", "bytes", "empty")


def _arrow_table(frame: Any) -> Any:
    """The frame as `pa.Table.from_pandas` makes it, its numpy float columns without a pass
    over their values: from_pandas turns NaN into nulls (a scan of every float, about half of
    the time to save a frame of floats), while a NaN kept as a value reads back as the same
    NaN. The other columns go through from_pandas (numbers and categorical codes without a
    copy), and the pandas metadata is the one from_pandas writes."""
    import numpy as np
    import pyarrow as pa

    floats = {
        position
        for position, dtype in enumerate(frame.dtypes)
        if isinstance(dtype, np.dtype) and dtype.kind == "f"
    }
    if not floats:
        # preserve_index=None: a RangeIndex is metadata (no column), other indexes are data
        return pa.Table.from_pandas(frame, preserve_index=None)
    others = [position for position in range(frame.shape[1]) if position not in floats]
    rest = pa.Table.from_pandas(frame.iloc[:, others], preserve_index=None)
    metadata = rest.schema.pandas_metadata
    # The float columns' entries and the column labels' own entry depend on dtypes only.
    template = pa.Table.from_pandas(frame.iloc[:0], preserve_index=None).schema.pandas_metadata
    rest_entries = iter(metadata["columns"][: len(others)])
    rest_columns = iter(range(len(others)))
    fields, arrays, entries = [], [], []
    for position, label in enumerate(frame.columns):
        if position in floats:
            array = pa.array(frame.iloc[:, position].to_numpy(), from_pandas=False)
            fields.append(pa.field(label, array.type))
            arrays.append(array)
            entries.append(template["columns"][position])
        else:
            index = next(rest_columns)
            fields.append(rest.schema.field(index))
            arrays.append(rest.column(index))
            entries.append(next(rest_entries))
    for index in range(len(others), rest.num_columns):  # the index, stored as columns
        fields.append(rest.schema.field(index))
        arrays.append(rest.column(index))
    metadata["columns"] = entries + metadata["columns"][len(others) :]
    metadata["column_indexes"] = template["column_indexes"]
    schema_metadata = {**(rest.schema.metadata or {}), b"pandas": json.dumps(metadata).encode()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=schema_metadata))


def _arrow_keeps_labels(frame: Any) -> bool:
    """Arrow stores column labels as strings: only unique string labels come back as they were
    (values of a type Arrow cannot hold make from_pandas raise, and the fallback takes over)."""
    import pandas as pd

    columns = frame.columns
    return (
        len(columns) > 0  # Arrow keeps no rows without a column
        and not isinstance(columns, pd.MultiIndex)
        and columns.is_unique
        and all(isinstance(label, str) for label in columns)
        and all(name is None or isinstance(name, str) for name in frame.index.names)
    )


def _check_objects(frame: Any) -> None:
    """Raises TypeError (the fallback takes over) for an object column or index Arrow would not
    give back as the same objects: numbers, dates, mixed types, NaN for missing strings."""
    import pandas as pd

    infer_dtype = pd.api.types.infer_dtype
    index = frame.index
    levels = [index.get_level_values(n) for n in range(index.nlevels)]
    for values in [*(frame.iloc[:, n] for n in range(frame.shape[1])), *levels]:
        if values.dtype != object:
            continue
        kind = infer_dtype(values, skipna=True)
        missing = values[pd.isna(values)]
        if kind not in _EXACT_OBJECTS or any(item is not None for item in missing):
            raise TypeError(f"an object column of {kind} values: pickled to stay exact")


def _check_types(frame: Any, table: Any) -> None:
    """Raises TypeError where the table would not give back the frame's dtypes, index and
    column labels (converted without rows: a look at the types only)."""
    import pandas as pd

    back = _frame_of(table.slice(0, 0), None)
    same = (
        back.dtypes.equals(frame.dtypes)
        and back.columns.dtype == frame.columns.dtype
        and back.columns.names == frame.columns.names
        and (
            isinstance(frame.index, pd.RangeIndex)
            or (
                type(back.index) is type(frame.index)
                and back.index.names == frame.index.names
                and _level_dtypes(back.index) == _level_dtypes(frame.index)
            )
        )
    )
    if not same:
        raise TypeError("Arrow would not give back this frame's dtypes: pickled to stay exact")


def _level_dtypes(index: Any) -> list[Any]:
    return [index.get_level_values(n).dtype for n in range(index.nlevels)]


def _json_name(name: Any) -> Any:
    json.dumps(name)  # raises for names Arrow metadata cannot carry
    return name


def _load_arrow_pandas(path: Path) -> Any:
    table, mapping = _read_arrow_file(path)
    metadata = table.schema.metadata or {}
    series, freq = metadata.get(_SERIES_KEY), metadata.get(_FREQ_KEY)
    frame = _frame_of(table, mapping)
    del table
    if freq is not None:
        frame.index = type(frame.index)(frame.index, freq=freq.decode())
    if series is not None:
        return frame.iloc[:, 0].rename(json.loads(series)["name"])
    return frame


# Values from this size on are memory-mapped copy-on-write rather than read.
MAP_FROM_BYTES = 1 << 20


def _read_arrow_file(path: Path) -> tuple[Any, Any]:
    """The table in an Arrow file, and the private mapping (a numpy byte array) its buffers
    lie in, or None where it was read.

    A large file is mapped copy-on-write (MAP_PRIVATE): nothing is read until used, steps
    reading the same value share the OS's pages, and a step that assigns into what it
    received changes pages of its own: the file, which the step cache may have published,
    never changes. Mapping needs pandas 3 (frames built from blocks); before, it is read."""
    import numpy as np
    import pyarrow as pa

    if os.path.getsize(path) >= MAP_FROM_BYTES and _frame_from_blocks() is not None:
        import mmap

        with open(path, "rb") as handle:
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        table = pa.ipc.open_file(pa.py_buffer(mapping)).read_all()
        return table, np.frombuffer(mapping, dtype=np.uint8)
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all(), None


def _frame_from_blocks() -> Any:
    """pandas' own way to build a frame from its blocks (pandas 3), or None."""
    from importlib import import_module

    try:
        return import_module("pandas.api.internals").create_dataframe_from_blocks
    except (ImportError, AttributeError):
        return None


def _frame_of(table: Any, mapping: Any) -> Any:
    """The frame a table holds, exactly as it was saved, every array pandas assigns into
    writable (as in the notebook).

    Mapped, Arrow converts numbers, datetimes and categorical codes without a copy
    (split_blocks: a block per column) but read-only (its buffers are immutable), and pandas
    will not assign into them ("assignment destination is read-only"): each becomes a
    writable view of the same bytes of the private mapping, and neighbouring columns of one
    dtype (adjacent in the file) one 2-D block again, as pandas keeps them. pandas 3 reads
    every Arrow string as its str dtype: a column that was of objects becomes one again."""
    import pandas as pd

    frame = table.to_pandas(split_blocks=mapping is not None)
    objects = _object_columns(table, frame)
    blocks = [(block.values, block.mgr_locs.as_array) for block in frame._mgr.blocks]
    if mapping is None and not objects and all(_is_writable(values) for values, _ in blocks):
        return frame
    build = _frame_from_blocks()
    if build is None:  # pandas before 3: a copy of its own
        frame = frame.copy(deep=True)
        for position, column in objects.items():
            frame.isetitem(position, pd.Series(column, index=frame.index, dtype=object))
        return frame
    arrays = []
    for values, placement in blocks:
        if len(placement) == 1 and int(placement[0]) in objects:
            arrays.append((objects[int(placement[0])].reshape(1, -1), placement))
        else:
            arrays.append((_writable_values(values, mapping), placement))
    if mapping is not None:
        arrays = _consolidated(arrays, mapping)
    result = build(arrays, index=frame.index, columns=frame.columns)
    result.attrs = frame.attrs
    return result


def _object_columns(table: Any, frame: Any) -> dict[int, Any]:
    """Object arrays for the columns that were of objects but did not come back so."""
    metadata = table.schema.pandas_metadata or {}
    objects = {}
    for position, entry in enumerate(metadata.get("columns", [])[: frame.shape[1]]):
        dtype = frame.dtypes.iloc[position]
        if entry.get("numpy_type") == "object" and not _is_object(dtype):
            column = table.column(entry.get("field_name") or entry["name"])
            objects[position] = column.to_numpy(zero_copy_only=False).astype(object)
    return objects


def _is_object(dtype: Any) -> bool:
    """Whether a pandas dtype is numpy's object dtype (pandas 3's str dtype is not)."""
    import numpy as np

    return isinstance(dtype, np.dtype) and dtype.kind == "O"


def _backing_arrays(values: Any) -> list[Any]:
    """The numpy arrays an array of a frame's block keeps its data in."""
    import numpy as np

    if isinstance(values, np.ndarray):
        return [values]
    if hasattr(values, "_from_backing_data"):  # Categorical, datetimes with tz, periods...
        return [values._ndarray]
    if hasattr(values, "_mask") and hasattr(values, "_data"):  # nullable Int64, boolean...
        return [values._data, values._mask]
    return []  # Arrow-backed strings and others: pandas never writes into them


def _is_writable(values: Any) -> bool:
    return all(array.flags.writeable for array in _backing_arrays(values))


def _writable_values(values: Any, mapping: Any) -> Any:
    import numpy as np

    if _is_writable(values):
        return values
    if isinstance(values, np.ndarray):
        return _writable(values, mapping)
    if hasattr(values, "_from_backing_data"):
        return values._from_backing_data(_writable(values._ndarray, mapping))
    return type(values)(_writable(values._data, mapping), _writable(values._mask, mapping))


def _writable(array: Any, mapping: Any) -> Any:
    """A writable array of `array`'s values: a view of the private mapping where it lies in
    it, else a copy."""
    if array.flags.writeable:
        return array
    start = _offset_in(array, mapping)
    if start is None:
        return array.copy()
    return mapping[start : start + array.nbytes].view(array.dtype).reshape(array.shape)


def _offset_in(array: Any, mapping: Any) -> int | None:
    """Where `array`'s bytes start in `mapping`, or None (not in it, or not contiguous)."""
    if mapping is None or array.dtype.hasobject or not array.flags.c_contiguous:
        return None
    start: int = array.__array_interface__["data"][0] - mapping.__array_interface__["data"][0]
    return start if start >= 0 and start + array.nbytes <= mapping.nbytes else None


def _consolidated(arrays: list[tuple[Any, Any]], mapping: Any) -> list[tuple[Any, Any]]:
    """Columns of one dtype that follow each other in the mapping as one 2-D block."""
    import numpy as np

    kept, mapped = [], []
    for values, placement in arrays:
        start = _offset_in(values, mapping) if isinstance(values, np.ndarray) else None
        if start is None or values.ndim != 2 or not values.size:
            kept.append((values, placement))
        else:
            mapped.append((start, values, placement))
    runs: list[list[tuple[int, Any, Any]]] = []
    for start, values, placement in sorted(mapped, key=lambda item: item[0]):
        previous = runs[-1][-1] if runs else None
        if (
            previous is not None
            and previous[1].dtype == values.dtype
            and previous[1].shape[1] == values.shape[1]
            and previous[0] + previous[1].nbytes == start
        ):
            runs[-1].append((start, values, placement))
        else:
            runs.append([(start, values, placement)])
    for run in runs:
        first, (last_start, last, _) = run[0][0], run[-1]
        rows = sum(values.shape[0] for _, values, _ in run)
        block = mapping[first : last_start + last.nbytes].view(last.dtype)
        placements = np.concatenate([placement for _, _, placement in run])
        kept.append((block.reshape(rows, last.shape[1]), placements))
    return kept


def _save_arrow(value: Any, path: Path) -> None:
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, value.schema) as writer:
        writer.write_table(value)


def _load_arrow(path: Path) -> Any:
    import pyarrow as pa

    source = pa.memory_map(str(path), "r")  # zero-copy: the table reads from the mapping
    return pa.ipc.open_file(source).read_all()


def _save_torch(value: Any, path: Path) -> None:
    import torch

    torch.save(value, str(path))


def _load_torch(path: Path) -> Any:
    import torch

    return torch.load(str(path), weights_only=False)


def _save_joblib(value: Any, path: Path) -> None:
    import joblib

    joblib.dump(value, str(path))


def _load_joblib(path: Path) -> Any:
    import joblib

    return joblib.load(str(path))


_SAVERS = {
    "cloudpickle": _save_cloudpickle,
    "npy": _save_npy,
    "arrow-pandas": _save_arrow_pandas,
    "arrow": _save_arrow,
    "torch": _save_torch,
    "joblib": _save_joblib,
}
_LOADERS = {
    "cloudpickle": _load_pickle,  # cloudpickle's output is read by plain pickle
    "npy": _load_npy,
    "arrow-pandas": _load_arrow_pandas,
    "arrow": _load_arrow,
    "torch": _load_torch,
    "joblib": _load_joblib,
}


def unsavable_message(name: str, value: Any, step: str, error: BaseException) -> str:
    kind = type(value).__name__
    hint = {
        "TextIOWrapper": "open the file again in the step that reads it",
        "BufferedReader": "open the file again in the step that reads it",
        "BufferedWriter": "close it and hand on the file's path instead",
        "generator": "turn it into a list (list(...)) before the step ends",
        "Connection": "connect again in the step that uses it",
        "Cursor": "connect again in the step that uses it",
        "socket": "connect again in the step that uses it",
    }.get(kind, "hand on the data it holds instead, or create it again in the steps that use it")
    return f"step {step!r} cannot hand on {name!r}: a {kind} cannot be saved ({error}); {hint}"
