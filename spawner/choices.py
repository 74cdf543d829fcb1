"""What a user may choose on the spawn form, and the server's check of what they chose.

Pure: no JupyterHub, no network. The spawners gather an `Offer` (what is configured, what is
free right now, the user's limits and what their other servers already use); `check_choices`
turns untrusted input (form fields or REST `user_options`) into `Choices` or raises
`FormError` with a message for people.

user_options, the one shape for the form and the REST API (all keys optional):

    {"image": "registry/notebook:1", "cpu": "2", "memory": "8Gi",
     "gpu_type": "NVIDIA-A100-SXM4-80GB", "gpus": 1}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

CUSTOM_IMAGE = "__custom__"  # the form's "another image" choice; its text is in custom_image
FORM_FIELDS = ("image", "custom_image", "cpu", "memory", "gpu_type", "gpus")
OPTION_KEYS = ("image", "cpu", "memory", "gpu_type", "gpus")
LIMIT_KEYS = ("gpus", "cpu", "memory")
MAX_IMAGE_LENGTH = 255
MAX_FIELD_LENGTH = 300  # anything longer is refused before it is looked at

# An image reference as registries name them: [host[:port]/]path[:tag][@digest].
# The first part is a registry host only when it has a dot or a port, or is localhost (as
# Docker reads references); every other part is lowercase.
_IMAGE = re.compile(
    r"^(?:(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|[a-zA-Z0-9-]+(?=:[0-9]))(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)([a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


class FormError(ValueError):
    """A choice the server refuses; the message says what is wrong and what is allowed."""

    @property
    def jupyterhub_message(self) -> str:  # JupyterHub shows this above the re-rendered form
        return str(self)


class ConfigError(ValueError):
    """A spawner setting that cannot work (raised when the hub reads its configuration)."""


# --- quantities -----------------------------------------------------------------------------


def cpu_cores(text: str) -> float:
    """A Kubernetes CPU quantity as cores: "2" -> 2.0, "500m" -> 0.5, "1.5" -> 1.5."""
    value = str(text).strip()
    if value.endswith("m") and value[:-1].isdigit():
        return int(value[:-1]) / 1000
    match = _QUANTITY.match(value)
    if not match or match.group(2):
        raise ValueError(f"{text!r} is not a CPU quantity (write 2, 0.5 or 500m)")
    cores = float(match.group(1))
    if cores <= 0 or not math.isfinite(cores):
        raise ValueError(f"{text!r} is not a positive CPU quantity")
    return cores


def memory_bytes(text: str) -> int:
    """A Kubernetes memory quantity in bytes: "4Gi" -> 4294967296, "512M" -> 512000000."""
    match = _QUANTITY.match(str(text).strip())
    suffix = match.group(2) if match else None
    if match is None or (suffix not in _BINARY and suffix not in _DECIMAL):
        raise ValueError(f"{text!r} is not a memory quantity (write 4Gi, 512Mi or 8G)")
    scale = _BINARY.get(suffix) or _DECIMAL[suffix]
    amount = int(float(match.group(1)) * scale)
    if amount <= 0:
        raise ValueError(f"{text!r} is not a positive memory quantity")
    return amount


def describe_bytes(amount: int) -> str:
    for suffix, scale in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount >= scale and amount % (scale // 16 or 1) == 0:
            value = amount / scale
            return f"{value:g} {suffix}B"
    return f"{amount} bytes"


def describe_cores(cores: float) -> str:
    return f"{cores:g} CPU" + ("" if cores == 1 else "s")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def other_servers(count: int) -> str:
    """ "your other running server" / "your 2 other running servers", for sentences."""
    return "your other running server" if count == 1 else f"your {count} other running servers"


def uses(count: int) -> str:
    """The verb after other_servers(count)."""
    return "uses" if count == 1 else "use"


def is_image_reference(text: str) -> bool:
    return 0 < len(text) <= MAX_IMAGE_LENGTH and bool(_IMAGE.match(text))


# --- what is offered ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageChoice:
    image: str
    display_name: str


@dataclass(frozen=True)
class GpuOffer:
    """One GPU type on offer and what is free of it right now (None: not known)."""

    name: str  # the value of the node's GPU product label (or the host GPU's product name)
    display_name: str
    resource: str  # Kubernetes extended resource (nvidia.com/gpu, a MIG slice, ...)
    total: int | None = None
    free: int | None = None
    max_per_server: int | None = None  # the most one server can get now (one node, one host)
    # The most one server could ever get: the largest machine's count of this type, or
    # (`largest_configured`) a bound configured where the machines cannot be seen. It bounds
    # a count when what is free is unknown. None: not bounded.
    largest: int | None = None
    largest_configured: bool = False


@dataclass(frozen=True)
class Limits:
    """What one user may use at a time across all their running servers (None: no limit).

    `given` says which limits a group's entry sets (a group that names only memory says
    nothing about GPUs); the default limits give all of them."""

    gpus: int | None = None
    cpu: float | None = None
    memory: int | None = None  # bytes
    given: frozenset[str] = frozenset(LIMIT_KEYS)

    @classmethod
    def from_config(cls, value: Mapping[str, Any], where: str) -> Limits:
        unknown = sorted(set(value) - set(LIMIT_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys {', '.join(unknown)}; the keys are {', '.join(LIMIT_KEYS)}"
            )
        gpus = value.get("gpus")
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
            raise ConfigError(f"{where}: gpus must be a whole number of GPUs, not {gpus!r}")
        try:
            cpu = None if value.get("cpu") is None else cpu_cores(str(value["cpu"]))
            memory = None if value.get("memory") is None else memory_bytes(str(value["memory"]))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cls(gpus, cpu, memory, frozenset(value))


def user_limits(
    default: Limits, group_limits: Mapping[str, Limits], groups: Iterable[str]
) -> Limits:
    """The user's limits: per resource, the most generous of the default and of what the
    groups they belong to say about it (no limit beats any limit)."""
    members = [group_limits[g] for g in sorted(set(groups)) if g in group_limits]
    values: dict[str, Any] = {}
    for key in LIMIT_KEYS:
        candidates = [getattr(default, key)]
        candidates += [getattr(limits, key) for limits in members if key in limits.given]
        values[key] = None if any(c is None for c in candidates) else max(candidates)
    return Limits(**values)


@dataclass(frozen=True)
class Usage:
    """What the user's other running servers use."""

    gpus: int = 0
    cpu: float = 0.0
    memory: int = 0
    servers: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.gpus + other.gpus,
            self.cpu + other.cpu,
            self.memory + other.memory,
            self.servers + other.servers,
        )


@dataclass(frozen=True)
class Offer:
    """Everything the form shows and the check enforces, for one user at one moment."""

    images: tuple[ImageChoice, ...]
    allow_custom_image: bool
    cpu_choices: tuple[str, ...]
    memory_choices: tuple[str, ...]
    gpus: tuple[GpuOffer, ...]
    limits: Limits = field(default_factory=Limits)
    usage: Usage = field(default_factory=Usage)
    gpu_note: str | None = None  # e.g. why free counts are unknown

    def gpu(self, name: str) -> GpuOffer | None:
        return next((g for g in self.gpus if g.name == name), None)

    @property
    def gpus_left(self) -> int | None:
        """GPUs the user's limit still allows (None: no limit)."""
        if self.limits.gpus is None:
            return None
        return max(0, self.limits.gpus - self.usage.gpus)

    def most_gpus(self, gpu: GpuOffer) -> int | None:
        """The most GPUs of this type one server may ask for now (None: not bounded)."""
        bounds = [b for b in (self.gpus_left, gpu.max_per_server, gpu.largest) if b is not None]
        return min(bounds) if bounds else None

    def why_unavailable(self, gpu: GpuOffer) -> str | None:
        """Why no server of this user can get this type now, for people (None: it can)."""
        if self.most_gpus(gpu) != 0:
            return None
        if self.gpus_left == 0:
            if not self.usage.gpus:
                return "your limit is 0 GPUs"
            return (
                f"your limit of {plural(self.limits.gpus or 0, 'GPU')} is taken by "
                f"{other_servers(self.usage.servers)}"
            )
        if gpu.largest == 0:
            return "no machine has one"
        return "none is free right now; try again later"

    @property
    def most_gpus_any(self) -> int | None:
        bounds = [self.most_gpus(g) for g in self.gpus]
        if not bounds or any(b is None for b in bounds):
            return self.gpus_left if bounds else 0
        return max(b for b in bounds if b is not None)


@dataclass(frozen=True)
class Choices:
    """A checked choice: safe to turn into a pod or a container."""

    image: str
    cpu: str | None
    memory: str | None
    gpu_type: str | None
    gpus: int
    gpu_resource: str | None = None  # the resource the type is counted under

    @property
    def cpu_cores(self) -> float | None:
        return None if self.cpu is None else cpu_cores(self.cpu)

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else memory_bytes(self.memory)

    def usage(self) -> Usage:
        return Usage(self.gpus, self.cpu_cores or 0.0, self.memory_bytes or 0, 1)

    def to_user_options(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "cpu": self.cpu,
            "memory": self.memory,
            "gpu_type": self.gpu_type,
            "gpus": self.gpus,
        }

    def describe(self) -> str:
        parts = [self.image]
        if self.cpu is not None:
            parts.append(describe_cores(cpu_cores(self.cpu)))
        if self.memory is not None:
            parts.append(f"{self.memory} memory")
        if self.gpus:
            parts.append(f"{self.gpus} × {self.gpu_type} GPU")
        return ", ".join(parts)


# --- reading input --------------------------------------------------------------------------


def options_from_form(form: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Form fields (JupyterHub hands over lists of strings) as user_options, unchecked.

    Only the form's own fields are read; `custom_image` replaces `image` when the image
    choice is "another image"; "No GPU" chosen means 0 GPUs whatever the count field holds
    (a browser without scripts does not clear it)."""
    values: dict[str, Any] = {}
    for key in FORM_FIELDS:
        given = form.get(key)
        if given:
            values[key] = str(given[0]).strip()
    options = {k: v for k, v in values.items() if k in OPTION_KEYS}
    if values.get("gpu_type") == "":  # the form's "No GPU", a choice: the count left is moot
        options["gpus"] = "0"
    if values.get("image") == CUSTOM_IMAGE:
        options["image"] = values.get("custom_image", "")
        options["custom_image"] = True
    return options


def _text(options: Mapping[str, Any], key: str, what: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FormError(f"{what}: {value!r} is not text")
    if len(value) > MAX_FIELD_LENGTH:
        raise FormError(f"{what}: the value is too long")
    return value


def _count(options: Mapping[str, Any]) -> int:
    value = options.get("gpus")
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise FormError(f"GPUs: {value!r} is not a whole number")
    if isinstance(value, int):
        count = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value) < 6:
        count = int(value.strip())
    elif isinstance(value, str) and value.strip().startswith("-"):
        raise FormError(f"GPUs: {value.strip()} is below 0")
    else:
        shown = value if isinstance(value, (str, int, float)) else type(value).__name__
        raise FormError(f"GPUs: {str(shown)[:40]!r} is not a whole number")
    if count < 0:
        raise FormError(f"GPUs: {count} is below 0")
    return count


def check_choices(options: Mapping[str, Any], offer: Offer) -> Choices:
    """Untrusted user_options (form or REST API) -> Choices, or FormError.

    Checks types and ranges, the image against the offered list (unless custom images are
    allowed, and then that it is an image reference), CPU and memory against the offered
    choices, the GPU type against the offered types, and the totals against the user's limits
    (across their other running servers) and against what is free right now."""
    if not isinstance(options, Mapping):
        raise FormError("the server options must be a JSON object")
    image = _check_image(options, offer)
    cpu = _one_of(_text(options, "cpu", "CPU"), offer.cpu_choices, "CPU")
    memory = _one_of(_text(options, "memory", "Memory"), offer.memory_choices, "Memory")
    gpus = _count(options)
    gpu_type = _text(options, "gpu_type", "GPU type")
    resource = None
    if gpus == 0:
        if gpu_type is not None:  # a type picked with the count left at 0: never "no GPU" silently
            raise FormError(_type_without_count(gpu_type, offer))
    else:
        gpu = _check_gpu_type(gpu_type, gpus, offer)
        gpu_type, resource = gpu.name, gpu.resource
        left = offer.gpus_left
        if left is not None and gpus > left:
            raise FormError(
                f"You asked for {plural(gpus, 'GPU')}; your limit is "
                f"{plural(offer.limits.gpus or 0, 'GPU')} at a time"
                + _in_use(offer.usage.servers, offer.usage.gpus, plural(offer.usage.gpus, "GPU"))
                + (
                    f", so you may ask for at most {left}."
                    if left
                    else ", so none is left to you: choose No GPU, or stop another server first."
                )
            )
        if gpu.max_per_server is not None and gpus > gpu.max_per_server:
            free = (
                f"only {gpu.max_per_server} {'is' if gpu.max_per_server == 1 else 'are'} free"
                if gpu.max_per_server
                else "none is free"
            )
            raise FormError(
                f"You asked for {gpus} × {gpu.display_name}; {free} right now"
                + (" on any one machine" if (gpu.free or 0) > gpu.max_per_server else "")
                + ". Ask for fewer, choose another type, or try again later."
            )
        if gpu.largest is not None and gpus > gpu.largest:
            raise FormError(f"You asked for {gpus} × {gpu.display_name}; {_largest(gpu)}.")
    choices = Choices(image, cpu, memory, gpu_type, gpus, resource)
    _check_totals(choices, offer)
    return choices


def _largest(gpu: GpuOffer) -> str:
    """Why one server gets at most `gpu.largest`, for people."""
    if gpu.largest_configured:
        return (
            f"one server may ask for at most {gpu.largest} (the hub cannot see how many one "
            "machine has). Ask for fewer"
        )
    return (
        f"the largest machine has {gpu.largest}, so one server can get at most {gpu.largest}. "
        "Ask for fewer"
    )


def _check_image(options: Mapping[str, Any], offer: Offer) -> str:
    image = _text(options, "image", "Image")
    offered = [c.image for c in offer.images]
    if image is None:
        if not offered:
            raise FormError("Image: no image is configured; ask the hub's administrator")
        return offered[0]
    if image in offered:
        return image
    listed = ", ".join(offered) or "(none)"
    if not offer.allow_custom_image:
        raise FormError(f"Image: {image!r} is not one of the offered images: {listed}")
    if not is_image_reference(image):
        raise FormError(
            f"Image: {image!r} is not an image reference; write it as "
            "registry.example.com/team/notebook:tag"
        )
    return image


def _one_of(value: str | None, allowed: Sequence[str], what: str) -> str | None:
    if not allowed:
        if value is not None:
            raise FormError(f"{what}: this hub offers no choice of {what.lower()}")
        return None
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise FormError(f"{what}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _check_gpu_type(gpu_type: str | None, gpus: int, offer: Offer) -> GpuOffer:
    if not offer.gpus:
        raise FormError(f"You asked for {plural(gpus, 'GPU')}; this hub has no GPUs to offer.")
    if gpu_type is None:
        if len(offer.gpus) == 1:
            return offer.gpus[0]
        names = ", ".join(g.display_name for g in offer.gpus)
        raise FormError(f"You asked for {plural(gpus, 'GPU')}; choose a GPU type: {names}")
    gpu = offer.gpu(gpu_type)
    if gpu is None:
        names = ", ".join(g.name for g in offer.gpus)
        raise FormError(f"GPU type {gpu_type!r} is not offered; the types are: {names}")
    return gpu


def _type_without_count(gpu_type: str, offer: Offer) -> str:
    gpu = offer.gpu(gpu_type)
    name = gpu.display_name if gpu is not None else repr(gpu_type)
    return (
        f"You chose {name} with 0 GPUs, which would start a server without a GPU. "
        f"Ask for at least 1 {name}, or choose No GPU."
    )


def _in_use(servers: int, amount: float, described: str) -> str:
    """ " and your other running server already uses 2 GPUs" (nothing when none is used)."""
    if not amount:
        return ""
    return f" and {other_servers(servers)} already {uses(servers)} {described}"


def _check_totals(choices: Choices, offer: Offer) -> None:
    limits, usage = offer.limits, offer.usage
    cores = choices.cpu_cores
    if limits.cpu is not None and cores is not None and usage.cpu + cores > limits.cpu + 1e-9:
        raise FormError(
            f"You asked for {describe_cores(cores)}; your limit is "
            f"{describe_cores(limits.cpu)} at a time"
            + _in_use(usage.servers, usage.cpu, describe_cores(usage.cpu))
            + ". Choose less, or stop another server first."
        )
    amount = choices.memory_bytes
    if limits.memory is not None and amount is not None and usage.memory + amount > limits.memory:
        raise FormError(
            f"You asked for {describe_bytes(amount)} of memory; your limit is "
            f"{describe_bytes(limits.memory)} at a time"
            + _in_use(usage.servers, usage.memory, describe_bytes(usage.memory))
            + ". Choose less, or stop another server first."
        )


def lenient_usage(options: Mapping[str, Any]) -> Usage:
    """What a running server's stored user_options say it uses (bad values count as 0)."""
    try:
        gpus = _count(options)
    except FormError:
        gpus = 0
    try:
        cores = cpu_cores(str(options["cpu"])) if options.get("cpu") else 0.0
    except ValueError:
        cores = 0.0
    try:
        memory = memory_bytes(str(options["memory"])) if options.get("memory") else 0
    except ValueError:
        memory = 0
    return Usage(gpus, cores, memory, 1)


def with_gpus(offer: Offer, gpus: Iterable[GpuOffer], note: str | None) -> Offer:
    return replace(offer, gpus=tuple(gpus), gpu_note=note)
