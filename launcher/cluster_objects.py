"""Creating and deleting what a cluster engine submits, through the official Kubernetes client:
a claim, a prepare Job, and the engine's own custom resource (a training job, a Katib
Experiment). One place for every engine, so each says alike what failed and what is missing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from .k8s import REQUEST_TIMEOUT, ClusterError, explain


@dataclass(frozen=True)
class CustomResource:
    """The engine's own resource, and what provides it (named when the API lacks it)."""

    group: str
    version: str
    plural: str
    kind: str
    provider: str  # e.g. "Katib", "the Kubeflow training operator"


@dataclass(frozen=True)
class ClusterObjects:
    """The three APIs an engine's objects go through (CoreV1Api, BatchV1Api,
    CustomObjectsApi), and the engine's custom resource."""

    core: Any
    batch: Any
    custom: Any
    resource: CustomResource

    def create(self, namespace: str, obj: dict[str, Any]) -> None:
        kind, name = str(obj.get("kind")), obj["metadata"]["name"]
        try:
            if kind == "PersistentVolumeClaim":
                self.core.create_namespaced_persistent_volume_claim(
                    namespace, obj, _request_timeout=REQUEST_TIMEOUT
                )
            elif kind == "Job":
                self.batch.create_namespaced_job(namespace, obj, _request_timeout=REQUEST_TIMEOUT)
            else:
                r = self.resource
                self.custom.create_namespaced_custom_object(
                    r.group, r.version, namespace, r.plural, obj, _request_timeout=REQUEST_TIMEOUT
                )
        except Exception as exc:
            error = explain(exc, f"creating {kind} {name} in namespace {namespace}")
            if error.status == 404 and kind == self.resource.kind:
                r = self.resource
                error = ClusterError(
                    f"{error}. Is {r.provider} installed (the {r.plural}.{r.group} resource)?",
                    404,
                )
            raise error from None

    def delete(self, namespace: str, kind: str, name: str) -> bool:
        """Delete one object; False when it was already gone."""
        try:
            if kind == "PersistentVolumeClaim":
                self.core.delete_namespaced_persistent_volume_claim(
                    name, namespace, _request_timeout=REQUEST_TIMEOUT
                )
            elif kind == "Job":
                self.batch.delete_namespaced_job(
                    name,
                    namespace,
                    propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                )
            else:
                r = self.resource
                self.custom.delete_namespaced_custom_object(
                    r.group,
                    r.version,
                    namespace,
                    r.plural,
                    name,
                    propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except Exception as exc:
            error = explain(exc, f"deleting {kind} {name}")
            if error.status == 404:
                return False
            raise error from None
        return True

    def delete_each(self, namespace: str, targets: list[tuple[str, str | None]]) -> list[str]:
        """Delete each (kind, name) that has a name; the 'Kind name' of each one deleted."""
        return [
            f"{kind} {name}"
            for kind, name in targets
            if name and self.delete(namespace, kind, name)
        ]

    def remove_created(self, namespace: str, created: list[dict[str, Any]]) -> list[str]:
        """After a failed submit: what it had created, newest first, as far as the cluster
        lets (an error here must not hide the submit's own)."""
        removed = []
        for obj in reversed(created):
            kind, name = str(obj.get("kind")), obj["metadata"]["name"]
            with contextlib.suppress(ClusterError):
                if self.delete(namespace, kind, name):
                    removed.append(f"{kind} {name}")
        return removed
