"""A cluster run's request, read: the JSON fields of POST /runs that `cellpipe submit` takes
as options, turned into the launcher's SubmitChoices (cellpipe.launcher.submitting does the
rest, as for the CLI and the widgets).

The server submits to the Kubeflow Pipelines it is configured for: a request may not name
another address (its credentials would go there).
"""

from __future__ import annotations

import os
from typing import Any

from cellpipe.launcher.cluster import SubmitOptions
from cellpipe.launcher.config import CellPipe
from cellpipe.launcher.errors import UserError
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.submitting import SubmitChoices


def text_field(body: dict[str, Any], key: str) -> str | None:
    """A text field of the request (None when absent or empty); 400 when not text."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UserError(f"'{key}' must be text")
    return value


def number_field(body: dict[str, Any], key: str, minimum: int) -> int | None:
    """A whole-number field of the request (None when absent); 400 when not one."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"'{key}' must be a whole number")
    if value < minimum:
        words = "cannot be negative" if minimum == 0 else f"must be at least {minimum}"
        raise UserError(f"'{key}' {words}")
    return value


def gpu_overrides(given: Any) -> list[str]:
    """`{"STEP": "N[:TYPE]"}` (or a number N) as the launcher's `STEP=N[:TYPE]` choices."""
    if given is None:
        return []
    if not isinstance(given, dict):
        raise UserError("'gpus' must be an object {step: \"N[:TYPE]\"}")
    overrides = []
    for step, choice in given.items():
        if isinstance(choice, bool) or not isinstance(choice, (int, str)):
            raise UserError(f'\'gpus\' for step {step!r}: write "N" or "N:TYPE"', reason="bad_gpus")
        overrides.append(f"{step}={choice}")
    return overrides


def check_kfp_host(config: CellPipe, body: dict[str, Any]) -> None:
    asked = text_field(body, "kfp_host")
    configured = config.kfp_host or os.environ.get("KF_PIPELINES_ENDPOINT") or ""
    if asked is not None and asked.rstrip("/") != configured.rstrip("/"):
        where = f"c.CellPipe.kfp_host is {configured}" if configured else "none is configured"
        raise UserError(
            f"this server submits to the Kubeflow Pipelines it is configured for ({where}); "
            "it does not send its credentials to an address a request names",
            reason="kfp_host",
        )


def submit_choices(body: dict[str, Any], engine: str) -> SubmitChoices:
    """The request's choices for the launcher's submit (parameters are typed by the caller)."""
    namespace = text_field(body, "namespace")
    options = SubmitOptions(
        engine=engine,
        namespace=namespace,
        kube=KubeSettings(None, None, namespace),  # as kubectl finds it, or in a pod
        experiment=text_field(body, "experiment"),
        step=text_field(body, "step"),
        workers=number_field(body, "workers", 1) or 1,
        gpus_per_worker=number_field(body, "gpus_per_worker", 0),
        gpu_type=text_field(body, "gpu_type"),
        pvc=text_field(body, "pvc"),
        storage_size=text_field(body, "storage_size") or "10Gi",
        storage_class=text_field(body, "storage_class"),
        runtime=text_field(body, "runtime") or "torch-distributed",
    )
    return SubmitChoices(
        options,
        gpus=gpu_overrides(body.get("gpus")),
        image=text_field(body, "image"),
        builder=text_field(body, "builder"),
    )
