"""The spawn form: plain HTML fields that JupyterHub's own spawn.html wraps in its <form>.

No JavaScript: every bound is in the markup (option lists, `min`/`max`) and the server checks
everything again (choices.check_choices), so a browser without scripts, an old browser or a
hand-made request all meet the same rules. Text from configuration and from users is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from .choices import (
    CUSTOM_IMAGE,
    GpuOffer,
    Offer,
    cpu_cores,
    describe_bytes,
    describe_cores,
    memory_bytes,
    plural,
)


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _option(value: str, label: str, selected: bool, disabled: bool = False) -> str:
    flags = (" selected" if selected else "") + (" disabled" if disabled else "")
    return f'<option value="{_attr(value)}"{flags}>{escape(label)}</option>'


def gpu_label(gpu: GpuOffer, most: int | None) -> str:
    """`A100 80 GB (nvidia.com/gpu): 3 of 4 free` — what people read in the type list."""
    if gpu.free is None:
        availability = "availability unknown"
        if gpu.largest is not None:  # what bounds the count then, said
            availability += f", at most {gpu.largest}" + (
                " per server"
                if gpu.largest_configured
                else f" (the largest machine has {gpu.largest})"
            )
    elif gpu.total is not None:
        availability = f"{gpu.free} of {gpu.total} free"
    else:
        availability = f"{gpu.free} free"
    if gpu.max_per_server is not None and gpu.free is not None and gpu.max_per_server < gpu.free:
        availability += f", at most {gpu.max_per_server} on one machine"
    if most == 0 and gpu.free:
        availability += ", over your limit"
    return f"{gpu.display_name}: {availability}"


def render_form(offer: Offer, selected: Mapping[str, Any]) -> str:
    """The form's fields, preselected with `selected` (the last or the refused choices)."""
    parts = ['<div class="cellpipe-spawn-form">']
    parts.append(_image_field(offer, selected))
    limits, usage = offer.limits, offer.usage
    if offer.cpu_choices:
        over = frozenset(
            c
            for c in offer.cpu_choices
            if limits.cpu is not None and usage.cpu + cpu_cores(c) > limits.cpu + 1e-9
        )
        parts.append(
            _select(
                "cpu",
                "CPU",
                [(c, describe_cores(cpu_cores(c))) for c in offer.cpu_choices],
                str(selected.get("cpu") or ""),
                over,
            )
        )
    if offer.memory_choices:
        over = frozenset(
            m
            for m in offer.memory_choices
            if limits.memory is not None and usage.memory + memory_bytes(m) > limits.memory
        )
        parts.append(
            _select(
                "memory",
                "Memory",
                [(m, describe_bytes(memory_bytes(m))) for m in offer.memory_choices],
                str(selected.get("memory") or ""),
                over,
            )
        )
    parts.append(_gpu_fields(offer, selected))
    parts.append(_limits_note(offer))
    parts.append("</div>")
    return "\n".join(parts)


def _select(
    name: str,
    label: str,
    options: list[tuple[str, str]],
    chosen: str,
    disabled: frozenset[str] = frozenset(),
) -> str:
    values = [value for value, _ in options]
    allowed = [value for value in values if value not in disabled] or values
    current = chosen if chosen in allowed else (allowed[0] if allowed else "")
    rendered = "".join(_option(v, text, v == current, v in disabled) for v, text in options)
    return (
        f'<div class="mb-3"><label class="form-label" for="cellpipe-{name}">{label}</label>'
        f'<select class="form-select" id="cellpipe-{name}" name="{name}">{rendered}</select></div>'
    )


def _image_field(offer: Offer, selected: Mapping[str, Any]) -> str:
    chosen = str(selected.get("image") or "")
    offered = [c.image for c in offer.images]
    custom = bool(offer.allow_custom_image and chosen and chosen not in offered)
    options = [(c.image, c.display_name) for c in offer.images]
    current = CUSTOM_IMAGE if custom else (chosen if chosen in offered else "")
    if offer.allow_custom_image:
        options.append((CUSTOM_IMAGE, "Another image (give it below)"))
    html = _select("image", "Image", options, current)
    if offer.allow_custom_image:
        value = _attr(chosen) if custom else ""
        html += (
            '<div class="mb-3"><label class="form-label" for="cellpipe-custom-image">'
            "Another image</label>"
            '<input class="form-control" type="text" id="cellpipe-custom-image" '
            f'name="custom_image" value="{value}" maxlength="255" '
            'placeholder="registry.example.com/team/notebook:tag" spellcheck="false">'
            '<div class="form-text">Used when the image above is “Another image”.</div></div>'
        )
    return html


def _gpu_fields(offer: Offer, selected: Mapping[str, Any]) -> str:
    if not offer.gpus:
        return '<input type="hidden" name="gpus" value="0">'
    chosen_type = str(selected.get("gpu_type") or "")
    options = [("", "No GPU")]
    disabled: set[str] = set()
    for gpu in offer.gpus:
        most = offer.most_gpus(gpu)
        options.append((gpu.name, gpu_label(gpu, most)))
        if most == 0:
            disabled.add(gpu.name)
    names = [gpu.name for gpu in offer.gpus]
    current = chosen_type if chosen_type in names and chosen_type not in disabled else ""
    rendered = "".join(
        _option(value, text, value == current, value in disabled) for value, text in options
    )
    most_any = offer.most_gpus_any
    try:
        count = max(0, int(str(selected.get("gpus") or 0))) if current else 0
    except ValueError:
        count = 0
    maximum = f' max="{most_any}"' if most_any is not None else ""
    note = f'<div class="form-text">{escape(offer.gpu_note)}</div>' if offer.gpu_note else ""
    return (
        '<div class="mb-3"><label class="form-label" for="cellpipe-gpu-type">GPU type</label>'
        f'<select class="form-select" id="cellpipe-gpu-type" name="gpu_type">{rendered}</select>'
        f"{note}</div>"
        '<div class="mb-3"><label class="form-label" for="cellpipe-gpus">GPUs</label>'
        f'<input class="form-control" type="number" id="cellpipe-gpus" name="gpus" min="0"'
        f'{maximum} step="1" value="{count}"></div>'
    )


def _limits_note(offer: Offer) -> str:
    limits, usage = offer.limits, offer.usage
    said = []
    if limits.gpus is not None:
        said.append(plural(limits.gpus, "GPU"))
    if limits.cpu is not None:
        said.append(describe_cores(limits.cpu))
    if limits.memory is not None:
        said.append(f"{describe_bytes(limits.memory)} of memory")
    if not said:
        return ""
    text = f"Your limit across all your servers: {', '.join(said)}."
    if usage.servers:
        used = [plural(usage.gpus, "GPU"), describe_cores(usage.cpu)]
        if usage.memory:
            used.append(describe_bytes(usage.memory))
        text += f" Your other {plural(usage.servers, 'running server')} use {', '.join(used)}."
    return f'<p class="form-text cellpipe-limits">{escape(text)}</p>'
