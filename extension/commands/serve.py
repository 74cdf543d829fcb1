"""`cellpipe serve RUN`: the model a run kept, served here by KServe's model server (until
Ctrl-C; `%cellpipe serve` leaves it running in the background) or on the cluster as a KServe
InferenceService (waited for until Ready). The work is the launcher's (launcher/serving.py).
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any, TextIO

from cellpipe.launcher.errors import UserError
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.services import Services
from cellpipe.launcher.serving import RunModel, ServeRequest, choose_model
from cellpipe.launcher.vocabulary import KSERVE_ENGINE

from .outcome import EXIT_OK, Outcome


def serve_request(args: argparse.Namespace) -> ServeRequest:
    """The parsed command line as a ServeRequest."""
    gpus, gpu_type = _gpus(args.gpus)
    for option in ("port", "min_replicas", "max_replicas"):
        value = getattr(args, option)
        if value is not None and value < (1 if option == "port" else 0):
            raise UserError(f"--{option.replace('_', '-')} must be a positive whole number")
    return ServeRequest(
        run_id=args.run,
        model=args.model,
        engine=args.engine,
        name=args.name,
        port=args.port,
        gpus=gpus,
        gpu_type=gpu_type,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        image=args.image,
        storage_uri=args.storage_uri,
        service_account=args.service_account,
    )


def _gpus(text: str | None) -> tuple[int, str | None]:
    if not text:
        return 0, None
    count, _, gpu_type = text.partition(":")
    if not count.isascii() or not count.isdigit() or not 1 <= int(count) <= 64:
        raise UserError(f"--gpus {text!r}: write N or N:TYPE with N from 1 to 64 (--gpus 1:A100)")
    return int(count), gpu_type or None


def curl_line(url: str, name: str, model: RunModel | None) -> str:
    """One working `curl` call of the V1 protocol, with a row of the data the step saw."""
    sample = (model.sample or {}).get("instances", [])[:1] if model else []
    body = json.dumps({"instances": sample})
    return (
        f"curl -s -H 'Content-Type: application/json' -d {shlex.quote(body)} "
        f"{url}/v1/models/{name}:predict"
    )


def serve_command(
    args: argparse.Namespace, out: TextIO, err: TextIO, background: bool = False, **_: Any
) -> Outcome:
    """`background`: leave the local model server running and return (the magic's way)."""
    request = serve_request(args)
    services = Services()
    if request.engine == KSERVE_ENGINE:
        kube = KubeSettings(args.kubeconfig, args.context, args.namespace)
        result = services.serve_on_cluster(request, kube, args.dry_run)
        return _present_cluster(result, args, out)
    service, process = services.serve_here(request)
    model = choose_model(services.find_run(request.run_id), request.model)
    data = {"url": service.url, "model": service.name, "protocols": service.protocols}
    data["service_id"] = service.service_id
    if args.format == "json":
        print(json.dumps(data), file=out, flush=True)
    else:
        print(f"serving model {model.name!r} ({model.format}) of run {service.run_id}", file=out)
        print(f"  V1: {service.url}/v1/models/{service.name}:predict", file=out)
        print(f"  V2: {service.url}/v2/models/{service.name}/infer", file=out)
        print(f"  try: {curl_line(service.url, service.name, model)}", file=out)
        stop = f"`cellpipe delete {service.service_id}`" if background else "Ctrl-C"
        print(f"  {stop} stops it", file=out, flush=True)
    if background:
        return Outcome(EXIT_OK, data)
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        services.stop(service.service_id)
    if args.format != "json":
        print("stopped", file=err)
    return Outcome(EXIT_OK, data)


def _present_cluster(result: dict[str, Any], args: argparse.Namespace, out: TextIO) -> Outcome:
    if args.format == "json" or result.get("dry_run"):
        text = result["yaml"] if result.get("dry_run") and args.format != "json" else None
        print(text if text is not None else json.dumps(result), file=out)
        return Outcome(EXIT_OK, result)
    print(f"InferenceService {result['name']} in {result['namespace']}: Ready", file=out)
    print(f"  V1: {result['url']}/v1/models/{result['model']}:predict", file=out)
    return Outcome(EXIT_OK, result)


# --- services in `cellpipe runs`, `status` and `delete` ------------------------------------------


def services_json(run_id: str | None = None) -> list[dict[str, Any]]:
    """The services of this store (of one run), their status asked anew."""
    return [s.to_json() for s in Services().all(run_id)]


def print_services(services: list[dict[str, Any]], out: TextIO, indent: str = "") -> None:
    for service in services:
        print(
            f"{indent}service {service['service_id']}: {service['status']} ({service['engine']}) "
            f"model {service['model']} of run {service['run_id']} at {service['url'] or '-'}",
            file=out,
        )


def print_services_table(services: list[dict[str, Any]], out: TextIO) -> None:
    """The services under the runs, in the same width: id, engine, status and URL whole."""
    from .terminal import print_fitted_table, safe_text, status_text

    print("", file=out)
    widths = {
        "SERVICE": max(len(s["service_id"]) for s in services),
        "ENGINE": 6,
        "STATUS": 7,
        "URL": max(len(s["url"] or "-") for s in services),
    }
    rows = [
        [
            safe_text(s["service_id"]),
            safe_text(s["engine"]),
            status_text(s["status"]),
            safe_text(s["url"] or "-"),
            safe_text(f"{s['model']} ({s['run_id']})"),
        ]
        for s in services
    ]
    print_fitted_table(out, widths, "MODEL (RUN)", rows)


def is_service_id(text: str) -> bool:
    return text.startswith("svc-")


def delete_service(text: str, kube: KubeSettings, out: TextIO) -> Outcome:
    """`cellpipe delete svc-...`: stop the model server, or delete the InferenceService."""
    service = Services().stop(text, kube)
    print(f"deleted service {service.service_id} ({service.engine})", file=out)
    return Outcome(EXIT_OK, {"service_id": service.service_id, "deleted": [service.engine]})


def stop_services_of(run_id: str, kube: KubeSettings) -> list[str]:
    """Before a run is deleted: its services, whose models it holds, stopped."""
    return [f"service {s}" for s in Services().stop_for_run(run_id, kube)]
