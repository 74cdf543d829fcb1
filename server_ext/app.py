"""The jupyter-server extension app: configuration, the run manager, the routes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import default

from cellpipe.launcher.config import CellPipe

from . import API_NAMESPACE
from .core import CellPipeService
from .handlers import ROUTES, SERVICE_SETTING


class CellPipeApp(ExtensionApp):
    """cellpipe's REST API under /cellpipe/api (configured by c.CellPipe.*)."""

    name = "cellpipe"
    description = "cellpipe: tagged notebooks as Kubeflow pipelines; REST API for the sidebar."
    load_other_extensions = True
    classes = [*ExtensionApp.classes, CellPipe]  # noqa: RUF012 (traitlets' own shape)

    service: CellPipeService | None = None

    @default("open_browser")
    def _no_browser(self) -> bool:  # an API, no page of its own
        return False

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        contents = self.serverapp.contents_manager
        self.service = CellPipeService(
            CellPipe(parent=self),
            Path(contents.root_dir),
            allow_hidden=bool(contents.allow_hidden),
            log=self.log,
        )
        self.settings[SERVICE_SETTING] = self.service

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            (url_path_join(API_NAMESPACE, pattern), handler) for pattern, handler in ROUTES
        )

    def current_activity(self) -> Any:
        """Running runs and builds count as activity, so an idle culler leaves the server
        alone."""
        if self.service is None:
            return None
        busy = self.service.runs.active_ids() or self.service.builds.busy()
        return bool(busy) or None

    async def stop_extension(self) -> None:
        if self.service is not None:
            self.service.builds.shutdown()
            await asyncio.to_thread(self.service.runs.shutdown)


def main() -> None:
    """`jupyter cellpipe [--help-all]`: a Jupyter server with the cellpipe API."""
    CellPipeApp.launch_instance()  # type: ignore[no-untyped-call]
