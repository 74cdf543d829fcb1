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
    candidates = dict.fromkeys([choose_format(value), "cloudpickle"])
    error: Exception | None = None
    for fmt in candidates:
        try:
            _SAVERS[fmt](value, directory / "value")
        except Exception as exc:
            error = exc
            _clear(directory)
            continue
        (directory / FORMAT_FILE).write_text(json.dumps({"format": fmt}))
        return fmt
    raise UnsavableValue(str(error)) from error


def load(directory: Path, fmt: str | None = None) -> Any:
    if fmt is None:
        fmt = json.loads((directory / FORMAT_FILE).read_text())["format"]
    return _LOADERS[fmt](directory / "value")


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

    # Copy-on-write mapping: nothing is read until used, and the step may change it freely.
    if os.path.getsize(path) < 1 << 20:
        return np.load(path, allow_pickle=False)
    return np.load(path, mmap_mode="c", allow_pickle=False)


def _save_arrow_pandas(value: Any, path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    frame = value.to_frame(name=value.name) if isinstance(value, pd.Series) else value
    if not _arrow_keeps_labels(frame):  # e.g. integer column labels: keep exactness
        raise TypeError("Arrow does not round-trip this frame's labels")
    # preserve_index=None keeps a RangeIndex as metadata (no column) and other indexes as data
    table = pa.Table.from_pandas(frame, preserve_index=None)
    if isinstance(value, pd.Series):
        metadata = dict(table.schema.metadata or {})
        metadata[b"cellpipe.series"] = json.dumps({"name": _json_name(value.name)}).encode()
        table = table.replace_schema_metadata(metadata)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _arrow_keeps_labels(frame: Any) -> bool:
    """Arrow stores column labels as strings: only unique string labels come back as they were
    (values of a type Arrow cannot hold make from_pandas raise, and the fallback takes over)."""
    import pandas as pd

    columns = frame.columns
    return (
        not isinstance(columns, pd.MultiIndex)
        and columns.is_unique
        and all(isinstance(label, str) for label in columns)
        and all(name is None or isinstance(name, str) for name in frame.index.names)
    )


def _json_name(name: Any) -> Any:
    json.dumps(name)  # raises for names Arrow metadata cannot carry
    return name


def _load_arrow_pandas(path: Path) -> Any:
    import pyarrow as pa

    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
    frame = table.to_pandas()
    series = (table.schema.metadata or {}).get(b"cellpipe.series")
    if series is not None:
        return frame.iloc[:, 0].rename(json.loads(series)["name"])
    return frame


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
