"""REST handlers under /cellpipe/api: parse, authorise, answer. The work is in core.py.

Every verb is `@web.authenticated` and `@authorized` on the `cellpipe` resource (tests check
each route in ROUTES): GET asks for `read`, DELETE and POST for `write`, and the routes that run
notebook code or build an image (POST /runs, POST /builds) for `execute`, as the kernel routes
do. Errors are JSON {"message", "reason"} (and, for notebook problems, the
compile JSON with its `errors`), mapped from core.ApiError in one place: CellPipeHandler.

    POST /compile                 {"path"} | {"content", "path"?}, "yaml"?: the compile JSON
    GET  /runs[?notebook=PATH]    {"runs": [...]}, newest first
    POST /runs                    202 {run}: engine local | kfp-local, or a cluster engine
                                  (kfp | pytorchjob | tfjob | xgboostjob | mpijob | trainjob)
    GET  /runs/ID                 the run (`cellpipe status --format json`; a cluster run's
                                  status asked of its engine, else the last known one)
    DELETE /runs/ID[?force=true][&keep_remote=true]   204; a cluster run in its engine too
    POST /runs/ID/cancel          200 {run} once ended, 202 while it stops
    GET  /runs/ID/logs[?step=S]   {"text", "source", ...}: local files, or the cluster's pods
    GET  /runs/ID/events          server-sent events: `run` on every change, then `end`
    GET  /runs/ID/notebook        the executed notebook (nbformat JSON, every cell's outputs);
                                  404 `no_notebook` until the run has one
    GET  /builds                  {"builds": [...]}: builds of notebooks under the root, newest
                                  first (kept in CELLPIPE_HOME/builds, across restarts)
    POST /builds                  202 {build}: {"path", "registry"?, "builder"?, "base"?}
    GET  /builds/ID               the build: status, progress, result (`cellpipe build
                                  --format json`), error
    GET  /builds/ID/events        server-sent events: `build` on every change, then `end`
    POST /tunes                   202 {tune}: {"path", "objective", "direction", "search":
                                  {NAME: SPACE}, "trials"?, "parallel"?, "algorithm"?, "seed"?,
                                  "goal"?, "engine"?: local | katib} (server_ext/tunes.py)
    GET  /tunes[?notebook=PATH]   {"tunes": [...]}, newest first
    GET  /tunes/ID                the tune (`cellpipe tune --format json`) and its status
    GET  /tunes/ID/events         server-sent events: `tune` on every change, then `end`
    POST /tunes/ID/cancel         stops after the running trials; DELETE /tunes/ID removes it
    GET  /gpus                    `cellpipe gpus --format json`, and `this_machine`
    GET  /config                  c.CellPipe.* but the secrets; offered engines; capabilities
    GET  /runs/ID/models, POST|GET /services, GET|DELETE /services/ID,
    POST /services/ID/predict     serving a run's model (server_ext/serving.py says what each
                                  answers)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from cellpipe.launcher.errors import UserError
from cellpipe.launcher.vocabulary import CLUSTER_ENGINES, FINISHED

from .core import ApiError, CellPipeService

AUTH_RESOURCE = "cellpipe"
SERVICE_SETTING = "cellpipe_service"
# What running notebook code or building an image asks of the authorizer (jupyter_server's
# kernel routes ask the same): a hub may grant read and write without it.
EXECUTE = "execute"

_Method = TypeVar("_Method", bound=Callable[..., Any])


def authorized_to(action: str) -> Callable[[_Method], _Method]:
    """jupyter_server's `@authorized(action)`, typed (its stubs type only the bare use)."""
    return cast(Callable[[_Method], _Method], authorized(action))


CANCEL_WAIT_SECONDS = 10.0  # POST .../cancel answers once the run has ended, or after this
EVENTS_POLL_SECONDS = 1.0  # runs started elsewhere (the CLI) are noticed by polling the store
EVENTS_KEEPALIVE_SECONDS = 15.0
CLUSTER_EVENTS_SECONDS = 5.0  # how often the event stream asks a cluster engine for news


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

    def flag(self, name: str) -> bool:
        """A yes/no query argument (`?force=true`)."""
        return self.get_query_argument(name, "false").lower() in ("1", "true", "yes")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, UserError):
            error = ApiError.from_user_error(error)
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
        if isinstance(value, UserError):
            value = ApiError.from_user_error(value)
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
    @authorized_to(EXECUTE)
    async def post(self) -> None:
        body = self.json_body()
        run = await asyncio.to_thread(self.service.start_run, body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + run["run_id"])
        self.answer(run, 202)


class RunHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.answer(await asyncio.to_thread(self.service.get_run, run_id))

    @web.authenticated
    @authorized
    async def delete(self, run_id: str) -> None:
        force = self.flag("force")
        keep_remote = self.flag("keep_remote")
        await asyncio.to_thread(self.service.delete_run, run_id, force, keep_remote)
        self.set_status(204)
        self.finish()


class RunCancelHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        ended = await asyncio.to_thread(self.service.cancel_run, run_id)
        if ended is not None:
            await asyncio.wait([asyncio.wrap_future(ended)], timeout=CANCEL_WAIT_SECONDS)
        run = await asyncio.to_thread(self.service.get_run, run_id)
        self.answer(run, 200 if run["status"] in FINISHED else 202)


class RunLogsHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        step = self.get_query_argument("step", None)
        self.answer(await asyncio.to_thread(self.service.run_logs, run_id, step))


class RunNotebookHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.answer(await asyncio.to_thread(self.service.executed_notebook, run_id))


class EventStreamHandler(CellPipeHandler):
    """What the server-sent event streams share: their headers, and noticing a client left."""

    _closed = False

    def on_connection_close(self) -> None:
        self._closed = True
        super().on_connection_close()

    def start_stream(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies: pass each event on at once


class RunEventsHandler(EventStreamHandler):
    """Server-sent events: `run` (the whole run, as GET /runs/ID) on every change, then `end`.
    A cluster run's engine is asked for news every CLUSTER_EVENTS_SECONDS."""

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        service = self.service
        first = await asyncio.to_thread(service.get_run, run_id)  # 404 before the stream starts
        self.start_stream()
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unwatch = service.runs.watch(run_id, lambda: loop.call_soon_threadsafe(changed.set))
        last: dict[str, Any] | None = None
        quiet = 0.0
        asked = loop.time()  # get_run above has just asked
        refreshed: dict[str, Any] = {
            k: first[k] for k in ("refreshed", "refresh_error") if k in first
        }
        try:
            while not self._closed:
                changed.clear()
                record = service.runs.get(run_id)
                if record is None:
                    self.write(_event("deleted", {"run_id": run_id}))
                    break
                run = {**service.run_json(record), **refreshed}
                if (
                    run["engine"] in CLUSTER_ENGINES
                    and run["status"] not in FINISHED
                    and loop.time() - asked >= CLUSTER_EVENTS_SECONDS
                ):
                    asked = loop.time()
                    try:
                        run = await asyncio.to_thread(service.get_run, run_id)
                    except (ApiError, UserError):  # deleted meanwhile: said on the next turn
                        continue
                    refreshed = {k: run[k] for k in ("refreshed", "refresh_error") if k in run}
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


class BuildsHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(self.service.list_builds())

    @web.authenticated
    @authorized_to(EXECUTE)
    async def post(self) -> None:
        body = self.json_body()
        build = await asyncio.to_thread(self.service.start_build, body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + build["build_id"])
        self.answer(build, 202)


class BuildHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, build_id: str) -> None:
        self.answer(self.service.get_build(build_id))


class BuildEventsHandler(EventStreamHandler):
    """Server-sent events: `build` (as GET /builds/ID) on every change, then `end`."""

    @web.authenticated
    @authorized
    async def get(self, build_id: str) -> None:
        service = self.service
        service.get_build(build_id)  # 404 before the stream starts
        self.start_stream()
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unwatch = service.builds.watch(build_id, lambda: loop.call_soon_threadsafe(changed.set))
        last: dict[str, Any] | None = None
        quiet = 0.0
        try:
            while not self._closed:
                changed.clear()
                build = service.builds.get(build_id)
                if build is None:  # forgotten (the server keeps the last builds only)
                    self.write(_event("deleted", {"build_id": build_id}))
                    break
                if build != last:
                    self.write(_event("build", build))
                    last, quiet = build, 0.0
                elif quiet >= EVENTS_KEEPALIVE_SECONDS:
                    self.write(": keep-alive\n\n")
                    quiet = 0.0
                if build["status"] in FINISHED:
                    self.write(_event("end", {"build_id": build_id, "status": build["status"]}))
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


class TunesHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        notebook = self.get_query_argument("notebook", None)
        self.answer(await asyncio.to_thread(self.service.list_tunes, notebook))

    @web.authenticated
    @authorized_to(EXECUTE)
    async def post(self) -> None:
        body = self.json_body()
        tune = await asyncio.to_thread(self.service.start_tune, body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + tune["tune_id"])
        self.answer(tune, 202)


class TuneHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, tune_id: str) -> None:
        tunes = self.service.tunes
        self.answer(tunes.json(await asyncio.to_thread(tunes.record, tune_id)))

    @web.authenticated
    @authorized
    async def delete(self, tune_id: str) -> None:
        await asyncio.to_thread(self.service.tunes.delete, tune_id)
        self.set_status(204)
        self.finish()


class TuneCancelHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def post(self, tune_id: str) -> None:
        tune = await asyncio.to_thread(self.service.tunes.cancel, tune_id)
        self.answer(tune, 200 if tune["status"] in FINISHED else 202)


class TuneEventsHandler(EventStreamHandler):
    """Server-sent events: `tune` (as GET /tunes/ID) on every change, then `end`. A Katib
    tune is asked of the cluster every CLUSTER_EVENTS_SECONDS."""

    @web.authenticated
    @authorized
    async def get(self, tune_id: str) -> None:
        tunes = self.service.tunes
        await asyncio.to_thread(tunes.record, tune_id)  # 404 before the stream starts
        self.start_stream()
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        unwatch = tunes.watch(tune_id, lambda: loop.call_soon_threadsafe(changed.set))
        last: dict[str, Any] | None = None
        quiet = 0.0
        try:
            while not self._closed:
                changed.clear()
                try:
                    tune = tunes.json(await asyncio.to_thread(tunes.record, tune_id))
                except UserError:
                    self.write(_event("deleted", {"tune_id": tune_id}))
                    break
                if tune != last:
                    self.write(_event("tune", tune))
                    last, quiet = tune, 0.0
                elif quiet >= EVENTS_KEEPALIVE_SECONDS:
                    self.write(": keep-alive\n\n")
                    quiet = 0.0
                if tune["status"] in FINISHED and not tunes.is_active(tune_id):
                    self.write(_event("end", {"tune_id": tune_id, "status": tune["status"]}))
                    break
                await self.flush()
                wait = CLUSTER_EVENTS_SECONDS if tune["engine"] == "katib" else EVENTS_POLL_SECONDS
                try:
                    await asyncio.wait_for(changed.wait(), wait)
                except asyncio.TimeoutError:
                    quiet += wait
            if not self._closed:
                self.finish(set_content_type="text/event-stream")
        except StreamClosedError:
            pass  # the client left
        finally:
            unwatch()


class GpusHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(await asyncio.to_thread(self.service.gpus))


class ConfigHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(self.service.config_json())


class RunModelsHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.answer(await asyncio.to_thread(self.service.serving.models, run_id))


class ServicesHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(await asyncio.to_thread(self.service.serving.list))

    @web.authenticated
    @authorized_to(EXECUTE)  # it runs the model's code (a pickled predictor)
    async def post(self) -> None:
        body = self.json_body()
        service = await asyncio.to_thread(self.service.serving.start, body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + service["service_id"])
        self.answer(service, 202)


class ServiceHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def get(self, service_id: str) -> None:
        self.answer(await asyncio.to_thread(self.service.serving.get, service_id))

    @web.authenticated
    @authorized
    async def delete(self, service_id: str) -> None:
        await asyncio.to_thread(self.service.serving.stop, service_id)
        self.set_status(204)
        self.finish()


class ServicePredictHandler(CellPipeHandler):
    @web.authenticated
    @authorized
    async def post(self, service_id: str) -> None:
        body = self.json_body()
        self.answer(await asyncio.to_thread(self.service.serving.predict, service_id, body))


_RUN = r"/runs/(?P<run_id>[\w.-]+)"
_BUILD = r"/builds/(?P<build_id>[\w.-]+)"
_TUNE = r"/tunes/(?P<tune_id>[\w.-]+)"

# Paths under the API namespace (the module's docstring says what each answers).
ROUTES: list[tuple[str, type[CellPipeHandler]]] = [
    (r"/compile", CompileHandler),
    (r"/runs", RunsHandler),
    (_RUN, RunHandler),
    (_RUN + r"/cancel", RunCancelHandler),
    (_RUN + r"/logs", RunLogsHandler),
    (_RUN + r"/events", RunEventsHandler),
    (_RUN + r"/notebook", RunNotebookHandler),
    (r"/builds", BuildsHandler),
    (_BUILD, BuildHandler),
    (_BUILD + r"/events", BuildEventsHandler),
    (_RUN + r"/models", RunModelsHandler),
    (r"/services", ServicesHandler),
    (r"/services/(?P<service_id>[\w.-]+)", ServiceHandler),
    (r"/services/(?P<service_id>[\w.-]+)/predict", ServicePredictHandler),
    (r"/tunes", TunesHandler),
    (_TUNE, TuneHandler),
    (_TUNE + r"/cancel", TuneCancelHandler),
    (_TUNE + r"/events", TuneEventsHandler),
    (r"/gpus", GpusHandler),
    (r"/config", ConfigHandler),
]
