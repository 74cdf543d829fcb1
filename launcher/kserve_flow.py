"""`cellpipe serve --engine kserve`: create a run's InferenceService, wait until KServe says
it is Ready, record it; delete it (issue 19). The objects are kserve_objects.py's; the calls
go through the official Kubernetes client's CustomObjectsApi.
"""

from __future__ import annotations

import time
from typing import Any

from .errors import ClusterUnreachable, UserError
from .k8s import ClusterError, KubeConnection, KubeSettings, connect, explain, to_yaml
from .kserve_objects import (
    BUILT_IN_FORMATS,
    GROUP,
    PLURAL,
    VERSION,
    ServiceSpec,
    inference_service,
    service_name,
    to_body,
)
from .service_records import READY, ServiceRecord, new_service_id
from .serving import RunModel, ServeRequest, choose_model
from .store import RunRecord

READY_SECONDS = 600.0


def service_spec(
    record: RunRecord, model: RunModel, request: ServeRequest, namespace: str
) -> ServiceSpec:
    """What the run's model needs on the cluster; user errors for what cannot be served."""
    if not request.storage_uri:
        raise UserError(
            f"the model {model.name!r} of run {record.run_id} lies on this machine "
            f"({model.directory}); copy that folder where the cluster reads it and give "
            "--storage-uri (s3://BUCKET/PATH, gs://..., pvc://CLAIM/PATH)",
            reason="no_storage",
        )
    image = request.image
    if model.format not in BUILT_IN_FORMATS:
        image = image or record.image
        if not image:
            raise UserError(
                f"model {model.name!r} is a {model.format} model, which KServe has no runtime "
                "for: it is served by cellpipe's predictor in the notebook's image; build it "
                "(`cellpipe build`) or give --image REF (an image with cellpipe[serve])",
                reason="no_image",
            )
    return ServiceSpec(
        name=request.name or service_name(record.run_id, model.name),
        namespace=namespace,
        model_name=request.name or model.name,
        format=model.format,
        storage_uri=request.storage_uri,
        image=image,
        gpus=request.gpus,
        gpu_type=request.gpu_type,
        min_replicas=request.min_replicas,
        max_replicas=request.max_replicas,
        service_account=request.service_account,
        labels={"cellpipe/run-id": record.run_id[-63:]},
    )


def serve_on_cluster(
    record: RunRecord, request: ServeRequest, settings: KubeSettings, dry_run: bool = False
) -> tuple[dict[str, Any], ServiceRecord | None]:
    """Create the run's InferenceService and wait until Ready (with `dry_run`, only show it):
    what to print, and the service to record (None for a dry run)."""
    model = choose_model(record, request.model)
    connection = None if dry_run else _connect(settings)
    namespace = connection.namespace if connection else (settings.namespace or "default")
    spec = service_spec(record, model, request, namespace)
    body = to_body(inference_service(spec))
    if connection is None:
        return {"dry_run": True, "inference_service": body, "yaml": to_yaml([body])}, None
    created = create(connection, body)
    url = wait_ready(connection, spec.name, namespace)
    service = ServiceRecord(
        service_id=new_service_id(),
        run_id=record.run_id,
        model=model.name,
        engine="kserve",
        name=spec.name,
        url=url,
        status=READY,
        namespace=namespace,
    )
    result = {
        "service_id": service.service_id,
        "name": spec.name,
        "namespace": namespace,
        "url": url,
        "model": spec.model_name,
        "protocols": service.protocols,
        "uid": created.get("metadata", {}).get("uid"),
    }
    return result, service


def _connect(settings: KubeSettings) -> KubeConnection:
    try:
        return connect(settings)
    except ClusterError as exc:
        raise ClusterUnreachable(str(exc)) from None


def _api(connection: KubeConnection) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(connection.api_client)


def create(connection: KubeConnection, body: dict[str, Any]) -> dict[str, Any]:
    try:
        created: dict[str, Any] = _api(connection).create_namespaced_custom_object(
            GROUP, VERSION, connection.namespace, PLURAL, body
        )
    except Exception as exc:
        raise ClusterUnreachable(
            str(explain(exc, "create the InferenceService", connection.host))
        ) from None
    return created


def ready_url(body: dict[str, Any]) -> str | None:
    """The URL of a Ready InferenceService (KServe's Ready condition True), else None."""
    status = body.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return str(status.get("url") or "")
    return None


def failed_reason(body: dict[str, Any]) -> str | None:
    """What KServe says went wrong (a condition False with a reason), or None."""
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "False" and condition.get("reason") in (
            "ServerlessModeRejected",
            "InvalidSpecification",
            "RevisionFailed",
            "ContainerHealthCheckFailed",
        ):
            return f"{condition.get('reason')}: {condition.get('message', '')}"
    return None


def wait_ready(
    connection: KubeConnection, name: str, namespace: str, seconds: float = READY_SECONDS
) -> str:
    """Poll the InferenceService until Ready; its URL."""
    api = _api(connection)
    deadline = time.monotonic() + seconds
    while True:
        try:
            body = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except Exception as exc:
            raise ClusterUnreachable(
                str(explain(exc, f"read InferenceService {name}", connection.host))
            ) from None
        url = ready_url(body)
        if url is not None:
            return url
        reason = failed_reason(body)
        if reason:
            raise UserError(f"InferenceService {name} failed: {reason}", reason="serve_failed")
        if time.monotonic() > deadline:
            raise UserError(
                f"InferenceService {name} was not Ready within {seconds:.0f} s; "
                f"`kubectl describe inferenceservice {name} -n {namespace}` says why",
                reason="serve_failed",
            )
        time.sleep(min(2.0, max(0.05, seconds / 100)))


def delete_inference_service(settings: Any, name: str, namespace: str | None) -> None:
    """Delete the InferenceService; one already gone is no error."""
    connection = _connect(settings or KubeSettings(namespace=namespace))
    try:
        _api(connection).delete_namespaced_custom_object(
            GROUP, VERSION, namespace or connection.namespace, PLURAL, name
        )
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return
        raise ClusterUnreachable(
            str(explain(exc, f"delete InferenceService {name}", connection.host))
        ) from None
