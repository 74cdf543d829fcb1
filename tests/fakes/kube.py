"""FakeKubernetes: an in-process fake of the Kubernetes API server, over real HTTP.

What it is: a small HTTP server on 127.0.0.1 that answers the REST calls cellpipe's client
code makes, in the API server's own shapes, so the official `kubernetes` client runs
unchanged against it through a kubeconfig (`write_kubeconfig`):

- nodes (list), pods (list in a namespace or in all, read one's log), PersistentVolumeClaims,
  batch/v1 Jobs, the training operator's kubeflow.org/v1 PyTorchJob, TFJob, XGBoostJob and
  MPIJob, Kubeflow Trainer's trainer.kubeflow.org/v1alpha1 TrainJob, and Katib's
  kubeflow.org/v1beta1 Experiment and Trial: create, get, list, delete;
- creates are checked as a real server with those CRDs installed would check them
  (tests/fakes/schemas.py: the Kubernetes schemas, the Kubeflow SDKs' models): an invalid
  object is 422 Invalid, a name taken 409 AlreadyExists, a missing one 404 NotFound, a body
  whose namespace differs from the URL's 400; uid, resourceVersion, creationTimestamp and
  the namespace are filled in;
- a bearer token (`token`) is required when set (401 otherwise); `forbid(verb, resource)`
  refuses with the 403 RBAC gives; `quota_exceeded(resource, message)` refuses creates with
  the 403 a ResourceQuota gives; `without(resource)` answers 404 as a cluster without that
  CRD does; `fail(...)` injects any answer; `stop()` makes the cluster unreachable.
- label selectors of the form `k=v[,k=v]` and field selectors on `status.phase` (= and !=)
  and `spec.nodeName` are honoured.

What it is not: there are no controllers, scheduler, kubelet or admission plugins. Nothing
runs: a Job or a training job stays as created until the test says what happened to it
(`set_status`, `add_pod`; for a Katib Experiment, `add_trial` makes the Trial Katib's
controller would make), and deleting an object deletes no pods (no garbage collection).
No watches, no patches, no server-side apply, no `resourceVersion` conflicts, no RBAC rules
beyond what `forbid` says, and a followed log is sent whole, then closed.
"""

from __future__ import annotations

import copy
import itertools
import re
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from .schemas import problems
from .server import FakeHttpServer, HttpError, Request, Response

# plural -> (group/version, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "nodes": ("v1", "Node", False),
    "pods": ("v1", "Pod", True),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim", True),
    "jobs": ("batch/v1", "Job", True),
    "pytorchjobs": ("kubeflow.org/v1", "PyTorchJob", True),
    "tfjobs": ("kubeflow.org/v1", "TFJob", True),
    "xgboostjobs": ("kubeflow.org/v1", "XGBoostJob", True),
    "mpijobs": ("kubeflow.org/v1", "MPIJob", True),
    "trainjobs": ("trainer.kubeflow.org/v1alpha1", "TrainJob", True),
    "inferenceservices": ("serving.kserve.io/v1beta1", "InferenceService", True),
    "experiments": ("kubeflow.org/v1beta1", "Experiment", True),
    "trials": ("kubeflow.org/v1beta1", "Trial", True),
}
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes `Status` object, as the API server answers an error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubernetes(FakeHttpServer):
    """See the module's docstring: a fake, and what it does and does not do."""

    def __init__(self, token: str | None = "fake-token", user: str = "alice") -> None:
        super().__init__()
        self.token = token
        self.user = user
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.forbidden: set[tuple[str, str]] = set()
        self.quotas: dict[str, str] = {}
        self.missing: set[str] = set()
        self._versions = itertools.count(1)
        prefix = r"/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
        self.route("GET", r"/api/v1/(?P<plural>nodes|pods)", self._list_all)
        self.route("GET", prefix + r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)", self._list)
        self.route("POST", prefix + r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)", self._create)
        self.route(
            "GET",
            prefix + r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)/(?P<name>[^/]+)",
            self._get,
        )
        self.route(
            "DELETE",
            prefix + r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)/(?P<name>[^/]+)",
            self._delete,
        )
        self.route("GET", r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log", self._log)

    # -- what the test sets up ------------------------------------------------------------
    def forbid(self, verb: str, resource: str) -> None:
        """RBAC refuses `verb` (get, list, create, delete) on `resource` (a plural)."""
        self.forbidden.add((verb, resource))

    def quota_exceeded(self, resource: str, message: str) -> None:
        """Creating `resource` is refused by a ResourceQuota (403, as the server says it)."""
        self.quotas[resource] = message

    def without(self, resource: str) -> None:
        """The cluster has no such resource (its CRD is not installed)."""
        self.missing.add(resource)

    def add_node(
        self,
        name: str,
        allocatable: dict[str, str],
        labels: dict[str, str] | None = None,
        unschedulable: bool = False,
    ) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"allocatable": {"cpu": "8", "memory": "64Gi", **allocatable}},
        }
        self._store("nodes", None, node)

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        node: str | None = None,
        phase: str = "Running",
        gpus: dict[str, int] | None = None,
        container: str = "main",
        log: str = "",
        reason: str | None = None,
        message: str | None = None,
        termination_message: str | None = None,
    ) -> None:
        """A pod, as a controller and the kubelet would have made it."""
        limits = {k: str(v) for k, v in (gpus or {}).items()}
        state: dict[str, Any] = {"running": {}}
        if termination_message is not None or phase in ("Succeeded", "Failed"):
            state = {
                "terminated": {
                    "exitCode": 0 if phase == "Succeeded" else 1,
                    "message": termination_message,
                }
            }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {
                "nodeName": node,
                "containers": [{"name": container, "image": "x", "resources": {"limits": limits}}],
            },
            "status": {
                "phase": phase,
                "reason": reason,
                "message": message,
                "containerStatuses": [
                    {
                        "name": container,
                        "ready": False,
                        "restartCount": 0,
                        "image": "x",
                        "imageID": "",
                        "state": state,
                    }
                ],
            },
        }
        self._store("pods", namespace, pod)
        self.logs[(namespace, name)] = log

    def add_trial(
        self,
        namespace: str,
        experiment: str,
        name: str,
        parameters: dict[str, str],
        status: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A Trial of `experiment` as Katib's controller makes it (its label, its owner, the
        experiment's objective and the suggestion's assignments), checked like a create."""
        owner = self.get("experiments", namespace, experiment)
        assert owner is not None, f"no Experiment {experiment}"
        spec = owner["spec"]
        trial = {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Trial",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"katib.kubeflow.org/experiment": experiment},
                "ownerReferences": [
                    {
                        "apiVersion": "kubeflow.org/v1beta1",
                        "kind": "Experiment",
                        "name": experiment,
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "objective": spec["objective"],
                "parameterAssignments": [{"name": k, "value": v} for k, v in parameters.items()],
                "primaryContainerName": spec["trialTemplate"]["primaryContainerName"],
                "successCondition": spec["trialTemplate"]["successCondition"],
                "failureCondition": spec["trialTemplate"]["failureCondition"],
            },
            "status": status or {},
        }
        found = problems(trial)
        assert not found, found
        return self._store("trials", namespace, trial)

    def set_status(self, resource: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """What the object's controller would have written into its status."""
        with self.lock:
            self.objects[(resource, namespace, name)]["status"] = status

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((resource, namespace, name))
            return copy.deepcopy(found) if found else None

    def names(self, resource: str, namespace: str | None = None) -> list[str]:
        with self.lock:
            return (
                sorted(
                    n for (r, ns, n) in self.objects if r == resource and ns in (namespace, None)
                )
                if namespace is None
                else sorted(n for (r, ns, n) in self.objects if r == resource and ns == namespace)
            )

    def write_kubeconfig(self, path: Path, namespace: str = "team-a") -> Path:
        """A kubeconfig whose current context is this fake, with the fake's token."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": self.user, "user": user}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": self.user, "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- serving --------------------------------------------------------------------------
    def authorize(self, request: Request) -> Response | None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, status(401, "Unauthorized", "Unauthorized"))
        return None

    def not_found(self, request: Request) -> Response:
        return Response(
            404, status(404, "NotFound", "the server could not find the requested resource")
        )

    def _store(self, plural: str, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata["resourceVersion"] = str(next(self._versions))
        metadata.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if namespace is not None:
            metadata["namespace"] = namespace
        with self.lock:
            self.objects[(plural, namespace, metadata["name"])] = obj
        return obj

    def _check(self, verb: str, plural: str, match: re.Match[str], namespace: str | None) -> None:
        group = match.groupdict().get("group")
        version = match.groupdict().get("version")
        if plural not in RESOURCES or plural in self.missing:
            raise HttpError(
                404, status(404, "NotFound", "the server could not find the requested resource")
            )
        api_version = RESOURCES[plural][0]
        if (f"{group}/{version}" if group else "v1") != api_version:
            raise HttpError(
                404, status(404, "NotFound", "the server could not find the requested resource")
            )
        if (verb, plural) in self.forbidden:
            api_group = api_version.rpartition("/")[0] if "/" in api_version else ""
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            raise HttpError(
                403,
                status(
                    403,
                    "Forbidden",
                    f'{plural} is forbidden: User "{self.user}" cannot {verb} resource '
                    f'"{plural}" in API group "{api_group}" {scope}',
                ),
            )

    def _list_all(self, request: Request, match: re.Match[str]) -> Response:
        plural = match["plural"]
        self._check("list", plural, match, None)
        return self._items(plural, None, request)

    def _list(self, request: Request, match: re.Match[str]) -> Response:
        plural = match["plural"]
        self._check("list", plural, match, match["ns"])
        return self._items(plural, match["ns"], request)

    def _items(self, plural: str, namespace: str | None, request: Request) -> Response:
        labels = _pairs(request.query.get("labelSelector", ""), "=")
        fields = request.query.get("fieldSelector", "")
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (r, ns, _), obj in sorted(self.objects.items(), key=lambda i: str(i[0]))
                if r == plural and (namespace is None or ns == namespace)
            ]
        items = [
            o
            for o in items
            if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
            and _fields_match(o, fields)
        ]
        api_version, kind, _ = RESOURCES[plural]
        return Response(
            200,
            {
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(next(self._versions))},
                "items": items,
            },
        )

    def _create(self, request: Request, match: re.Match[str]) -> Response:
        plural, namespace = match["plural"], match["ns"]
        self._check("create", plural, match, namespace)
        if plural in self.quotas:
            raise HttpError(
                403,
                status(
                    403,
                    "Forbidden",
                    f"{plural} is forbidden: exceeded quota: {self.quotas[plural]}",
                ),
            )
        obj = request.json()
        api_version, kind, _ = RESOURCES[plural]
        if obj.get("kind") != kind or obj.get("apiVersion") != api_version:
            raise HttpError(
                400,
                status(
                    400, "BadRequest", f"the body is a {obj.get('kind')}, the URL is for {plural}"
                ),
            )
        metadata = obj.get("metadata") or {}
        name = metadata.get("name", "")
        if metadata.get("namespace") not in (None, namespace):
            raise HttpError(
                400,
                status(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                ),
            )
        if not _DNS.match(name) or len(name) > 253:
            raise HttpError(
                422,
                status(422, "Invalid", f'{kind} "{name}" is invalid: metadata.name: Invalid value'),
            )
        found = problems(obj)
        if found:
            raise HttpError(
                422, status(422, "Invalid", f'{kind} "{name}" is invalid: {"; ".join(found)}')
            )
        with self.lock:
            if (plural, namespace, name) in self.objects:
                raise HttpError(
                    409,
                    status(409, "AlreadyExists", f'{plural} "{name}" already exists'),
                )
            stored = self._store(plural, namespace, obj)
        return Response(201, copy.deepcopy(stored))

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        plural, namespace, name = match["plural"], match["ns"], match["name"]
        self._check("get", plural, match, namespace)
        found = self.get(plural, namespace, name)
        if found is None:
            raise HttpError(404, status(404, "NotFound", f'{plural} "{name}" not found'))
        return Response(200, found)

    def _delete(self, request: Request, match: re.Match[str]) -> Response:
        plural, namespace, name = match["plural"], match["ns"], match["name"]
        self._check("delete", plural, match, namespace)
        with self.lock:
            found = self.objects.pop((plural, namespace, name), None)
        if found is None:
            raise HttpError(404, status(404, "NotFound", f'{plural} "{name}" not found'))
        return Response(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def _log(self, request: Request, match: re.Match[str]) -> Response:
        namespace, name = match["ns"], match["name"]
        if ("get", "pods/log") in self.forbidden:
            raise HttpError(
                403,
                status(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: User "{self.user}" cannot get resource '
                    f'"pods/log" in API group "" in the namespace "{namespace}"',
                ),
            )
        with self.lock:
            if (namespace, name) not in self.logs:
                raise HttpError(404, status(404, "NotFound", f'pods "{name}" not found'))
            text = self.logs[(namespace, name)]
        return Response(200, text, "text/plain")


def _pairs(text: str, separator: str) -> dict[str, str]:
    pairs = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition(separator)
        pairs[key.strip()] = value.strip()
    return pairs


def _fields_match(obj: dict[str, Any], selector: str) -> bool:
    for part in filter(None, selector.split(",")):
        negate = "!=" in part
        key, _, value = part.partition("!=" if negate else "=")
        value = value.lstrip("=")
        holder: Any = obj
        for piece in key.split("."):
            holder = (holder or {}).get(piece)
        if (str(holder) == value) == negate:
            return False
    return True
