"""REST handlers under /cellpipe/api: parse, authorise, answer. The work is in core.py.

Every verb is `@web.authenticated` and `@authorized` on the `cellpipe` resource (tests check
each route in ROUTES). Errors are JSON {"message", "reason"} (and, for notebook problems, the
compile JSON with its `errors`), mapped from core.ApiError in one place: CellPipeHandler.
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from .core import FINISHED, ApiError, CellPipeService

AUTH_RESOURCE = "cellpipe"
SERVICE_SETTING = "cellpipe_service"
CANCEL_WAIT_SECONDS = 10.0  # POST .../cancel answers once the run has ended, or after this
EVENTS_POLL_SECONDS = 1.0  # runs started elsewhere (the CLI) are noticed by polling the store
EVENTS_KEEPALIVE_SECONDS = 15.0


class CellPipeHandler(APIHandler):
    """The base of every cellpipe handler: the service, JSON bodies, ApiError as JSON."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> CellPipeService:
        service: CellPipeService = self.settings[SERVICE_SETTING]
        return service

    def json_body(self) -> dict[str, Any]:
        body = self.get_json_body()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the request body must be a JSON object")
        return body

    def answer(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, ApiError):
            self.set_status(error.status)
            self.finish(json.dumps(error.to_json()))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, ApiError):  # a refusal, not a server fault: no traceback
            self.log.info("cellpipe: %s %s: %s", value.status, value.reason, value.message)
            return
        super().log_exception(typ, value, tb)


class CompileHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        self.answer(await asyncio.to_thread(self.service.compile, body))


class RunsHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(self.service.list_runs(self.get_query_argument("notebook", None)))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        run = await asyncio.to_thread(self.service.start_run, body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + run["run_id"])
        self.answer(run, 202)


class RunHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.answer(self.service.get_run(run_id))

    @web.authenticated
    @authorized
    async def delete(self, run_id: str) -> None:
        force = self.get_query_argument("force", "false").lower() in ("1", "true", "yes")
        await asyncio.to_thread(self.service.delete_run, run_id, force)
        self.set_status(204)
        self.finish()


class RunCancelHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        ended = self.service.runs.cancel(run_id)
        await asyncio.wait([asyncio.wrap_future(ended)], timeout=CANCEL_WAIT_SECONDS)
        run = self.service.get_run(run_id)
        self.answer(run, 200 if run["status"] in FINISHED else 202)


class RunLogsHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        step = self.get_query_argument("step", None)
        self.answer(await asyncio.to_thread(self.service.run_logs, run_id, step))


class RunEventsHandler(CellPipeHandler):
    """Server-sent events: `run` (the whole run, as GET /runs/ID) on every change, then `end`."""

    _closed = False

    def on_connection_close(self) -> None:
        self._closed = True
        super().on_connection_close()

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        service = self.service
        service.get_run(run_id)  # 404 before the stream starts
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies: pass each event on at once
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unwatch = service.runs.watch(run_id, lambda: loop.call_soon_threadsafe(changed.set))
        last: dict[str, Any] | None = None
        quiet = 0.0
        try:
            while not self._closed:
                changed.clear()
                record = service.runs.get(run_id)
                if record is None:
                    self.write(_event("deleted", {"run_id": run_id}))
                    break
                run = service.run_json(record)
                if run != last:
                    self.write(_event("run", run))
                    last, quiet = run, 0.0
                elif quiet >= EVENTS_KEEPALIVE_SECONDS:
                    self.write(": keep-alive\n\n")
                    quiet = 0.0
                if run["status"] in FINISHED and not service.runs.is_active(run_id):
                    self.write(_event("end", {"run_id": run_id, "status": run["status"]}))
                    break
                await self.flush()
                try:
                    await asyncio.wait_for(changed.wait(), EVENTS_POLL_SECONDS)
                except asyncio.TimeoutError:
                    quiet += EVENTS_POLL_SECONDS
            if not self._closed:
                self.finish(set_content_type="text/event-stream")
        except StreamClosedError:
            pass  # the client left
        finally:
            unwatch()


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class GpusHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(self.service.gpus())


class ConfigHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(self.service.config_json())


_RUN = r"/runs/(?P<run_id>[\w.-]+)"

# Paths under the API namespace. Builds (POST /builds, GET /builds/ID) join when the image
# builders land.
ROUTES: list[tuple[str, type[CellPipeHandler]]] = [
    (r"/compile", CompileHandler),
    (r"/runs", RunsHandler),
    (_RUN, RunHandler),
    (_RUN + r"/cancel", RunCancelHandler),
    (_RUN + r"/logs", RunLogsHandler),
    (_RUN + r"/events", RunEventsHandler),
    (r"/gpus", GpusHandler),
    (r"/config", ConfigHandler),
]
