"""The tag grammar: cellpipe's tags, Kale's dialect, and the `%%step` first line.

Each cell's tags become one `CellTags`; problems become messages (the caller locates them).
Nothing here knows about other cells.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import limits
from .images_ref import reference_problem
from .model import GpuRequest, SecretEnv, VolumeMount

Role = Literal["step", "imports", "functions", "parameters", "metrics", "skip"]

ROLE_TAGS: dict[str, Role] = {
    "imports": "imports",
    "functions": "functions",
    "parameters": "parameters",
    "pipeline-parameters": "parameters",  # Kale
    "metrics": "metrics",
    "pipeline-metrics": "metrics",  # Kale
    "skip": "skip",
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
STEP_MAGIC = "%%step"


@dataclass
class CellTags:
    """What one cell's tags (and `%%step` line) say."""

    role: Role | None = None
    step_names: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    gpu: GpuRequest | None = None
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    image: str | None = None
    retries: int | None = None
    timeout_seconds: int | None = None
    cache: bool | None = None
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[SecretEnv] = field(default_factory=list)
    volumes: list[VolumeMount] = field(default_factory=list)
    shm_size: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    report: bool | None = None
    models: list[str] = field(default_factory=list)  # `model:NAME`: a value served as a model
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_step_settings(self) -> bool:
        """Whether the cell sets anything that only a step can carry."""
        return bool(
            self.after
            or self.gpu
            or self.cpu_request
            or self.cpu_limit
            or self.memory_request
            or self.memory_limit
            or self.image
            or self.retries is not None
            or self.timeout_seconds is not None
            or self.cache is not None
            or self.env
            or self.secrets
            or self.volumes
            or self.shm_size
            or self.labels
            or self.annotations
            or self.report is not None
            or bool(self.models)
        )


@dataclass(frozen=True)
class TagWords:
    """The words a notebook's tags use for a step and for the steps it runs after:
    cellpipe's (`step:`, `after:`) or Kale's (`block:`, `prev:`). Messages name the tags the
    notebook uses, so a Kale user is never told to write a tag their tools do not write."""

    step: str = "step"
    after: str = "after"


def tag_words(cells: Iterable[Mapping[str, Any]], metadata: Mapping[str, Any]) -> TagWords:
    """The words of the notebook's own tags: Kale's where its cells use `block:` (or `prev:`)
    and never cellpipe's word for the same thing, or, with neither, where the notebook has
    Kale's metadata (`kubeflow_notebook`); cellpipe's otherwise."""
    keys: set[str] = set()
    for cell in cells:
        tags = (cell.get("metadata") or {}).get("tags") or []
        keys.update(str(t).partition(":")[0].strip() for t in tags if ":" in str(t))
    kale = "kubeflow_notebook" in metadata
    step = "block" if "block" in keys and "step" not in keys else "step"
    after = "prev" if "prev" in keys and "after" not in keys else "after"
    if kale and not keys & {"block", "step"}:
        step = "block"
    if kale and not keys & {"prev", "after"}:
        after = "prev"
    return TagWords(step, after)


def parse_cell_tags(tags: list[str], gpu_resource: str = "nvidia.com/gpu") -> CellTags:
    """Read a cell's tags, in either dialect, into one `CellTags`."""
    parsed = CellTags()
    for tag in tags:
        _apply_tag(parsed, tag.strip(), gpu_resource)
    return parsed


def _set_role(parsed: CellTags, role: Role, tag: str) -> None:
    # Kale's precedence, so Kale notebooks read unchanged: a special role (skip, imports, ...)
    # wins over a step tag, and the first special role wins over later ones.
    current = parsed.role
    if current is None or current == role:
        parsed.role = role
        return
    winner = role if current == "step" else current
    parsed.warnings.append(
        f"the cell is tagged both {current} and {role}; it is treated as {winner} "
        "(as Kale does); keep one of these tags"
    )
    parsed.role = winner


def _apply_tag(parsed: CellTags, tag: str, gpu_resource: str) -> None:
    if tag in ROLE_TAGS:
        _set_role(parsed, ROLE_TAGS[tag], tag)
        return
    key, sep, value = tag.partition(":")
    if not sep:
        return  # a plain word belongs to other tools (jupyter-book's hide-input, papermill's...)
    if key in ("step", "block"):
        if not value.strip():
            # Kale's extension writes an empty `block:`/`step:` and Kale reads it as no tag
            # (nbprocessor: "We handle that as if it was empty"); so does cellpipe.
            return
        _set_role(parsed, "step", tag)
        if value.strip() not in parsed.step_names:
            parsed.step_names.append(value.strip())
    elif key in ("after", "prev"):
        if not value.strip():
            parsed.errors.append(f"tag {tag!r} names no step; write {key}:NAME")
        elif value.strip() not in parsed.after:
            parsed.after.append(value.strip())
    elif key == "gpu":
        _apply_gpu(parsed, tag, value, gpu_resource)
    elif key in ("cpu", "memory"):
        amount = _quantity(parsed, tag, key, value)
        if amount is not None and key == "cpu":
            parsed.cpu_request = parsed.cpu_limit = amount
        elif amount is not None:
            parsed.memory_request = parsed.memory_limit = amount
    elif key == "limit":
        _apply_kale_limit(parsed, tag, value, gpu_resource)
    elif key == "image":
        problem = reference_problem(value)
        if problem is not None:
            parsed.errors.append(
                f"tag {tag!r}: write image:REF with an image reference ({problem})"
            )
        else:
            parsed.image = value
    elif key == "retries":
        parsed.retries = _whole_number(parsed, tag, value, 0, limits.MAX_RETRIES, "", "retries:3")
    elif key == "timeout":
        parsed.timeout_seconds = _whole_number(
            parsed, tag, value, 1, limits.MAX_TIMEOUT_SECONDS, "second", "timeout:3600"
        )
    elif key == "cache":
        _apply_cache(parsed, tag, value)
    elif key == "env":
        _apply_env(parsed, tag, value)
    elif key == "secret":
        _apply_secret(parsed, tag, value)
    elif key == "volume":
        _apply_volume(parsed, tag, value)
    elif key == "shm":
        parsed.shm_size = _quantity(parsed, tag, key, value) or parsed.shm_size
    elif key in ("label", "annotation"):
        _apply_metadata(parsed, tag, key, value)
    elif key == "report":
        # Kale's per-step HTML report: the step runs as a notebook and keeps its rich output.
        if value in ("enabled", "on", "true", "disabled", "off", "false"):
            parsed.report = value in ("enabled", "on", "true")
        else:
            parsed.errors.append(f"tag {tag!r}: write report:enabled or report:disabled")
    elif key == "model":
        _apply_model(parsed, tag, value.strip())
    elif key == "notebook":
        parsed.warnings.append(
            f"tag {tag!r}: Kale's notebook: steps (another notebook as a step) are not supported "
            "by cellpipe; the cell's code is used as it stands"
        )
    else:
        parsed.warnings.append(
            f"tag {tag!r} is not a cellpipe or Kale tag and is ignored; "
            "see the tag grammar in the README"
        )


def _whole_number(
    parsed: CellTags, tag: str, value: str, least: int, most: int, unit: str, example: str
) -> int | None:
    try:
        return limits.whole_number(value, least, most, unit)
    except limits.Refused as exc:
        parsed.errors.append(f"tag {tag!r}: {exc} (e.g. {example})")
        return None


GPU_COUNT = f"the GPU count must be a whole number of at least 1 and at most {limits.MAX_GPUS}"
QUANTITY_EXAMPLES = {"cpu": "cpu:500m or cpu:2", "memory": "memory:512Mi or memory:4Gi"}


def _quantity(parsed: CellTags, tag: str, key: str, value: str) -> str | None:
    """A CPU amount or a size in the form kfp and Kubernetes both read, or None (an error)."""
    try:
        return limits.cpu(value) if key == "cpu" else limits.memory(value)
    except limits.Refused as exc:
        example = QUANTITY_EXAMPLES.get(key, f"{key}:2Gi")
        parsed.errors.append(f"tag {tag!r}: {exc} (e.g. {example})")
        return None


def _apply_gpu(parsed: CellTags, tag: str, value: str, gpu_resource: str) -> None:
    count_text, _, gpu_type = value.partition(":")
    try:
        count = limits.whole_number(count_text, 1, limits.MAX_GPUS)
    except limits.Refused:
        parsed.errors.append(f"tag {tag!r}: {GPU_COUNT} (gpu:1 or gpu:2:A100)")
        return
    if gpu_type and not _LABEL_VALUE.fullmatch(gpu_type):
        parsed.errors.append(
            f"tag {tag!r}: {gpu_type!r} is not a valid node label value for a GPU type"
        )
        return
    parsed.gpu = GpuRequest(count=count, type=gpu_type or None, resource=None)


def _apply_kale_limit(parsed: CellTags, tag: str, value: str, gpu_resource: str) -> None:
    """Kale's `limit:RESOURCE:QTY`, e.g. `limit:nvidia.com/gpu:2`, `limit:memory:4Gi`."""
    resource, _, quantity = value.rpartition(":")
    if not resource or not quantity:
        parsed.errors.append(f"tag {tag!r}: write limit:RESOURCE:QUANTITY (e.g. limit:memory:4Gi)")
    elif resource in ("cpu", "memory"):
        amount = _quantity(parsed, tag, resource, quantity)
        if amount is not None and resource == "cpu":
            parsed.cpu_limit = amount
        elif amount is not None:
            parsed.memory_limit = amount
    elif resource.endswith("/gpu") or resource == gpu_resource:
        try:
            count = limits.whole_number(quantity, 1, limits.MAX_GPUS)
        except limits.Refused:
            parsed.errors.append(f"tag {tag!r}: {GPU_COUNT} (limit:nvidia.com/gpu:2)")
            return
        explicit = None if resource == gpu_resource else resource
        gpu_type = parsed.gpu.type if parsed.gpu else None
        parsed.gpu = GpuRequest(count=count, type=gpu_type, resource=explicit)
    else:  # Kale 2.3 accepts any such limit and drops it; cellpipe says so
        parsed.warnings.append(
            f"tag {tag!r} is not honoured: cellpipe can limit cpu, memory and GPUs (a resource "
            f"ending in /gpu), not {resource!r} (Kale 2.3 drops it too)"
        )


def _apply_cache(parsed: CellTags, tag: str, value: str) -> None:
    if value in ("off", "disabled", "false"):
        parsed.cache = False
    elif value in ("on", "enabled", "true"):
        parsed.cache = True
    else:
        parsed.errors.append(f"tag {tag!r}: write cache:off or cache:on")


def _apply_model(parsed: CellTags, tag: str, name: str) -> None:
    """`model:NAME`: the step's value NAME is the pipeline's model (issue 19: kept as a KFP
    Model artifact in the format a serving runtime reads)."""
    if not name.isidentifier():
        parsed.errors.append(
            f"tag {tag!r}: write model:NAME with NAME the variable holding the model (model:clf)"
        )
    elif name not in parsed.models:
        parsed.models.append(name)


def _apply_env(parsed: CellTags, tag: str, value: str) -> None:
    name, sep, env_value = value.partition("=")
    if not sep or not _ENV_NAME.fullmatch(name):
        parsed.errors.append(f"tag {tag!r}: write env:NAME=VALUE with NAME a valid variable name")
    else:
        parsed.env[name] = env_value


def _apply_secret(parsed: CellTags, tag: str, value: str) -> None:
    parts = value.split(":")
    if len(parts) != 3 or not all(parts):
        parsed.errors.append(f"tag {tag!r}: write secret:SECRET:KEY:ENV")
        return
    secret, key, env = parts
    if not _DNS_SUBDOMAIN.fullmatch(secret) or not _ENV_NAME.fullmatch(env):
        parsed.errors.append(
            f"tag {tag!r}: the secret must be a Kubernetes name (lowercase, digits, '-', '.') "
            "and ENV a valid variable name"
        )
        return
    parsed.secrets.append(SecretEnv(secret=secret, key=key, env=env))


def _apply_volume(parsed: CellTags, tag: str, value: str) -> None:
    pvc, sep, mount_path = value.partition(":")
    if not sep or not _DNS_SUBDOMAIN.fullmatch(pvc) or not mount_path.startswith("/"):
        parsed.errors.append(
            f"tag {tag!r}: write volume:PVC:MOUNT_PATH with an absolute path (volume:data:/data)"
        )
        return
    parsed.volumes.append(VolumeMount(pvc=pvc, mount_path=mount_path))


def _apply_metadata(parsed: CellTags, tag: str, key: str, value: str) -> None:
    # Keys may hold a prefix with '/', values (label) are restricted; annotations take any text.
    name, sep, meta_value = value.partition(":")
    prefix, _, base = name.rpartition("/")
    key_ok = bool(_LABEL_NAME.fullmatch(base)) and (
        not prefix or bool(_DNS_SUBDOMAIN.fullmatch(prefix))
    )
    if not sep or not key_ok:
        parsed.errors.append(f"tag {tag!r}: write {key}:KEY:VALUE with a Kubernetes key")
        return
    if key == "label":
        if not _LABEL_VALUE.fullmatch(meta_value):
            parsed.errors.append(f"tag {tag!r}: {meta_value!r} is not a valid label value")
            return
        parsed.labels[name] = meta_value
    else:
        parsed.annotations[name] = meta_value


# --- the %%step first line -----------------------------------------------------------------


@dataclass
class StepLine:
    """A parsed `%%step NAME [--after A [B ...]] [--gpu N[:TYPE]] ...` line, as tags."""

    tags: list[str]


class StepLineError(ValueError):
    """The `%%step` line cannot be read; the message says what to write instead."""


STEP_LINE_USAGE = (
    "%%step NAME [--after A [B ...]] [--gpu N[:TYPE]] [--cpu Q] [--memory Q] [--image REF]"
    " [--model NAME]"
)
_STEP_OPTIONS = {
    "--after": "after",
    "--gpu": "gpu",
    "--cpu": "cpu",
    "--memory": "memory",
    "--model": "model",
}


def parse_step_line(line: str) -> StepLine:
    """Turn a `%%step` line into the tags it stands for.

    The magic (cellpipe.magics) and the converter share this parser, so the cell that runs in
    the kernel and the step the converter sees cannot disagree.
    """
    rest = line.strip()[len(STEP_MAGIC) :]
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise StepLineError(
            f"cannot read the %%step line ({exc}); usage: {STEP_LINE_USAGE}"
        ) from exc
    if not words or words[0].startswith("--"):
        raise StepLineError(f"the %%step line names no step; usage: {STEP_LINE_USAGE}")
    tags = [f"step:{words[0]}"]
    option: str | None = None
    taken = 0
    for word in words[1:]:
        if word.startswith("--"):
            if option is not None and taken == 0:
                raise StepLineError(f"{option} needs a value; usage: {STEP_LINE_USAGE}")
            option, taken = _step_option(word), 0
            continue
        if option is None:
            raise StepLineError(
                f"unexpected {word!r} after the step name (quote a name with spaces); "
                f"usage: {STEP_LINE_USAGE}"
            )
        if taken and option != "--after":
            raise StepLineError(f"{option} takes one value; usage: {STEP_LINE_USAGE}")
        key = "image" if option == "--image" else _STEP_OPTIONS[option]
        tags.append(f"{key}:{word}")
        taken += 1
    if option is not None and taken == 0:
        raise StepLineError(f"{option} needs a value; usage: {STEP_LINE_USAGE}")
    return StepLine(tags=tags)


def _step_option(word: str) -> str:
    if word == "--image" or word in _STEP_OPTIONS:
        return word
    raise StepLineError(f"unknown option {word!r}; usage: {STEP_LINE_USAGE}")


def split_step_line(source: str) -> tuple[str | None, str]:
    """Split a cell into its `%%step` first line (if any) and the code below it. The code keeps
    its line numbers (the `%%step` line becomes an empty line), so tracebacks match the cell."""
    stripped = source.lstrip("\n")
    first, _newline, rest = stripped.partition("\n")
    if first.startswith(STEP_MAGIC) and (len(first) == len(STEP_MAGIC) or first[6].isspace()):
        return first, "\n" * (len(source) - len(stripped) + 1) + rest
    return None, source
