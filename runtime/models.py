"""A step's model (`model:NAME`), saved in the format a serving runtime reads (issue 19).

KServe's runtimes each read their own files: scikit-learn `model.joblib`, XGBoost
`model.json`, LightGBM `model.bst`; PyTorch is kept as TorchScript (`model.pt`) or, when the
module cannot be scripted, its state dict with its code (cloudpickled). Any other value is
cloudpickled (`model.pkl`) for cellpipe's custom predictor (runtime/model_server.py), which
serves every format here. INFO_FILE records the format, the libraries' versions and a few
rows of the data the step saw (the sidebar's prediction form starts from them).

Nothing here imports kserve; the libraries of a format are imported only to save or load it.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

INFO_FILE = "cellpipe-model.json"
# KServe's modelFormat names (serving.kserve.io), and cellpipe's own for the rest
BUILT_IN_FORMATS = ("sklearn", "xgboost", "lightgbm", "pytorch")
CUSTOM_FORMAT = "custom"
FILES = {
    "sklearn": "model.joblib",
    "xgboost": "model.json",
    "lightgbm": "model.bst",
    "pytorch": "model.pt",
    CUSTOM_FORMAT: "model.pkl",
}
_SAMPLE_ROWS = 3
# the libraries whose versions matter to whoever loads each format
_LIBRARIES = {
    "sklearn": ["scikit-learn", "joblib", "numpy"],
    "xgboost": ["xgboost", "xgboost-cpu", "numpy"],  # xgboost-cpu: the same module, CPU only
    "lightgbm": ["lightgbm", "numpy"],
    "pytorch": ["torch", "cloudpickle"],
    CUSTOM_FORMAT: ["cloudpickle"],
}


class UnsavableModel(Exception):
    """The value marked as a model cannot be written in any format."""


@dataclass(frozen=True)
class SavedModel:
    name: str
    format: str
    file: str
    versions: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "file": self.file,
            "versions": self.versions,
        }


def model_format(value: Any) -> str:
    """The serving format of a value: a KServe runtime's, or `custom`."""
    module = type(value).__module__.split(".")[0]
    if module == "sklearn":
        return "sklearn"
    if module == "xgboost" and hasattr(value, "save_model"):
        return "xgboost"
    if module == "lightgbm" and (hasattr(value, "save_model") or hasattr(value, "booster_")):
        return "lightgbm"
    if _is_torch_module(value):
        return "pytorch"
    return CUSTOM_FORMAT


def _is_torch_module(value: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")  # a torch module exists only where torch was imported
    return torch is not None and isinstance(value, torch.nn.Module)


def save_model(
    name: str, value: Any, directory: Path, namespace: dict[str, Any] | None = None
) -> SavedModel:
    """Write `value` into `directory` in its serving format, with INFO_FILE beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    fmt = model_format(value)
    extra: dict[str, Any] = {}
    try:
        if fmt == "sklearn":
            import joblib

            joblib.dump(value, directory / FILES[fmt])
        elif fmt == "xgboost":
            value.save_model(str(directory / FILES[fmt]))
        elif fmt == "lightgbm":
            booster = value.booster_ if hasattr(value, "booster_") else value
            booster.save_model(str(directory / FILES[fmt]))
        elif fmt == "pytorch":
            extra["pytorch"] = _save_torch(value, directory)
        else:
            import cloudpickle

            (directory / FILES[fmt]).write_bytes(cloudpickle.dumps(value))
    except Exception as exc:
        raise UnsavableModel(f"{type(exc).__name__}: {exc}") from exc
    saved = SavedModel(name, fmt, FILES[fmt], versions(fmt))
    info = {**saved.to_json(), **extra, "class": _class_name(value)}
    sample = data_sample(value, namespace or {})
    if sample is not None:
        info["sample"] = sample
    (directory / INFO_FILE).write_text(json.dumps(info, default=str), encoding="utf-8")
    return saved


def _save_torch(module: Any, directory: Path) -> str:
    """TorchScript when the module scripts; else its state dict and its code (cloudpickle)."""
    import torch

    try:
        torch.jit.script(module).save(str(directory / FILES["pytorch"]))
        return "torchscript"
    except Exception:  # a module TorchScript cannot compile: the state dict and its code
        import cloudpickle

        torch.save(module.state_dict(), directory / FILES["pytorch"])
        (directory / "module.pkl").write_bytes(cloudpickle.dumps(module))
        return "state_dict"


def versions(fmt: str) -> dict[str, str]:
    """Python's and the format's libraries' versions, as installed where the step ran."""
    found = {"python": platform.python_version()}
    for library in _LIBRARIES[fmt]:
        try:
            found[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            continue
    return found


def _class_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def data_sample(model: Any, namespace: dict[str, Any]) -> dict[str, Any] | None:
    """A few rows of the data the step fitted the model on: the step's 2-D frame or array
    whose columns are the model's features (`n_features_in_`, `feature_names_in_`), a test
    set before the others. None when the step holds no such value."""
    width = getattr(model, "n_features_in_", None)
    columns = getattr(model, "feature_names_in_", None)
    wanted = [str(c) for c in columns] if columns is not None else None
    candidates = []
    for name, value in namespace.items():
        shape = getattr(value, "shape", None)
        if name.startswith("_") or not isinstance(shape, tuple) or len(shape) != 2:
            continue
        if width is not None and shape[1] != width:
            continue
        frame_columns = [str(c) for c in getattr(value, "columns", [])] or None
        named = wanted is not None and frame_columns is not None
        if named and _plain_names(frame_columns or []) != _plain_names(wanted or []):
            continue
        rank = 0 if "test" in name.lower() else 1 if name.lower().startswith("x") else 2
        candidates.append((rank, name, value, frame_columns))
    if not candidates or width is None:
        return None
    _, _, value, frame_columns = min(candidates, key=lambda c: c[:2])
    rows = value.iloc[:_SAMPLE_ROWS].to_numpy() if hasattr(value, "iloc") else value[:_SAMPLE_ROWS]
    sample: dict[str, Any] = {"instances": _json_rows(rows)}
    if frame_columns is not None:
        sample["columns"] = frame_columns
    return sample


def _plain_names(columns: list[str]) -> list[str]:
    """Column names as LightGBM keeps them (its feature names have `_` for white space)."""
    return ["_".join(name.split()) for name in columns]


def _json_rows(rows: Any) -> list[Any]:
    """Rows as JSON numbers and strings (numpy scalars made plain)."""
    listed = rows.tolist() if hasattr(rows, "tolist") else [list(r) for r in rows]
    plain: list[Any] = json.loads(json.dumps(listed, default=str))
    return plain


def read_info(directory: Path) -> dict[str, Any]:
    """The model's INFO_FILE."""
    info: dict[str, Any] = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
    return info


def load_model(directory: Path) -> Any:
    """The model as its format's library loads it (what the custom predictor calls)."""
    info = read_info(directory)
    fmt, path = info["format"], directory / info["file"]
    if fmt == "sklearn":
        import joblib

        return joblib.load(path)
    if fmt == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(path))
        return booster
    if fmt == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_file=str(path))
    if fmt == "pytorch":
        return _load_torch(directory, info)
    import cloudpickle

    return cloudpickle.loads(path.read_bytes())


def _load_torch(directory: Path, info: dict[str, Any]) -> Any:
    import torch

    if info.get("pytorch") == "torchscript":
        module = torch.jit.load(str(directory / FILES["pytorch"]))
    else:
        import cloudpickle

        module = cloudpickle.loads((directory / "module.pkl").read_bytes())
        module.load_state_dict(torch.load(directory / FILES["pytorch"]))
    module.eval()
    return module
