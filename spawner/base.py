"""What both GPU spawners share: the configuration of the form, the form, the checks, limits
and spawn progress. The Kubernetes and Docker halves add where GPUs come from and what a
choice turns into (a pod and a PVC; a container and a volume)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tornado import web
from tornado.log import app_log as tornado_app_log
from traitlets import Bool, Dict, Float, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from cellpipe.launcher.config import CellPipe, check_gpu_types

from .choices import (
    Choices,
    ConfigError,
    FormError,
    GpuOffer,
    ImageChoice,
    Limits,
    Offer,
    Usage,
    check_choices,
    cpu_cores,
    lenient_usage,
    memory_bytes,
    options_from_form,
    user_limits,
)
from .form import render_form

if TYPE_CHECKING:
    from cellpipe.launcher.gpus import GpuType


class SpawnRefused(web.HTTPError):
    """A refused choice, as JupyterHub shows it: 400, and the message above the form (or in
    the REST API's JSON `message`)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "%s", message)
        self.jupyterhub_message = message


class SpawnFailed(web.HTTPError):
    """A spawn that cannot succeed for a reason on the hub's side, said for people.

    JupyterHub shows `jupyterhub_message` to the user wherever the spawn's failure surfaces
    (above the form when it fails at once, on the pending page's progress, on the "not
    running" page after it) instead of "HTTP 500: Internal Server Error", and logs an
    HTTPError raised by start() in one line, without a traceback. 503 by default: what is
    asked cannot be had here now (and JupyterHub dumps the request's headers into its log
    for other 5xx answers)."""

    def __init__(self, message: str, status_code: int = 503) -> None:
        super().__init__(status_code, "%s", message)
        self.jupyterhub_message = message


_UNRETRIEVED = ("Task exception was never retrieved", "Future exception was never retrieved")
# how many spawn messages a filter remembers, to know them again in lines that carry only text
_REMEMBERED = 64


class PlainSpawnMessages(logging.Filter):
    """Keeps the hub's lines about a SpawnRefused or SpawnFailed plain and at the right level.

    JupyterHub logs one spawn's exception several times (the form handler, the
    apply_user_options step, User.spawn, the spawn and pending pages), some lines with a
    traceback, all at ERROR. Ours are messages for people, complete in one line: a line with a
    traceback keeps its text and the message, without the traceback. A refused choice is the
    user's error, not the hub's: its lines become WARNING; a failed spawn stays ERROR. Lines
    without the exception attached (logged inside an except block, or with the exception in
    their text) are known by the exception's text. On asyncio's logger it drops "Task exception
    was never retrieved" for them: JupyterHub's spawn page leaves its spawn task unread when the
    spawn outlasts its first second, after User.spawn has logged the failure and the page has
    shown it."""

    def __init__(self) -> None:
        super().__init__()
        # the text of each spawn exception seen lately, and whether it was a refusal
        self._seen: collections.deque[tuple[str, bool]] = collections.deque(maxlen=_REMEMBERED)

    def filter(self, record: logging.LogRecord) -> bool:
        attached = record.exc_info[1] if record.exc_info else None
        if isinstance(attached, (SpawnRefused, SpawnFailed)):
            if str(record.msg).startswith(_UNRETRIEVED):
                return False
            self._remember(attached)
            record.msg = f"{record.getMessage()}: {attached.jupyterhub_message}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            refused = isinstance(attached, SpawnRefused)
        else:
            refused = self._names_a_refusal(record)
        if refused and record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True

    def _remember(self, exc: SpawnRefused | SpawnFailed) -> None:
        said = (str(exc), isinstance(exc, SpawnRefused))
        if said not in self._seen:
            self._seen.append(said)

    def _names_a_refusal(self, record: logging.LogRecord) -> bool:
        """Whether a line without our exception attached says a refusal in its text (its
        arguments, the exception being handled, or one seen before)."""
        handled = sys.exc_info()[1]
        args = record.args if isinstance(record.args, tuple) else ()
        for candidate in (*args, handled):
            if isinstance(candidate, (SpawnRefused, SpawnFailed)):
                self._remember(candidate)
        if not self._seen or record.levelno <= logging.WARNING:
            return False
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a malformed line is logging's to report
            return False
        return any(refused and said in text for said, refused in self._seen)


_PLAIN_SPAWN_MESSAGES = PlainSpawnMessages()


def keep_spawn_messages_plain(log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """PlainSpawnMessages on the hub's logger (the spawners' and the handlers' own), on
    tornado's application logger (JupyterHub's User logs through it, renamed to the hub's
    name) and on asyncio's, once each."""
    hub = log.logger if isinstance(log, logging.LoggerAdapter) else log
    for logger in (hub, tornado_app_log, logging.getLogger("asyncio")):
        if not any(isinstance(f, PlainSpawnMessages) for f in logger.filters):
            logger.addFilter(_PLAIN_SPAWN_MESSAGES)  # one memory of what was said, for all


async def check_user_options(spawner: GPUFormMixin, _user_options: Any) -> None:
    """JupyterHub's apply_user_options hook, the default of both spawners: the choices are
    checked as soon as the spawn begins (before the pre-spawn hook), so that JupyterHub knows
    they are handled; start() checks them again right before use, against what is free then,
    and applies them (also when a hub's configuration replaces this hook)."""
    # _user_options is spawner.user_options, which checked_choices reads
    spawner.begin_progress()  # the spawn is pending from here: its progress may be read
    try:
        await spawner.checked_choices()
    except SpawnRefused:
        spawner.end_progress()
        raise


class GPUFormMixin(LoggingConfigurable):
    """The GPU form's settings and behaviour; mixed into KubeGPUSpawner and DockerGPUSpawner.

    Expects the spawner's `user`, `user_options`, `image` and `name` (JupyterHub's Spawner)."""

    images = List(
        Dict(),
        help="""The images offered, first is the default: [{"image": "registry/notebook:tag",
        "display_name": "Python 3.11 + CUDA 12"}]. Empty: only the spawner's `image`.""",
    ).tag(config=True)

    allow_custom_image = Bool(
        False,
        help="""Let people type any image reference (checked to be one) besides the offered
        images.""",
    ).tag(config=True)

    cpu_choices = List(
        Unicode(),
        default_value=["1", "2", "4"],
        help="""CPU choices (Kubernetes quantities: "0.5", "2", "500m"), first is the default.
        Empty: no CPU field (the spawner's cpu_limit applies).""",
    ).tag(config=True)

    memory_choices = List(
        Unicode(),
        default_value=["2Gi", "4Gi", "8Gi"],
        help="""Memory choices (Kubernetes quantities: "512Mi", "4Gi"), first is the default.
        Empty: no memory field (the spawner's mem_limit applies).""",
    ).tag(config=True)

    gpu_types = List(
        Dict(),
        default_value=None,
        allow_none=True,
        help="""GPU types offered, the shape of c.CellPipe.gpu_types: [{"name": node label
        value, "display_name": words for people, "resource": Kubernetes resource}].
        None (default): c.CellPipe.gpu_types from the same configuration.""",
    ).tag(config=True)

    gpu_resource = Unicode(
        None,
        allow_none=True,
        help="Resource name of one GPU. None: c.CellPipe.gpu_resource (nvidia.com/gpu).",
    ).tag(config=True)

    gpu_label = Unicode(
        None,
        allow_none=True,
        help="""Node label whose value is the GPU type. None: c.CellPipe.gpu_label
        (nvidia.com/gpu.product).""",
    ).tag(config=True)

    default_limits = Dict(
        help="""What one user may use at a time across all their running servers:
        {"gpus": 2, "cpu": "8", "memory": "32Gi"}; a missing key is no limit.""",
    ).tag(config=True)

    group_limits = Dict(
        help="""Limits by JupyterHub group, in the shape of default_limits:
        {"gpu-team": {"gpus": 4}}. A member gets, per resource, the most generous of the
        default and their groups' limits.""",
    ).tag(config=True)

    guarantee_fraction = Float(
        1.0,
        help="""The CPU and memory guaranteed (Kubernetes requests; Docker memory
        reservation) as a fraction of the chosen limit. 1.0: guaranteed as chosen.""",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        keep_spawn_messages_plain(self.log)

    @default("apply_user_options")
    def _check_options_hook(self) -> Any:
        return check_user_options

    # --- configuration checks ----------------------------------------------------------------

    @validate("images")
    def _check_images(self, proposal: Any) -> list[dict[str, str]]:
        checked = []
        where = f"{type(self).__name__}.images"
        for number, entry in enumerate(proposal["value"], start=1):
            unknown = sorted(set(entry) - {"image", "display_name"})
            if unknown:
                raise TraitError(f"{where} entry {number}: unknown keys {', '.join(unknown)}")
            if not isinstance(entry.get("image"), str) or not entry["image"]:
                raise TraitError(f"{where} entry {number} needs an image")
            if not isinstance(entry.get("display_name", ""), str):
                raise TraitError(f"{where} entry {number}: display_name is not text")
            checked.append(dict(entry))
        return checked

    @validate("gpu_types")
    def _check_gpu_types_trait(self, proposal: Any) -> list[dict[str, str]] | None:
        value = proposal["value"]
        return None if value is None else check_gpu_types(value, f"{type(self).__name__}.gpu_types")

    @validate("cpu_choices")
    def _check_cpu_choices(self, proposal: Any) -> list[str]:
        for choice in proposal["value"]:
            try:
                cpu_cores(choice)
            except ValueError as exc:
                raise TraitError(f"{type(self).__name__}.cpu_choices: {exc}") from None
        return list(proposal["value"])

    @validate("memory_choices")
    def _check_memory_choices(self, proposal: Any) -> list[str]:
        for choice in proposal["value"]:
            try:
                memory_bytes(choice)
            except ValueError as exc:
                raise TraitError(f"{type(self).__name__}.memory_choices: {exc}") from None
        return list(proposal["value"])

    @validate("default_limits")
    def _check_default_limits(self, proposal: Any) -> dict[str, Any]:
        try:
            Limits.from_config(proposal["value"], f"{type(self).__name__}.default_limits")
        except ConfigError as exc:
            raise TraitError(str(exc)) from None
        return dict(proposal["value"])

    @validate("group_limits")
    def _check_group_limits(self, proposal: Any) -> dict[str, Any]:
        for group, limits in proposal["value"].items():
            if not isinstance(limits, Mapping):
                raise TraitError(f"{type(self).__name__}.group_limits[{group!r}] is not a dict")
            try:
                Limits.from_config(limits, f"{type(self).__name__}.group_limits[{group!r}]")
            except ConfigError as exc:
                raise TraitError(str(exc)) from None
        return dict(proposal["value"])

    @validate("guarantee_fraction")
    def _check_fraction(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not 0 < value <= 1:
            raise TraitError(
                f"{type(self).__name__}.guarantee_fraction must be above 0 and at most 1"
            )
        return value

    # --- what this user is offered -----------------------------------------------------------

    _cellpipe: CellPipe | None = None
    _refused_options: dict[str, Any] | None = None
    _progress_events: list[dict[str, Any]]
    _spawn_done: asyncio.Event | None = None

    @property
    def cellpipe_config(self) -> CellPipe:
        """c.CellPipe.* from the hub's configuration (shared GPU settings)."""
        if self._cellpipe is None:
            self._cellpipe = CellPipe(config=self.config)
        return self._cellpipe

    @property
    def resource_name(self) -> str:
        return self.gpu_resource or self.cellpipe_config.gpu_resource

    @property
    def label_name(self) -> str:
        return self.gpu_label or self.cellpipe_config.gpu_label

    def configured_gpu_types(self) -> list[GpuType]:
        from cellpipe.launcher.gpus import configured_types

        entries = self.gpu_types if self.gpu_types is not None else self.cellpipe_config.gpu_types
        types: list[GpuType] = configured_types(entries, self.resource_name)
        return types

    def image_choices(self) -> tuple[ImageChoice, ...]:
        if self.images:
            return tuple(
                ImageChoice(e["image"], e.get("display_name") or e["image"]) for e in self.images
            )
        image: str = getattr(self, "image", "")
        return (ImageChoice(image, image),) if image else ()

    def user_group_names(self) -> list[str]:
        user = getattr(self, "user", None)
        return [str(getattr(g, "name", g)) for g in getattr(user, "groups", None) or []]

    def limits(self) -> Limits:
        where = type(self).__name__
        default = Limits.from_config(self.default_limits, f"{where}.default_limits")
        groups = {
            name: Limits.from_config(value, f"{where}.group_limits[{name!r}]")
            for name, value in self.group_limits.items()
        }
        return user_limits(default, groups, self.user_group_names())

    def other_servers(self) -> list[Any]:
        """The user's other servers that are running or starting."""
        user = getattr(self, "user", None)
        spawners: Mapping[str, Any] = getattr(user, "spawners", None) or {}
        others: list[Any] = [
            spawner
            for spawner in list(spawners.values())
            if spawner is not self and getattr(spawner, "active", False)
        ]
        return others

    def usage_of_other_servers(self) -> Usage:
        total = Usage()
        for spawner in self.other_servers():
            options = getattr(spawner, "user_options", None) or {}
            total = total + lenient_usage(options if isinstance(options, Mapping) else {})
        return total

    async def gpu_offers(self) -> tuple[list[GpuOffer], str | None]:
        """The GPU types offered, with what is free now, and a note for people (or None)."""
        raise NotImplementedError

    async def offer(self) -> Offer:
        gpus, note = await self.gpu_offers()
        return Offer(
            images=self.image_choices(),
            allow_custom_image=self.allow_custom_image,
            cpu_choices=tuple(self.cpu_choices),
            memory_choices=tuple(self.memory_choices),
            gpus=tuple(gpus),
            limits=self.limits(),
            usage=self.usage_of_other_servers(),
            gpu_note=note,
        )

    # --- the form ----------------------------------------------------------------------------

    async def render_options_form(self) -> str:
        """The form, preselected with the choices just refused, else the last ones."""
        selected = self._refused_options
        self._refused_options = None
        if selected is None:
            selected = dict(getattr(self, "user_options", None) or {})
        return render_form(await self.offer(), selected)

    async def read_options_form(self, formdata: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        """options_from_form: the fields as user_options, checked now so that a refusal
        comes back on the form (start() checks them again: the REST API skips the form)."""
        options = options_from_form(formdata)
        try:
            check_choices(options, await self.offer())
        except FormError as exc:
            self._refused_options = options
            raise SpawnRefused(str(exc)) from None
        return options

    async def checked_choices(self) -> Choices:
        """user_options checked against the offer now, for start(); SpawnRefused if not."""
        options = getattr(self, "user_options", None) or {}
        try:
            return check_choices(options, await self.offer())
        except FormError as exc:
            self._refused_options = dict(options) if isinstance(options, Mapping) else None
            raise SpawnRefused(str(exc)) from None

    # --- progress ----------------------------------------------------------------------------

    def begin_progress(self) -> None:
        """A new spawn's progress, unless this spawn's has begun (in check_user_options)."""
        if self._spawn_done is not None and not self._spawn_done.is_set():
            return
        self._progress_events = []
        self._spawn_done = asyncio.Event()

    def say(self, message: str, progress: int | None = None) -> None:
        """One spawn progress event (the hub shows it on the spawn-pending page)."""
        event: dict[str, Any] = {"message": message}
        if progress is not None:
            event["progress"] = progress
        if not hasattr(self, "_progress_events"):
            self._progress_events = []
        self._progress_events.append(event)
        self.log.info("%s: %s", getattr(self, "_log_name", "spawner"), message)

    def end_progress(self) -> None:
        if self._spawn_done is not None:
            self._spawn_done.set()

    async def own_progress(self, poll: float = 0.25) -> AsyncIterator[dict[str, Any]]:
        """This spawn's events as they come, until start() has finished (JupyterHub stops
        reading when the spawn ends, whichever way)."""
        sent = 0
        while True:
            done = self._spawn_done
            finished = done is None or done.is_set()
            events = getattr(self, "_progress_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            if finished:
                return
            assert done is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), poll)
