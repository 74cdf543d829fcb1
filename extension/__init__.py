"""cellpipe: tag notebook cells as steps; run the notebook as a Kubeflow pipeline.

This module is imported first by everything under `cellpipe`, step images included, so it
imports nothing heavy: front doors (CLI, magics, server) import their own dependencies.
"""

from __future__ import annotations

from typing import Any

from cellpipe.runtime.version import VERSION as __version__  # noqa: F401 (re-exported)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The jupyter-server extension (REST API under /cellpipe/api); imported only when asked."""
    from cellpipe.server_ext.app import CellPipeApp

    return [{"module": "cellpipe.server_ext", "app": CellPipeApp}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext cellpipe`: the `%%step` and `%cellpipe` magics (cellpipe.magics)."""
    from cellpipe.magics import load_ipython_extension as load_magics

    load_magics(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from cellpipe.magics import unload_ipython_extension as unload_magics

    unload_magics(ipython)


def load(run_id: str, name: str, step: str | None = None) -> Any:
    """The value `name` a step of run `run_id` handed on (the last step that hands it on,
    or `step`), or the run's metric `name`: `model = cellpipe.load("20250101-...", "model")`."""
    from cellpipe.launcher.results import load as load_result

    return load_result(run_id, name, step)


def predict(url: str, rows: Any, model: str | None = None) -> list[Any]:
    """A served model's predictions for `rows` (a frame, an array or lists), by KServe's V1
    protocol: `cellpipe.predict("http://127.0.0.1:8080", X_test[:5])`. `url` is what `cellpipe
    serve` printed (its one model is asked for), or a whole `.../v1/models/NAME:predict`."""
    from cellpipe.launcher.serving import predict as predict_rows

    return predict_rows(url, rows, model)
