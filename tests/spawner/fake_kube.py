"""A fake Kubernetes API server for the spawner's tests: plainly a fake, not a cluster.

It answers the calls KubeSpawner (through kubernetes_asyncio) and the GPU form make, over real
HTTP on 127.0.0.1: list, get, create and delete pods and PVCs, list and watch pods and events
(resourceVersion, label selectors of the form k=v, field selectors k=v and k!=v), list nodes
and pods of all namespaces. Pods and PVCs are checked against the Kubernetes schemas (strict,
as kubernetes-validate knows them) and refused with 422 Invalid as a server would; objects get
a uid, a resourceVersion and a creationTimestamp. A namespace's ResourceQuotas (`add_quota`)
refuse a pod as the API server's quota admission does (403 Forbidden, "exceeded quota: ..."),
for the pod count and whole-number extended resources (GPUs) only.

What a cluster would do after a pod is created is simulated, and only that much: a scheduler
that honours the node selector, taints against tolerations and extended resources (GPUs)
against the nodes' allocatable minus what bound pods hold, writing `Scheduled` or
`FailedScheduling` events; then a "kubelet" that writes Pulling, Pulled, Created and Started
events and marks the pod Running with a made-up pod IP. Nothing runs in the pod: a hub could
not reach it. Deleting a pod removes it at once (no grace period).

Runs in a thread with its own event loop, so tests may drive spawners with asyncio.run.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate
from tornado import httpserver, web
from tornado.netutil import bind_sockets

KINDS = {
    "pods": "Pod",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "events": "Event",
    "resourcequotas": "ResourceQuota",
}
# created by clients: checked as a server would
VALIDATED = ("pods", "persistentvolumeclaims", "resourcequotas")
K8S_VERSION = "1.30.0"
WATCH_VALUES = {"true", "True", "1"}


def schema_problems(obj: Mapping[str, Any]) -> str | None:
    """What the Kubernetes schema (strict: unknown fields too) says is wrong, or None."""
    try:
        kubernetes_validate.validate(dict(obj), K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc).splitlines()[0]
    return None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _get(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def matches_labels(obj: Mapping[str, Any], selector: str) -> bool:
    labels = _get(obj, "metadata.labels") or {}
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def matches_fields(obj: Mapping[str, Any], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            path, value = term.split("!=", 1)
            if str(_get(obj, path)) == value:
                return False
        else:
            path, value = term.split("=", 1)
            if str(_get(obj, path)) != value.lstrip("="):
                return False
    return True


def _quantity(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def pod_needs(pod: Mapping[str, Any]) -> dict[str, int]:
    """Whole-number extended resources (GPUs) the pod's containers ask for."""
    needs: dict[str, int] = {}
    for container in _get(pod, "spec.containers") or []:
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in asked.items():
            if "/" in name:
                needs[name] = needs.get(name, 0) + _quantity(value)
    return needs


def tolerates(pod: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    for toleration in _get(pod, "spec.tolerations") or []:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration.get("key") == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value") == taint.get(
            "value"
        ):
            return True
    return False


@dataclass
class FakeKube:
    """The fake's state; `url` once started."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    pod_ip_prefix: str = "10.244.0."
    kubelet_delay: float = 0.05
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    forbidden: set[str] = field(default_factory=set)  # kinds RBAC does not let the hub list
    kubelets: set[asyncio.Future[None]] = field(default_factory=set)
    url: str = ""
    _rv: Iterator[int] = field(default_factory=lambda: itertools.count(100))
    _ips: Iterator[int] = field(default_factory=lambda: itertools.count(2))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _changed: asyncio.Condition | None = None
    _stopping: bool = False

    # --- state, under the lock ---------------------------------------------------------------

    def resource_version(self) -> int:
        return self.history[-1][0] if self.history else 100

    def _record(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        rv = next(self._rv)
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        self.history.append((rv, kind, event_type, copy.deepcopy(obj)))
        if self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._notify()))

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name")
        if not name:
            raise _status(422, "Invalid", "metadata.name is required")
        if kind in VALIDATED:
            invalid = schema_problems(obj)
            if invalid:
                raise _status(422, "Invalid", f'{KINDS[kind]} "{name}" is invalid: {invalid}')
        if kind == "pods":
            exceeded = self.quota_exceeded(namespace, obj)
            if exceeded:
                raise _status(403, "Forbidden", f'pods "{name}" is forbidden: {exceeded}')
        with self._lock:
            if (kind, namespace, name) in self.objects:
                raise _status(409, "AlreadyExists", f'{kind} "{name}" already exists')
            metadata.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now())
            obj.setdefault("apiVersion", "v1")
            obj.setdefault("kind", KINDS[kind])
            if kind == "pods":
                obj["status"] = {"phase": "Pending", "podIP": None}
            if kind == "persistentvolumeclaims":
                obj["status"] = {"phase": "Pending"}
            self.objects[(kind, namespace, name)] = obj
            self._record(kind, "ADDED", obj)
            return copy.deepcopy(obj)

    def update(self, kind: str, namespace: str, name: str, change: dict[str, Any]) -> None:
        with self._lock:
            obj = self.objects.get((kind, namespace, name))
            if obj is None:
                return
            for key, value in change.items():
                if isinstance(value, dict):
                    obj.setdefault(key, {}).update(copy.deepcopy(value))
                else:
                    obj[key] = copy.deepcopy(value)
            self._record(kind, "MODIFIED", obj)

    def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self.objects.pop((kind, namespace, name), None)
            if obj is None:
                raise _status(404, "NotFound", f'{kind} "{name}" not found')
            self._record(kind, "DELETED", obj)
            return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self.objects.items())
                if k == kind and (namespace is None or ns == namespace)
            ]

    def add_quota(self, namespace: str, name: str, hard: dict[str, str]) -> None:
        """A ResourceQuota in the namespace, e.g. {"requests.nvidia.com/gpu": "1"}."""
        quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}}
        self.create("resourcequotas", namespace, {**quota, "spec": {"hard": hard}})

    def quota_exceeded(self, namespace: str, pod: Mapping[str, Any]) -> str | None:
        """What the namespace's first exceeded ResourceQuota says against a new pod, in the
        API server's words, or None (the pod count and whole-number extended resources)."""
        asked = pod_needs(pod)
        pods = self.items("pods", namespace)
        for quota in self.items("resourcequotas", namespace):
            for key, limit in sorted((_get(quota, "spec.hard") or {}).items()):
                scope, _, resource = key.partition(".")
                if key == "pods":
                    requested, used = 1, len(pods)
                elif scope in ("requests", "limits") and "/" in resource:
                    requested = asked.get(resource, 0)
                    used = sum(pod_needs(other).get(resource, 0) for other in pods)
                else:
                    continue
                if requested and used + requested > _quantity(limit):
                    return (
                        f"exceeded quota: {quota['metadata']['name']}, requested: "
                        f"{key}={requested}, used: {key}={used}, limited: {key}={limit}"
                    )
        return None

    def event(
        self, pod: Mapping[str, Any], reason: str, message: str, kind: str = "Normal"
    ) -> None:
        namespace = pod["metadata"]["namespace"]
        name = f"{pod['metadata']['name']}.{uuid.uuid4().hex[:12]}"
        self.create(
            "events",
            namespace,
            {
                "metadata": {"name": name},
                "involvedObject": {
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "namespace": namespace,
                    "uid": pod["metadata"]["uid"],
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "lastTimestamp": now(),
                "eventTime": None,
                "source": {"component": "fake-kube"},
            },
        )

    # --- the simulated scheduler and kubelet ----------------------------------------------

    def schedule(self, pod: dict[str, Any]) -> str | None:
        """The node the pod fits on, or None (with the reasons as a FailedScheduling event)."""
        needs = pod_needs(pod)
        selector = _get(pod, "spec.nodeSelector") or {}
        used: dict[tuple[str, str], int] = {}
        for other in self.items("pods"):
            node = _get(other, "spec.nodeName")
            if node and other["metadata"]["uid"] != pod["metadata"]["uid"]:
                for resource, count in pod_needs(other).items():
                    used[(node, resource)] = used.get((node, resource), 0) + count
        reasons: dict[str, int] = {}
        for node in self.nodes:
            name = node["metadata"]["name"]
            labels = node["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                reasons["didn't match Pod's node affinity/selector"] = (
                    reasons.get("didn't match Pod's node affinity/selector", 0) + 1
                )
                continue
            untolerated = [
                t
                for t in _get(node, "spec.taints") or []
                if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, t)
            ]
            if untolerated:
                why = f"had untolerated taint {{{untolerated[0]['key']}}}"
                reasons[why] = reasons.get(why, 0) + 1
                continue
            allocatable = _get(node, "status.allocatable") or {}
            short = [
                r
                for r, count in needs.items()
                if _quantity(allocatable.get(r, 0)) - used.get((name, r), 0) < count
            ]
            if short:
                why = f"Insufficient {short[0]}"
                reasons[why] = reasons.get(why, 0) + 1
                continue
            return str(name)
        said = ", ".join(f"{count} {why}" for why, count in sorted(reasons.items()))
        self.event(
            pod,
            "FailedScheduling",
            f"0/{len(self.nodes)} nodes are available: {said}.",
            "Warning",
        )
        return None

    async def run_pod(self, namespace: str, name: str) -> None:
        await asyncio.sleep(self.kubelet_delay)
        pod = self.get("pods", namespace, name)
        if pod is None:
            return
        node = self.schedule(pod)
        if node is None:
            self.update("pods", namespace, name, {"status": {"conditions": _unscheduled()}})
            return
        self.update("pods", namespace, name, {"spec": {"nodeName": node}})
        self.event(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")
        image = pod["spec"]["containers"][0]["image"]
        for reason, message in (
            ("Pulling", f'Pulling image "{image}"'),
            ("Pulled", f'Successfully pulled image "{image}" (fake: nothing was pulled)'),
            ("Created", "Created container notebook"),
            ("Started", "Started container notebook"),
        ):
            await asyncio.sleep(self.kubelet_delay)
            if self.get("pods", namespace, name) is None:
                return
            self.event(pod, reason, message)
        self.update(
            "pods",
            namespace,
            name,
            {
                "status": {
                    "phase": "Running",
                    "podIP": f"{self.pod_ip_prefix}{next(self._ips)}",
                    "hostIP": "10.0.0.1",
                    "startTime": now(),
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": "",
                            "ready": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": now()}},
                        }
                        for c in pod["spec"]["containers"]
                    ],
                }
            },
        )

    # --- serving ---------------------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop

            async def setup() -> httpserver.HTTPServer:
                self._changed = asyncio.Condition()
                app = web.Application(_routes(self))
                server = httpserver.HTTPServer(app)
                sockets = bind_sockets(0, "127.0.0.1")
                server.add_sockets(sockets)
                self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
                return server

            try:
                server = loop.run_until_complete(setup())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            server.stop()
            loop.run_until_complete(server.close_all_connections())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-kube", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._stopping = True

        async def wake() -> None:
            await self._notify()
            await asyncio.sleep(0.1)
            loop.stop()

        asyncio.run_coroutine_threadsafe(wake(), loop)
        self._thread.join(30)

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }


def _unscheduled() -> list[dict[str, str]]:
    return [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]


class _StatusError(web.HTTPError):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(code, "%s", message)
        self.k8s_reason = reason
        self.k8s_message = message


def _status(code: int, reason: str, message: str) -> _StatusError:
    return _StatusError(code, reason, message)


class _Handler(web.RequestHandler):
    fake: FakeKube

    def initialize(self, fake: FakeKube) -> None:
        self.fake = fake

    def prepare(self) -> None:
        self.fake.requests.append((self.request.method or "", self.request.uri or ""))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json")
        self.finish(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": getattr(exc, "k8s_reason", self._reason),
                "message": getattr(exc, "k8s_message", self._reason),
                "code": status_code,
            }
        )

    def query(self, name: str) -> str:
        values = parse_qs(urlparse(self.request.uri or "").query).get(name)
        return values[0] if values else ""

    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def listing(self, kind: str, namespace: str | None) -> None:
        items = [
            o
            for o in self.fake.items(kind, namespace)
            if matches_labels(o, self.query("labelSelector"))
            and matches_fields(o, self.query("fieldSelector"))
        ]
        with self.fake._lock:
            rv = self.fake.resource_version()
        self.send(
            {
                "kind": f"{KINDS.get(kind, 'Node')}List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        )

    async def watch(self, kind: str, namespace: str | None) -> None:
        fake = self.fake
        assert fake._changed is not None
        since = int(self.query("resourceVersion") or 0)
        timeout = float(self.query("timeoutSeconds") or 30)
        labels, fields = self.query("labelSelector"), self.query("fieldSelector")
        self.set_header("Content-Type", "application/json")
        self.set_header("Transfer-Encoding", "chunked")
        deadline = asyncio.get_running_loop().time() + timeout
        if since == 0:  # "any": the current objects first, as ADDED
            for obj in fake.items(kind, namespace):
                if matches_labels(obj, labels) and matches_fields(obj, fields):
                    self.write(json.dumps({"type": "ADDED", "object": obj}) + "\n")
            with fake._lock:
                since = fake.resource_version()
            await self.flush()
        while not fake._stopping:
            with fake._lock:
                new = [h for h in fake.history if h[0] > since and h[1] == kind]
            for rv, _, event_type, obj in new:
                since = rv
                ns = obj["metadata"].get("namespace")
                if namespace is not None and ns != namespace:
                    continue
                if matches_labels(obj, labels) and matches_fields(obj, fields):
                    self.write(json.dumps({"type": event_type, "object": obj}) + "\n")
            await self.flush()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            async with fake._changed:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(fake._changed.wait(), min(left, 1.0))
        self.finish()

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise _status(400, "BadRequest", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _status(400, "BadRequest", "the body is not an object")
        return data


class Collection(_Handler):
    async def get(self, namespace: str | None, kind: str) -> None:
        if kind not in KINDS and kind != "nodes":
            raise _status(404, "NotFound", f"the fake does not serve {kind}")
        if kind in self.fake.forbidden:
            raise _status(
                403, "Forbidden", f'{kind} is forbidden: User "hub" cannot list resource "{kind}"'
            )
        if self.query("watch") in WATCH_VALUES:
            await self.watch(kind, namespace)
        elif kind == "nodes":
            self.send(
                {
                    "kind": "NodeList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1"},
                    "items": copy.deepcopy(self.fake.nodes),
                }
            )
        else:
            self.listing(kind, namespace)

    async def post(self, namespace: str | None, kind: str) -> None:
        if namespace is None or kind not in KINDS:
            raise _status(405, "MethodNotAllowed", "create needs a namespace")
        created = self.fake.create(kind, namespace, self.body())
        if kind == "pods":
            task = asyncio.ensure_future(self.fake.run_pod(namespace, created["metadata"]["name"]))
            self.fake.kubelets.add(task)
            task.add_done_callback(self.fake.kubelets.discard)
        self.send(created, 201)


class Item(_Handler):
    def get(self, namespace: str, kind: str, name: str) -> None:
        obj = self.fake.get(kind, namespace, name)
        if obj is None:
            raise _status(404, "NotFound", f'{kind} "{name}" not found')
        self.send(obj)

    def delete(self, namespace: str, kind: str, name: str) -> None:
        obj = self.fake.delete(kind, namespace, name)
        self.send({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": obj})


def _routes(fake: FakeKube) -> list[Any]:
    args = {"fake": fake}
    return [
        (r"/api/v1/namespaces/([^/]+)/([a-z]+)/([^/]+)", Item, args),
        (r"/api/v1/namespaces/([^/]+)/([a-z]+)", Collection, args),
        (r"/api/v1()/([a-z]+)", _AllNamespaces, args),
    ]


class _AllNamespaces(Collection):
    async def get(self, namespace: str | None, kind: str) -> None:
        await super().get(None, kind)

    async def post(self, namespace: str | None, kind: str) -> None:
        raise _status(405, "MethodNotAllowed", "create needs a namespace")


def gpu_node(
    name: str,
    product: str,
    count: int,
    *,
    resource: str = "nvidia.com/gpu",
    label: str = "nvidia.com/gpu.product",
    taint: bool = True,
) -> dict[str, Any]:
    """A GPU node as the GPU operator labels and taints it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {label: product, "kubernetes.io/hostname": name}},
        "spec": {"taints": [{"key": resource, "effect": "NoSchedule"}] if taint else []},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", resource: str(count)},
            "capacity": {"cpu": "32", "memory": "256Gi", resource: str(count)},
        },
    }


def cpu_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}},
    }
