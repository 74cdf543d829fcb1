"""The served models of this machine's run store, as every front door sees them (issue 19):
start one here or on the cluster, list them (their status asked anew), stop them, call them.
launcher/serving.py serves here, launcher/kserve_flow.py on the cluster.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

from .errors import NotFound
from .k8s import KubeSettings
from .service_records import FAILED, STOPPED, ServiceRecord, ServiceStore, new_service_id
from .serving import (
    RunModel,
    ServeRequest,
    choose_model,
    local_status,
    predict,
    refuse_unless_ready,
    run_models,
    start_local,
    stop_process,
)
from .store import RunNotFound, RunRecord, RunStore, cellpipe_home, find_run, open_store

# The model servers this process started (by service id), reaped when stopped: the kernel's
# `%cellpipe serve` and the Jupyter server's POST /services leave them running.
_PROCESSES: dict[str, subprocess.Popen[bytes]] = {}


class Services:
    """Start, list, refresh, stop and call the models served from this store's runs."""

    def __init__(self, home: Path | None = None, store: RunStore | None = None) -> None:
        self.home = home or cellpipe_home()
        self.runs = store or open_store(self.home)
        self.records = ServiceStore(self.runs)

    def find_run(self, text: str) -> RunRecord:
        try:
            return find_run(self.runs, text)
        except RunNotFound as exc:
            raise NotFound(str(exc)) from None

    def models(self, run_id: str) -> list[RunModel]:
        return run_models(self.find_run(run_id))

    def serve_here(self, request: ServeRequest) -> tuple[ServiceRecord, subprocess.Popen[bytes]]:
        """A local service, started and ready, recorded; the caller keeps or waits on it."""
        service, process = start_local(self.find_run(request.run_id), request, self.home)
        _PROCESSES[service.service_id] = process
        self.records.save(service)
        return service, process

    def start_in_background(
        self, request: ServeRequest, kube: KubeSettings | None = None
    ) -> ServiceRecord:
        """A Pending service, recorded now (what cannot be served is a UserError at once); a
        thread starts the model server or creates the InferenceService, then records the
        service Ready, or Failed with its error (the server's POST /services)."""
        record = self.find_run(request.run_id)
        model = choose_model(record, request.model)
        if request.engine != "local":
            from .kserve_flow import service_spec

            service_spec(record, model, request, "default")  # refuses what it cannot serve
        service = ServiceRecord(
            service_id=new_service_id(),
            run_id=record.run_id,
            model=model.name,
            engine=request.engine,
            name=request.name or model.name,
        )
        self.records.save(service)
        threading.Thread(
            target=self._start, args=(record, service, request, kube), daemon=True
        ).start()
        return service

    def _start(
        self,
        record: RunRecord,
        service: ServiceRecord,
        request: ServeRequest,
        kube: KubeSettings | None,
    ) -> None:
        try:
            if request.engine == "local":
                started, process = start_local(record, request, self.home, service.service_id)
                _PROCESSES[service.service_id] = process
            else:
                from .kserve_flow import serve_on_cluster

                _, made = serve_on_cluster(record, request, kube or KubeSettings())
                assert made is not None
                started = made
                started.service_id = service.service_id
        except Exception as exc:  # recorded for GET /services/ID: the thread has no caller
            service.status, service.error = FAILED, str(exc)
            self.records.save(service)
            return
        self.records.save(started)

    def get(self, service_id: str) -> ServiceRecord:
        service = self.records.get(service_id)
        status = local_status(service)
        if status != service.status and service.pid is not None:
            service.status = status
            self.records.save(service)
        return service

    def all(self, run_id: str | None = None) -> list[ServiceRecord]:
        return [self.get(s.service_id) for s in self.records.list(run_id)]

    def serve_on_cluster(
        self, request: ServeRequest, kube: KubeSettings, dry_run: bool = False
    ) -> dict[str, Any]:
        """An InferenceService for the run's model, Ready (or only shown: dry_run)."""
        from .kserve_flow import serve_on_cluster

        result, service = serve_on_cluster(self.find_run(request.run_id), request, kube, dry_run)
        if service is not None:
            self.records.save(service)
        return result

    def stop(self, service_id: str, kube: KubeSettings | None = None) -> ServiceRecord:
        """Stop a local model server, or delete an InferenceService; forget the record."""
        service = self.records.get(service_id)
        if service.engine == "local" and service.pid is not None and service.status != STOPPED:
            stop_process(service.pid)
        elif service.engine != "local":
            from .kserve_flow import delete_inference_service

            delete_inference_service(kube, service.name, service.namespace)
        process = _PROCESSES.pop(service_id, None)
        if process is not None:
            process.wait(timeout=30)
        service.status = STOPPED
        self.records.delete(service_id)
        return service

    def stop_for_run(self, run_id: str, kube: KubeSettings | None = None) -> list[str]:
        """Stop every service of a run (before the run and its models are deleted)."""
        return [self.stop(s.service_id, kube).service_id for s in self.records.list(run_id)]

    def predict(self, service_id: str, instances: list[Any]) -> dict[str, Any]:
        """The service's V1 answer to `{"instances": ...}`."""
        service = self.get(service_id)
        refuse_unless_ready(service)
        return {"predictions": predict(service.url, instances, service.name)}
