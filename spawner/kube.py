"""KubeGPUSpawner: the GPU form on Kubernetes, on KubeSpawner.

A spawn's choices become KubeSpawner settings (objects.pod_settings): the image, CPU and
memory limits and requests, the GPU resource limit (nvidia.com/gpu or the type's own resource,
such as a MIG slice), a node selector on the GPU product label, the GPU tolerations, and a
per-user PVC (KubeSpawner's storage_pvc_ensure) mounted at the home directory. Pod and PVC
names come from KubeSpawner's safe slugs (slug_scheme "safe"). The form's free counts come
from the cluster's nodes minus what running pods hold (cellpipe.launcher.gpus, shared with
the engines and the server); where the hub may not list nodes, the configured types are shown
with their counts unknown.

A spawn the cluster refuses reaches the user as SpawnFailed, with the cluster's own words: a
pod or PVC the API server will not create (a namespace quota, an admission webhook), and a
pod no node can take (the scheduler's FailedScheduling reason), which fails the spawn once it
has been unschedulable for `unschedulable_timeout`, before the hub's start_timeout would end
it as a bare "Timeout".
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from .base import GPUFormMixin, SpawnFailed
from .choices import GpuOffer
from .objects import pod_settings

CONFIGURED_TRAITS = (
    "image",
    "cpu_limit",
    "cpu_guarantee",
    "mem_limit",
    "mem_guarantee",
    "extra_resource_limits",
    "extra_resource_guarantees",
    "node_selector",
    "tolerations",
    "extra_labels",
    "environment",
)
LIST_OR_DICT_TRAITS = ("tolerations",)
REQUEST_TIMEOUT = 20
UNSCHEDULABLE_POLL = 0.25  # seconds between looks at a pending pod
# an unschedulable pod fails the spawn this long before the hub's start_timeout would
START_TIMEOUT_MARGIN = 3.0
NOT_STARTED = "Your server was not started: "


def unschedulable_reason(
    pod: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]]
) -> str | None:
    """Why no node can take the pod, in the scheduler's words (its latest FailedScheduling
    event, else the PodScheduled condition's message); None while it is not known to be
    unschedulable (not made yet, not tried yet, or placed on a node)."""
    if not pod or (pod.get("spec") or {}).get("nodeName"):
        return None
    conditions = (pod.get("status") or {}).get("conditions") or []
    refused = [
        c
        for c in conditions
        if c.get("type") == "PodScheduled"
        and c.get("status") == "False"
        and c.get("reason") == "Unschedulable"
    ]
    if not refused:
        return None
    said = [e.get("message") for e in events if e.get("reason") == "FailedScheduling"]
    message = said[-1] if said and said[-1] else refused[-1].get("message")
    return str(message or "no node fits it").rstrip(".")


def cluster_refusal(exc: ApiException, namespace: str) -> SpawnFailed:
    """An object the API server would not create, said for people (with what to do)."""
    try:
        status = json.loads(exc.body) if exc.body else {}
    except ValueError:
        status = {}
    said = str(status.get("message") or exc.reason or "no reason given").rstrip(".")
    if "exceeded quota" in said:
        advice = (
            "Ask for fewer GPUs or less CPU and memory, stop another server, or ask the "
            f"cluster's administrators for a larger quota in namespace {namespace}."
        )
    else:
        advice = "Tell the hub's administrators."
    return SpawnFailed(f"{NOT_STARTED}the cluster refused it ({exc.status}): {said}. {advice}")


def unschedulable(reason: str) -> SpawnFailed:
    return SpawnFailed(
        f"{NOT_STARTED}no node of the cluster can take it: {reason}. Ask for fewer GPUs or "
        "another GPU type, or try again later."
    )


class KubeGPUSpawner(GPUFormMixin, KubeSpawner):  # type: ignore[misc]
    """KubeSpawner with cellpipe's GPU form: a GPU notebook pod and a home PVC per user."""

    gpu_tolerations = List(
        Dict(),
        default_value=None,
        allow_none=True,
        help="""Tolerations of pods with GPUs. None: c.CellPipe.gpu_tolerations, and when
        that is None too, a toleration of the taint named for the GPU resource
        (key nvidia.com/gpu, operator Exists, effect NoSchedule).""",
    ).tag(config=True)

    read_cluster_gpus = Bool(
        True,
        help="""Show free GPUs on the form from the cluster's nodes and pods (needs a
        ClusterRole that may list nodes and pods). False: the configured gpu_types, counts
        unknown.""",
    ).tag(config=True)

    max_gpus_per_server = Integer(
        8,
        allow_none=True,
        help="""The most GPUs of a type one server may ask for when the hub cannot read the
        nodes (read_cluster_gpus False, or no permission): the size of the largest GPU node
        (raise it for MIG slices). Where the nodes can be read, the largest node bounds it.
        None: no bound (a count no node has leaves the server pending).""",
    ).tag(config=True)

    home_mount_path = Unicode(
        "/home/jovyan", help="Where the user's PVC is mounted (their home)."
    ).tag(config=True)

    unschedulable_timeout = Float(
        30.0,
        help="""Seconds a pod that no node can take (the scheduler says why) may wait before
        the spawn fails with the scheduler's reason. Raise it where a cluster autoscaler adds
        nodes; it never waits past start_timeout (the hub would end the spawn as a bare
        timeout).""",
    ).tag(config=True)

    _configured: dict[str, Any] | None = None

    @default("options_form")
    def _gpu_options_form(self) -> Any:
        return lambda spawner: spawner.render_options_form()

    @default("options_from_form")
    def _gpu_options_from_form(self) -> Any:
        return self.read_options_form

    @default("storage_pvc_ensure")
    def _default_pvc_ensure(self) -> bool:
        return True

    @default("storage_capacity")
    def _default_storage_capacity(self) -> str:
        return "10Gi"

    @default("volumes")
    def _default_home_volume(self) -> list[dict[str, Any]]:
        return [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]

    @default("volume_mounts")
    def _default_home_mount(self) -> list[dict[str, Any]]:
        return [{"name": "home", "mountPath": self.home_mount_path}]

    # --- GPUs ----------------------------------------------------------------------------

    def tolerations_for_gpus(self) -> list[dict[str, Any]] | None:
        own: list[dict[str, Any]] | None = self.gpu_tolerations
        if own is not None:
            return list(own)
        configured = self.cellpipe_config.gpu_tolerations
        return None if configured is None else list(configured)

    async def cluster_objects(self) -> tuple[list[Any], list[Any] | None]:
        """The cluster's nodes and its running pods, as plain dicts (pods None: not listed)."""
        serialize = self.api.api_client.sanitize_for_serialization
        nodes = await asyncio.wait_for(self.api.list_node(), REQUEST_TIMEOUT)
        node_items = serialize(nodes).get("items") or []
        try:
            pods = await asyncio.wait_for(
                self.api.list_pod_for_all_namespaces(
                    field_selector="status.phase!=Succeeded,status.phase!=Failed"
                ),
                REQUEST_TIMEOUT,
            )
        except Exception as exc:  # forbidden, unreachable: counts unknown, form still works
            self.log.warning("cannot list pods for GPU counts: %s", exc)
            return node_items, None
        return node_items, serialize(pods).get("items") or []

    async def gpu_offers(self) -> tuple[list[GpuOffer], str | None]:
        from cellpipe.launcher.gpus import from_configuration, inventory_from_objects

        types = self.configured_gpu_types()
        inventory = None
        note: str | None = None
        if self.read_cluster_gpus:
            try:
                nodes, pods = await self.cluster_objects()
            except Exception as exc:  # 403 for a hub without a ClusterRole, unreachable, ...
                self.log.warning("cannot list nodes for GPU counts: %s", exc)
                note = "Free GPU counts are unknown (the hub may not list the cluster's nodes)."
            else:
                inventory = inventory_from_objects(
                    nodes, pods, types, self.resource_name, self.label_name
                )
                note = inventory.message
        if inventory is None:
            inventory = from_configuration(types, self.resource_name, self.label_name)
        offers = []
        for entry in inventory.entries:
            if entry.name is None or (types and not entry.configured):
                continue
            known = inventory.counts_known and entry.free is not None
            schedulable = [n for n in entry.nodes if n.schedulable]
            most = max((n.free or 0 for n in schedulable), default=0) if known else None
            # Free or not, no server gets more than the largest node has (or, nodes unseen,
            # than configured), so a count no node can hold is refused on the form.
            seen = inventory.source == "cluster"
            offers.append(
                GpuOffer(
                    entry.name,
                    entry.display_name,
                    entry.resource,
                    entry.total if inventory.counts_known else None,
                    entry.free if known else None,
                    most,
                    largest=entry.max_per_node if seen else self.max_gpus_per_server,
                    largest_configured=not seen,
                )
            )
        return offers, note

    # --- spawning ------------------------------------------------------------------------

    def configured_settings(self) -> dict[str, Any]:
        """The configured values of the traits a spawn sets, taken before the first spawn."""
        if self._configured is None:
            configured = {}
            for name in CONFIGURED_TRAITS:
                value = copy.deepcopy(getattr(self, name))
                if name in LIST_OR_DICT_TRAITS:
                    value = self._sorted_dict_values(value)
                configured[name] = value
            self._configured = configured
        return self._configured

    async def _start(self) -> Any:
        """KubeSpawner's start, ended with the cluster's reason for people when the API
        server refuses the pod or PVC, or when no node can take the pod."""
        began = asyncio.get_running_loop().time()
        starting = asyncio.ensure_future(super()._start())
        watching = asyncio.ensure_future(self._wait_while_schedulable(began))
        try:
            await asyncio.wait({starting, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (starting, watching):
                if not task.done():
                    task.cancel()
            await asyncio.gather(starting, watching, return_exceptions=True)
        if not starting.cancelled():
            try:
                return starting.result()
            except ApiException as exc:
                raise cluster_refusal(exc, self.namespace) from None
        raise unschedulable(watching.result())

    async def _wait_while_schedulable(self, began: float) -> str:
        """Returns the scheduler's reason once the pod has been unschedulable for
        unschedulable_timeout, or until just before the hub's start_timeout."""
        loop = asyncio.get_running_loop()
        give_up = max(self.start_timeout - START_TIMEOUT_MARGIN, 0)
        since: float | None = None
        while True:
            await asyncio.sleep(UNSCHEDULABLE_POLL)
            reflector = getattr(self, "pod_reflector", None)
            pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
            reason = unschedulable_reason(pod, self.events)
            if reason is None:
                since = None
                continue
            now = loop.time()
            since = now if since is None else since
            if now - since >= self.unschedulable_timeout or now - began >= give_up:
                return reason

    async def _make_create_pod_request(self, pod: Any, request_timeout: float) -> bool:
        """KubeSpawner's pod creation, except that a pod the API server refuses (a quota, a
        webhook) is raised for _start to say to the user, not logged whole with a traceback.
        A pod there from before (409) is KubeSpawner's to replace."""
        self.log.info("Creating pod %s/%s", self.namespace, pod.metadata.name)
        try:
            await asyncio.wait_for(
                self.api.create_namespaced_pod(self.namespace, pod), request_timeout
            )
        except asyncio.TimeoutError:
            return False  # KubeSpawner's backoff tries again
        except ApiException as exc:
            if exc.status == 409:
                replaced: bool = await super()._make_create_pod_request(pod, request_timeout)
                return replaced
            raise
        return True

    def start(self) -> Any:
        self.begin_progress()
        future = super().start()
        future.add_done_callback(lambda _: self.end_progress())
        return future

    async def load_user_options(self) -> None:
        """KubeSpawner's hook at the start of a spawn: check the choices, then apply them."""
        await super().load_user_options()
        configured = self.configured_settings()
        choices = await self.checked_choices()
        settings = pod_settings(
            choices,
            configured,
            gpu_resource=self.resource_name,
            gpu_label=self.label_name,
            tolerations=self.tolerations_for_gpus(),
            guarantee_fraction=self.guarantee_fraction,
        )
        for name, value in settings.items():
            setattr(self, name, value)
        self.say(f"Your choices: {choices.describe()}", 5)
        if choices.gpus:
            self.say(
                f"Asking for {choices.gpus} {choices.gpu_resource} on nodes labelled "
                f"{self.label_name}={choices.gpu_type}",
                8,
            )
        self.say(f"Your volume {self.pvc_name} is mounted at {self.home_mount_path}", 10)

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """This spawn's own events (choices, volume) merged with the pod's events."""
        sent = 0
        pod_events = super().progress()
        waiting: asyncio.Future[Any] = asyncio.ensure_future(pod_events.__anext__())
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=0.25)
                events = getattr(self, "_progress_events", [])
                while sent < len(events):
                    yield events[sent]
                    sent += 1
                if waiting in done:
                    try:
                        event = waiting.result()
                    except StopAsyncIteration:
                        break
                    yield event
                    waiting = asyncio.ensure_future(pod_events.__anext__())
        finally:
            if not waiting.done():
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
            await pod_events.aclose()
        for event in getattr(self, "_progress_events", [])[sent:]:
            yield event
