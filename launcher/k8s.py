"""Kubernetes plumbing the cluster engines share: label values, the API client, clear errors,
pod logs.

Object names come from cellpipe.converter.slugs.safe_name, the one safe-name function.

The client is the official `kubernetes` client, configured the way Kubeflow users have it:
an explicit kubeconfig (or $KUBECONFIG, or ~/.kube/config) with its context's credentials,
else the pod's own service account when running in the cluster.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "cellpipe.org/run-id"
PIPELINE_LABEL = "cellpipe.org/pipeline"
STEP_LABEL = "cellpipe.org/step"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# (connect, read) seconds for one API call: an unreachable cluster is said so quickly
REQUEST_TIMEOUT = (10, 60)


def label_value(text: str) -> str:
    """A valid label value (63 characters of [-A-Za-z0-9_.], alphanumeric at both ends)."""
    value = re.sub(r"[^-A-Za-z0-9_.]+", "-", text)[:63].strip("-_.")
    return value


class ClusterError(Exception):
    """A cluster (Kubernetes or Kubeflow Pipelines) call that failed; the message says why
    and what to do. `status` is the HTTP status (None: the server was not reached)."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


def _server_message(body: Any) -> str:
    """The `message` of a Kubernetes Status (or a KFP error) body, else the body's text."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body).strip()[:500]
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    return str(body).strip()[:500]


def explain(exc: BaseException, doing: str, where: str = "the cluster") -> ClusterError:
    """A ClusterError for people from what a client raised while `doing` something."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        message = _server_message(getattr(exc, "body", None)) or str(
            getattr(exc, "reason", "") or ""
        )
        if status == 401:
            text = (
                f"{doing}: {where} refused the credentials (401 Unauthorized): {message}. Log in "
                "again: renew the token or session cookie, or refresh the kubeconfig"
            )
        elif status == 403 and "exceeded quota" in message:
            text = (
                f"{doing}: refused by a resource quota (403): {message}. Ask for less (fewer "
                "workers or GPUs), wait for other work to finish, or ask for a larger quota"
            )
        elif status == 403:
            text = (
                f"{doing}: not allowed (403 Forbidden): {message}. Use a namespace you may use "
                "(--namespace), or ask an administrator for the permission"
            )
        elif status == 404:
            text = f"{doing}: not found (404): {message or 'no such object'}"
        elif status == 409:
            text = f"{doing}: it already exists (409 Conflict): {message}"
        elif status == 422:
            text = f"{doing}: refused as invalid (422): {message}"
        elif status >= 500:
            text = f"{doing}: {where} failed ({status}): {message}; try again later"
        else:
            text = f"{doing}: {where} answered {status}: {message}"
        return ClusterError(text, status, getattr(exc, "reason", None))
    return ClusterError(
        f"{doing}: cannot reach {where} ({_reason(exc)}). Is it up, and is the address "
        "right (kubeconfig context, --host)?",
        None,
        "unreachable",
    )


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    # urllib3 wraps the interesting part: "... Caused by NewConnectionError(...: [Errno 111]"
    match = re.search(r"\[Errno -?\d+\][^')\"]*", text)
    return match.group(0).strip() if match else text[:300]


@dataclass
class KubeSettings:
    """Where the cluster is and who we are there: all optional, found as kubectl finds them."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


@dataclass
class KubeConnection:
    api_client: Any  # kubernetes.client.ApiClient
    namespace: str
    host: str
    source: str  # "kubeconfig PATH (context C)" or "in-cluster service account"


def kubeconfig_path(settings: KubeSettings) -> Path | None:
    if settings.kubeconfig:
        return Path(settings.kubeconfig)
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    default = Path.home() / ".kube" / "config"
    return default if default.is_file() else None


def connect(settings: KubeSettings) -> KubeConnection:
    """A configured `kubernetes.client.ApiClient` and the namespace to use.

    The namespace: `settings.namespace`, else the kubeconfig context's, else the service
    account's, else `default`.
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    path = kubeconfig_path(settings)
    if path is not None:
        if not path.is_file():
            raise ClusterError(f"no kubeconfig at {path}")
        try:
            config.load_kube_config(
                config_file=str(path), context=settings.context, client_configuration=configuration
            )
            _, active = config.list_kube_config_contexts(config_file=str(path))
            if settings.context:
                contexts, _ = config.list_kube_config_contexts(config_file=str(path))
                active = next(c for c in contexts if c["name"] == settings.context)
        except (ConfigException, StopIteration, OSError, ValueError) as exc:
            raise ClusterError(f"cannot use the kubeconfig {path}: {exc}") from None
        namespace = settings.namespace or (active.get("context") or {}).get("namespace")
        source = f"kubeconfig {path} (context {active.get('name')})"
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise ClusterError(f"cannot use the pod's service account: {exc}") from None
        namespace = settings.namespace or _service_account_namespace()
        source = "in-cluster service account"
    else:
        raise ClusterError(
            "no Kubernetes configuration: give --kubeconfig, set KUBECONFIG, or log in so that "
            "~/.kube/config exists (or run inside the cluster)"
        )
    configuration.retries = 1
    return KubeConnection(
        client.ApiClient(configuration), namespace or "default", configuration.host, source
    )


def _service_account_namespace() -> str | None:
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or None
    except OSError:
        return None


def to_dict(obj: Any) -> Any:
    """A typed model (kubernetes client, kubeflow-training, or a Trainer pydantic model) as
    the plain dict the API server receives."""
    if hasattr(obj, "to_dict") and hasattr(type(obj), "model_fields"):  # pydantic (Trainer)
        return obj.to_dict()
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def to_yaml(objects: list[Any]) -> str:
    import yaml

    return yaml.safe_dump_all([to_dict(o) for o in objects], sort_keys=False)


def pod_log(
    core: Any, pod: str, namespace: str, container: str | None, follow: bool
) -> Iterator[str]:
    """A pod's log, line by line (following it while the container runs, with `follow`),
    through `core`, a `kubernetes.client.CoreV1Api`; ClusterError when it cannot be read."""
    try:
        response = core.read_namespaced_pod_log(
            pod,
            namespace,
            container=container,
            follow=follow,
            _preload_content=False,
            _request_timeout=None if follow else REQUEST_TIMEOUT,
        )
    except Exception as exc:
        raise explain(exc, f"reading the log of pod {pod}") from None
    try:
        pending = b""
        for chunk in response.stream(4096):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", errors="replace") + "\n"
        if pending:
            yield pending.decode("utf-8", errors="replace") + "\n"
    finally:
        response.release_conn()
