"""DockerGPUSpawner: the GPU form on one machine, through any Docker Engine API.

One container per server, made from the form's choices: the image, CPU and memory limits,
device requests for specific GPUs (by id, never a GPU another server holds unless
`gpu_sharing` allows it), and the user's own named volume at their home directory. The GPUs a
container holds are written on it as a label, so the engine itself says which GPUs are free.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from traitlets import Dict, Int, List, TraitError, Unicode, default, validate

from . import devices
from .base import GPUFormMixin, SpawnFailed, SpawnRefused
from .choices import Choices, GpuOffer, plural
from .names import safe_name
from .objects import GPUS_LABEL, HOME_LABEL, USER_LABEL, container_spec, deep_merge

ACTIVE_STATES = {"created", "running", "restarting", "paused"}


class EngineCannotGiveGpus(SpawnFailed):
    """The engine accepted the container but dropped its GPU device requests."""


class DockerGPUSpawner(GPUFormMixin, DockerSpawner):  # type: ignore[misc]
    """DockerSpawner with cellpipe's GPU form: a GPU notebook server per user on one host.

    With `network_name = "host"` each server listens on a port of its own on `host_ip` (for
    hubs and engines where containers cannot reach the hub otherwise, e.g. podman's bridge).
    """

    gpu_devices = List(
        Dict(),
        help="""This host's GPUs: [{"id": "0", "type": "NVIDIA-A100-SXM4-80GB"}] (id: the
        index or UUID the device request names; type: as the gpu_types name it). Empty
        (default): read with nvidia-smi on the hub's machine, else /dev/nvidiaN. Set it
        when the Docker API is on another machine.""",
    ).tag(config=True)

    gpu_sharing = Int(
        1,
        help="""How many servers may hold one GPU at the same time. 1 (default): a GPU is
        given to one server only.""",
    ).tag(config=True)

    gpu_driver = Unicode("nvidia", help="The device request's driver.").tag(config=True)

    gpu_capabilities = List(
        Unicode(),
        default_value=["gpu"],
        help="The device request's capabilities (e.g. gpu, compute, utility).",
    ).tag(config=True)

    nvidia_smi = Unicode(
        "nvidia-smi", help="The nvidia-smi command used to list the host's GPUs."
    ).tag(config=True)

    home_mount_path = Unicode(
        "/home/jovyan", help="Where the user's volume is mounted (their home and notebook root)."
    ).tag(config=True)

    home_volume_prefix = Unicode(
        "cellpipe-home",
        help="""The user's volume is named PREFIX-USER-HASH (safe for any user name, the same
        for every server of the user, so their files are found again).""",
    ).tag(config=True)

    volume_driver = Unicode("local", help="Driver of the users' volumes.").tag(config=True)

    volume_driver_opts = Dict(
        help="""Driver options of the users' volumes, e.g. a size for drivers that take one
        ({"size": "20G"} on some; the local driver on tmpfs: {"type": "tmpfs",
        "device": "tmpfs", "o": "size=20g"}).""",
    ).tag(config=True)

    _locks: ClassVar[dict[tuple[int, str], asyncio.Lock]] = {}
    _choices: Choices | None = None
    _gpu_ids: list[str]
    _pull_state: dict[str, Any]

    @validate("gpu_devices")
    def _check_gpu_devices(self, proposal: Any) -> list[dict[str, Any]]:
        try:
            devices.from_config(proposal["value"], f"{type(self).__name__}.gpu_devices")
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return list(proposal["value"])

    @validate("gpu_sharing")
    def _check_sharing(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"{type(self).__name__}.gpu_sharing must be at least 1")
        return int(proposal["value"])

    @default("options_form")
    def _gpu_options_form(self) -> Any:
        return lambda spawner: spawner.render_options_form()

    @default("options_from_form")
    def _gpu_options_from_form(self) -> Any:
        return self.read_options_form

    @default("remove")
    def _default_remove(self) -> bool:
        return True  # every spawn makes its container from this spawn's choices

    @default("name_template")
    def _default_gpu_name_template(self) -> str:
        return "{cellpipe_name}"

    @default("ip")
    def _default_gpu_ip(self) -> str:
        return self.host_ip if self.network_name == "host" else "0.0.0.0"

    def template_namespace(self) -> dict[str, Any]:
        namespace: dict[str, Any] = super().template_namespace()
        namespace["cellpipe_name"] = safe_name("jupyter", self.user.name, self.name or "")
        namespace["cellpipe_volume"] = self.home_volume_name
        return namespace

    @property
    def home_volume_name(self) -> str:
        return safe_name(self.home_volume_prefix, self.user.name)

    # --- GPUs ----------------------------------------------------------------------------

    def host_gpus(self) -> tuple[list[devices.HostGpu], str]:
        if self.gpu_devices:
            return devices.from_config(self.gpu_devices, "gpu_devices"), "configuration"
        types = self.configured_gpu_types()
        default_type = types[0].name if len(types) == 1 else "gpu"
        return devices.detect(self.nvidia_smi, default_type=default_type)

    async def gpus_in_use(self) -> dict[str, int]:
        """GPU id -> how many servers on this engine hold it (from the containers' labels)."""
        containers = await self.docker("containers", all=True, filters={"label": GPUS_LABEL})
        held = [
            (c.get("Labels") or {}).get(GPUS_LABEL, "")
            for c in containers
            if str(c.get("State", "")).lower() in ACTIVE_STATES
        ]
        return devices.in_use(held)

    async def gpu_offers(self) -> tuple[list[GpuOffer], str | None]:
        gpus, source = await asyncio.get_running_loop().run_in_executor(None, self.host_gpus)
        used = await self.gpus_in_use() if gpus else {}
        configured = self.configured_gpu_types()
        names = [t.name for t in configured] or sorted({g.type for g in gpus})
        display = {t.name: t.display_name for t in configured}
        offers = []
        for name in names:
            total, free = devices.free_of_type(gpus, used, name, self.gpu_sharing)
            offers.append(
                GpuOffer(name, display.get(name, name), self.resource_name, total, free, free)
            )
        note = None if gpus or not configured else "No GPUs were found on this machine."
        if gpus and self.gpu_sharing > 1:
            note = f"Each GPU may be shared by up to {plural(self.gpu_sharing, 'server')}."
        self.log.debug("GPUs from %s: %s; in use: %s", source, gpus, used)
        return offers, note

    # --- spawning ------------------------------------------------------------------------

    async def start(self) -> Any:
        self.begin_progress()
        try:
            choices = await self.checked_choices()
            self._choices = choices
            self.image = choices.image
            if self.network_name == "host":
                self.port = random_port()
            self.say(f"Your choices: {choices.describe()}", 5)
            await self.ensure_home_volume()
            result = await super().start()
            self.say("The server has started; waiting for it to answer", 95)
            return result
        finally:
            self.end_progress()

    async def progress(self) -> Any:
        async for event in self.own_progress():
            yield event

    async def check_allowed(self, image: str) -> str:
        # DockerSpawner's own image check; the form's check (start) has already chosen it.
        assert self._choices is not None
        return self._choices.image

    async def ensure_home_volume(self) -> None:
        name = self.home_volume_name
        try:
            await self.docker("inspect_volume", name)
            self.say(f"Your volume {name} is mounted at {self.home_mount_path}", 8)
            return
        except NotFound:
            pass
        await self.docker(
            "create_volume",
            name,
            driver=self.volume_driver,
            driver_opts=dict(self.volume_driver_opts) or None,
            labels={USER_LABEL: self.user.name, HOME_LABEL: "1"},
        )
        self.say(f"Created your volume {name}, mounted at {self.home_mount_path}", 8)

    async def pull_image(self, image: str) -> None:
        """DockerSpawner's pull policy, with progress events while the image is pulled."""
        if self.pull_policy == "skip":
            return
        repo, tag = image.rsplit(":", 1) if ":" in image.split("/")[-1] else (image, "latest")
        if self.pull_policy.lower() != "always":
            try:
                await self.docker("inspect_image", image)
                self.say(f"The image {image} is already here", 20)
                return
            except NotFound:
                if self.pull_policy == "never":
                    raise
        self.say(f"Pulling the image {image}", 10)
        self._pull_state = {"layers": {}, "said": 0.0}
        loop = asyncio.get_running_loop()

        def pull() -> None:
            for event in self.client.pull(repo, tag, stream=True, decode=True):
                if isinstance(event, dict):
                    loop.call_soon_threadsafe(self._pull_event, image, event)

        await asyncio.wrap_future(self.executor.submit(pull))
        self.say(f"Pulled the image {image}", 60)

    def _pull_event(self, image: str, event: dict[str, Any]) -> None:
        if event.get("error"):
            self.say(f"Pulling {image} failed: {event['error']}")
            return
        layers: dict[str, str] = self._pull_state["layers"]
        if event.get("id") and event.get("status"):
            layers[str(event["id"])] = str(event["status"])
        now = time.monotonic()
        if now - self._pull_state["said"] < 1.0 or not layers:
            return
        self._pull_state["said"] = now
        done = sum(
            1
            for status in layers.values()
            if status.lower().startswith(("pull complete", "already exists", "download complete"))
        )
        fraction = done / len(layers)
        self.say(
            f"Pulling the image {image}: {done} of {plural(len(layers), 'layer')} done",
            10 + int(45 * fraction),
        )

    def _engine_lock(self) -> asyncio.Lock:
        key = (id(asyncio.get_running_loop()), str(self.client.base_url))
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def create_object(self) -> Any:
        """The container, made from the choices; GPUs assigned and the container created
        under one lock per engine, so two spawns never get the same GPU."""
        choices = self._choices
        assert choices is not None
        async with self._engine_lock():
            gpu_ids: list[str] = []
            if choices.gpus:
                assert choices.gpu_type is not None
                gpus, _ = await asyncio.get_running_loop().run_in_executor(None, self.host_gpus)
                used = await self.gpus_in_use()
                assigned = devices.assign(
                    gpus, used, choices.gpu_type, choices.gpus, self.gpu_sharing
                )
                if assigned is None:
                    _, free = devices.free_of_type(gpus, used, choices.gpu_type, self.gpu_sharing)
                    raise SpawnRefused(
                        f"You asked for {choices.gpus} × {choices.gpu_type}; only {free} "
                        f"{'is' if free == 1 else 'are'} free right now. Ask for fewer or "
                        "try again later."
                    )
                gpu_ids = assigned
                self.say(_gpus_given(gpu_ids, choices.gpu_type), 65)
            spec = container_spec(
                name=self.object_name,
                image=self.image,
                command=await self.get_command(),
                env=self.get_env(),
                choices=choices,
                gpu_ids=gpu_ids,
                user=self.user.name,
                server=self.name or "",
                home_volume=self.home_volume_name,
                home_path=self.home_mount_path,
                binds=self.volume_binds,
                network=self.network_name,
                host_ip=self.host_ip,
                port=self.port,
                fallback_cpu=self.cpu_limit,
                fallback_memory=_bytes(self.mem_limit),
                guarantee_fraction=self.guarantee_fraction,
                gpu_driver=self.gpu_driver,
                gpu_capabilities=self.gpu_capabilities,
                auto_remove=False,
            )
            create = deep_merge(spec.create, self._render_templates(self._extra("create")))
            host = deep_merge(spec.host_config, self._render_templates(self._extra("host")))
            create["host_config"] = self.client.create_host_config(**host)
            self.say(f"Creating the container {self.object_name}", 70)
            obj = await self.docker("create_container", **create)
            if gpu_ids:
                await self._check_gpus_kept(obj["Id"], gpu_ids)
            self._gpu_ids = gpu_ids
        return obj

    def _extra(self, which: str) -> dict[str, Any]:
        value = self.extra_create_kwargs if which == "create" else self.extra_host_config
        value = self._eval_if_callable(value)
        return dict(value or {})

    async def _check_gpus_kept(self, container_id: str, gpu_ids: list[str]) -> None:
        info = await self.docker("inspect_container", container_id)
        requests = (info.get("HostConfig") or {}).get("DeviceRequests") or []
        kept = {d for r in requests for d in (r.get("DeviceIDs") or [])}
        if set(gpu_ids) <= kept:
            return
        version = await self.docker("version")
        engine = ", ".join(  # one line: podman's runc version spans several
            " ".join(f"{c.get('Name')} {c.get('Version')}".split())
            for c in version.get("Components") or []
        )
        try:
            await self.docker("remove_container", container_id, force=True)
        except APIError:
            self.log.warning("could not remove %s", container_id)
        raise EngineCannotGiveGpus(
            f"Your server was not started: the container engine ({engine or 'unknown'}) "
            "accepted the container but dropped its GPU device requests, so the server would "
            "have no GPU. Choose No GPU, or ask the hub's administrator to run GPU servers on "
            "Docker Engine with the NVIDIA Container Toolkit (podman's Docker API ignores "
            "device requests)."
        )

    async def start_object(self) -> None:
        self.say("Starting the server", 80)
        await super().start_object()

    async def get_ip_and_port(self) -> tuple[str, int]:
        if self.network_name == "host":
            return (self.ip if self.ip not in ("", "0.0.0.0") else self.host_ip), self.port
        ip, port = await super().get_ip_and_port()
        return str(ip), int(port)

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        choices = self._choices
        if choices is not None and choices.gpus:
            env["CELLPIPE_GPU_TYPE"] = choices.gpu_type or ""
            env["CELLPIPE_GPUS"] = str(choices.gpus)
        return env


def _gpus_given(gpu_ids: list[str], gpu_type: str | None) -> str:
    """ "GPU device 2 (Tesla-T4) is yours": the ids read as devices, never as a count."""
    if len(gpu_ids) == 1:
        return f"GPU device {gpu_ids[0]} ({gpu_type}) is yours"
    return f"GPU devices {', '.join(gpu_ids)} ({gpu_type}) are yours"


def _bytes(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)
