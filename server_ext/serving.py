"""The serving routes' work (issue 19), over launcher/services.py: a run's models, services
started, listed, stopped, and one prediction made by this server (the browser never talks to
the model server). Only runs of notebooks under the server's root are served or shown.

    GET    /runs/ID/models        {"models": [{"name", "step", "format", "versions", "sample"}]}
    POST   /services              202 {service}: {"run_id", "model"?, "engine", "port"?}
    GET    /services              {"services": [...]}
    GET    /services/ID           {"service_id", "run_id", "model", "engine", "url",
                                  "protocols", "status"} (and "error" once Failed)
    DELETE /services/ID           204: the model server stopped, the InferenceService deleted
    POST   /services/ID/predict   {"instances": [...]} -> {"predictions": [...]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cellpipe.launcher.errors import UserError
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.service_records import ServiceRecord
from cellpipe.launcher.services import Services
from cellpipe.launcher.serving import ServeRequest, run_models
from cellpipe.launcher.store import RunRecord
from cellpipe.launcher.vocabulary import SERVING_ENGINES

SERVICE_KEYS = ("service_id", "run_id", "model", "engine", "url", "protocols", "status")
_TEXT_FIELDS = ("run_id", "model", "name", "image", "storage_uri", "namespace")


def service_json(service: ServiceRecord) -> dict[str, Any]:
    data = {key: getattr(service, key) for key in SERVICE_KEYS}
    if service.error:
        data["error"] = service.error
    return data


def serve_request(body: dict[str, Any]) -> ServeRequest:
    """POST /services' body as a ServeRequest; a UserError (400) naming a field that is off."""
    for name in _TEXT_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise UserError(f"'{name}' must be text")
    if not body.get("run_id"):
        raise UserError("'run_id' is required: the run whose model to serve")
    engine = body.get("engine") or SERVING_ENGINES[0]
    if engine not in SERVING_ENGINES:
        raise UserError(f"'engine' must be one of {', '.join(SERVING_ENGINES)}")
    port = body.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise UserError("'port' must be a whole number")
    if port is not None and not 1024 <= port <= 65535:
        raise UserError("'port' must be from 1024 to 65535")
    return ServeRequest(
        run_id=body["run_id"],
        model=body.get("model"),
        engine=engine,
        name=body.get("name"),
        port=port,
        image=body.get("image"),
        storage_uri=body.get("storage_uri"),
    )


class ServingApi:
    """The routes' work. `run_record(run_id)` is the server's own lookup: runs of notebooks
    outside its root are 404, as for every run route."""

    def __init__(self, services: Services, run_record: Callable[[str], RunRecord]) -> None:
        self.services = services
        self.run_record = run_record

    def models(self, run_id: str) -> dict[str, Any]:
        return {"models": [m.to_json() for m in run_models(self.run_record(run_id))]}

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        request = serve_request(body)
        request.run_id = self.run_record(request.run_id).run_id  # under the root, or 404
        kube = KubeSettings(namespace=body.get("namespace"))
        return service_json(self.services.start_in_background(request, kube))

    def list(self) -> dict[str, Any]:
        shown = []
        for service in self.services.all():
            try:
                self.run_record(service.run_id)
            except Exception:  # a service of a run this server does not show
                continue
            shown.append(service_json(service))
        return {"services": shown}

    def _service(self, service_id: str) -> ServiceRecord:
        service = self.services.get(service_id)
        self.run_record(service.run_id)
        return service

    def get(self, service_id: str) -> dict[str, Any]:
        return service_json(self._service(service_id))

    def stop(self, service_id: str) -> None:
        service = self._service(service_id)
        self.services.stop(service.service_id, KubeSettings(namespace=service.namespace))

    def predict(self, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise UserError("'instances' must be a non-empty list of rows")
        return self.services.predict(self._service(service_id).service_id, instances)
