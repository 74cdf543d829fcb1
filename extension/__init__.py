"""cellpipe: tag notebook cells as steps; run the notebook as a Kubeflow pipeline.

This module is imported first by everything under `cellpipe`, step images included, so it
imports nothing heavy: front doors (CLI, magics, server) import their own dependencies.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The jupyter-server extension (REST API under /cellpipe/api); imported only when asked."""
    from cellpipe.server_ext.app import CellPipeApp

    return [{"module": "cellpipe.server_ext", "app": CellPipeApp}]
