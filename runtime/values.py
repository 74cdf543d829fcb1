"""Values handed between steps, each in a fast native format chosen by its type.

The format is written next to the value (and into the KFP artifact's metadata), so the
receiving step reads it back without guessing. Libraries are imported only when a value of
theirs is seen: a step that hands on a list never imports numpy.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

FORMAT_FILE = "cellpipe-format.json"


class UnsavableValue(Exception):
    """A value cannot be handed on (an open file, a generator...); `name`: which output, where
    save_all knows it."""

    name: str | None = None


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


# --- a step's outputs, written from their own memory -----------------------------------------


def save_all(outputs: dict[str, Any], folder: Path, release: bool = False) -> dict[str, str]:
    """Save each output into `folder/NAME`; returns each one's format.

    With `release` (a step process that ends once its outputs are saved and reads none of
    them again): large arrays and frames are written from their own memory, and their pages
    go back to the OS as each piece reaches the file. The file's pages in the OS's cache then
    reuse memory just freed, where new memory would cost far more on a virtual machine whose
    host takes idle free memory back (2.6 s per GB measured here, against 0.2 s).
    Released memory reads as zeros, so nothing may read it afterwards: every other output is
    saved first (a pickled one may hold a reference to an array), and no page is released
    that a value still to be written lies in. An output nothing can save raises
    UnsavableValue with its name.
    """
    natives = {}
    if release and _can_release():
        natives = {name: n for name, v in outputs.items() if (n := _native(v)) is not None}
    # The others first, then each native one, keeping what those after it are written from
    order = [name for name in outputs if name not in natives] + list(natives)
    formats = {}
    for position, name in enumerate(order):
        keep = [
            span
            for other in order[position + 1 :]
            if other in natives
            for span in natives[other].spans
        ]
        try:
            if name in natives:
                formats[name] = natives[name].save(outputs[name], folder / name, keep)
            else:
                formats[name] = save(outputs[name], folder / name)
        except UnsavableValue as exc:
            exc.name = name
            raise
    return {name: formats[name] for name in outputs}


_PAGE = 4096
_PIECE = 16 << 20  # written, then released: the cache's first piece is the only new memory
_MADV_DONTNEED = 4  # Linux


def _can_release() -> bool:
    """Linux, and no other Python thread that could still read a value being released."""
    import threading

    return sys.platform.startswith("linux") and threading.active_count() == 1


class _Native:
    """A large array or frame ready to be written from its own memory: the file's format and
    record, its bytes' spans in memory (start, end), and how to write it to a sink."""

    def __init__(
        self, fmt: str, record: dict[str, Any], spans: list[tuple[int, int]], write: Any
    ) -> None:
        self.fmt, self.record, self.spans, self.write = fmt, record, spans, write

    def save(self, value: Any, directory: Path, keep: list[tuple[int, int]]) -> str:
        """Write the file, releasing this value's pages but those in `keep` or in two of its
        own spans; where writing fails before anything was released, saved as any value."""
        directory.mkdir(parents=True, exist_ok=True)
        _clear(directory)
        sink = _ReleasingFile(directory / "value", _releasable(self.spans, keep))
        try:
            with sink:
                self.write(sink)
        except Exception as exc:
            _clear(directory)
            if sink.released:  # its memory is gone: no second try from it
                raise UnsavableValue(f"writing it failed ({exc})") from exc
            return save(value, directory)
        (directory / FORMAT_FILE).write_text(json.dumps(self.record))
        return self.fmt


def _native(value: Any) -> _Native | None:
    """The value as a _Native where it is a large array or frame whose native format takes it
    (checked now, before anything is released); None: saved as any value."""
    fmt = choose_format(value)
    try:
        if fmt == "npy":
            return _native_npy(value)
        if fmt == "arrow-pandas" and _frame_bytes(value) >= MAP_FROM_BYTES:
            return _native_arrow(value)
    except Exception:  # save() tries again, with its fallbacks, and says why where all fail
        return None
    return None


def _native_npy(value: Any) -> _Native | None:
    import io

    import numpy as np

    array = np.asarray(value)
    if array.nbytes < MAP_FROM_BYTES or array.dtype.hasobject:
        return None
    if array.flags.c_contiguous:
        body = array.reshape(-1).view(np.uint8)
    elif array.flags.f_contiguous:  # written as np.save writes it: the transpose's bytes
        body = array.T.reshape(-1).view(np.uint8)
    else:
        return None
    header = io.BytesIO()
    fields = np.lib.format.header_data_from_array_1_0(array)
    try:
        np.lib.format.write_array_header_1_0(header, fields)
    except ValueError:  # a header too long for version 1.0, as np.save does
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, fields)
    record: dict[str, Any] = {"format": "npy"}
    if not array.flags.writeable:  # read-only in the notebook: here too
        record["read_only"] = True

    def write(sink: _ReleasingFile) -> None:
        sink.write(header.getvalue())
        sink.write(body)

    start = _address(body)
    return _Native("npy", record, [(start, start + body.nbytes)], write)


def _frame_bytes(value: Any) -> int:
    return int(value.memory_usage(index=True, deep=False).sum())


def _native_arrow(value: Any) -> _Native:
    import pyarrow as pa

    table = _arrow_pandas_table(value)
    spans = []
    for column in table.columns:
        for chunk in column.chunks:
            arrays = [chunk, chunk.dictionary] if pa.types.is_dictionary(chunk.type) else [chunk]
            for array in arrays:
                for buffer in array.buffers():
                    if buffer is not None and buffer.size:
                        spans.append((buffer.address, buffer.address + buffer.size))

    def write(sink: _ReleasingFile) -> None:
        with pa.PythonFile(sink, mode="w") as stream:
            _write_arrow_file(table, stream)

    return _Native("arrow-pandas", {"format": "arrow-pandas"}, spans, write)


def _address(buffer: Any) -> int:
    import numpy as np

    address: int = np.frombuffer(buffer, dtype=np.uint8).ctypes.data
    return address


def _releasable(spans: list[tuple[int, int]], keep: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `spans` in no other of them and in nothing of `keep`: memory written once,
    and read by nothing after (a sweep over the spans' ends: how many cover each stretch)."""
    changes: dict[int, int] = {}
    for (start, end), weight in [*((span, 1) for span in spans), *((span, 2) for span in keep)]:
        changes[start] = changes.get(start, 0) + weight
        changes[end] = changes.get(end, 0) - weight
    free: list[tuple[int, int]] = []
    covering = 0
    points = sorted(changes)
    for start, end in itertools.pairwise(points):
        covering += changes[start]
        if covering == 1:
            if free and free[-1][1] == start:
                free[-1] = (free[-1][0], end)
            else:
                free.append((start, end))
    return free


class _ReleasingFile:
    """A new file written in pieces; after each piece, the pages of `releasable` memory it was
    written from go back to the OS (MADV_DONTNEED: the memory reads as zeros afterwards)."""

    def __init__(self, path: Path, releasable: list[tuple[int, int]]) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.releasable = releasable
        self.position = 0
        self.released = 0
        self.closed = False
        self._madvise = _madvise() if releasable else None

    def __enter__(self) -> _ReleasingFile:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        start = _address(view) if self._madvise is not None and len(view) else 0
        for offset in range(0, len(view), _PIECE):
            piece = view[offset : offset + _PIECE]
            written = 0
            while written < len(piece):
                written += os.write(self.fd, piece[written:])
            self._release(start + offset, start + offset + len(piece))
        self.position += len(view)
        return len(view)

    def _release(self, start: int, end: int) -> None:
        if self._madvise is None:
            return
        for span_start, span_end in self.releasable:
            low = -(-max(start, span_start) // _PAGE) * _PAGE  # whole pages only
            high = min(end, span_end) // _PAGE * _PAGE
            if high > low and self._madvise(low, high - low, _MADV_DONTNEED) == 0:
                self.released += high - low

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


def _madvise() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.madvise
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


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
    import pyarrow as pa

    table = _arrow_pandas_table(value)
    with pa.OSFile(str(path), "wb") as sink:
        _write_arrow_file(table, sink)


def _write_arrow_file(table: Any, sink: Any) -> None:
    """Uncompressed, one record batch: each column's buffer is written from the frame's own
    memory (no second copy), and a reader maps it without decoding."""
    import pyarrow as pa

    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
        if not table.num_rows:  # no batch at all would lose the categories of categoricals
            columns = [column.chunk(0) for column in table.columns]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=table.schema))


def _arrow_pandas_table(value: Any) -> Any:
    """The Arrow table a frame or series is saved as; TypeError where it would not give the
    value back exactly."""
    import pandas as pd

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
    return table.replace_schema_metadata(metadata)


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
