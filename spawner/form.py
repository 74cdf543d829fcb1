"""The spawn form: plain HTML fields that JupyterHub's own spawn.html wraps in its <form>.

Works without JavaScript: what is free of each GPU type is in its label, every bound is in the
markup (option lists, `min`/`max`, disabled choices saying why) and the server checks
everything again (choices.check_choices), so a browser without scripts, a hub whose
Content-Security-Policy forbids inline scripts, or a hand-made request all meet the same rules.
One small script makes the count follow the chosen type. Text from configuration and from
users is escaped, and reaches the script only as data- attributes.
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
    other_servers,
    plural,
    uses,
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
    """The GPU types as radio buttons, each with what is free of it (visible without
    JavaScript), then the count. The count's bounds are those of the chosen type; the script
    below keeps them so when another type is picked, and makes a count of 0 a 1."""
    if not offer.gpus:
        return '<input type="hidden" name="gpus" value="0">'
    choosable = [g for g in offer.gpus if offer.most_gpus(g) != 0]
    chosen = offer.gpu(str(selected.get("gpu_type") or ""))
    current = chosen if chosen in choosable else None
    radios = [_gpu_radio(0, "", "No GPU", None, current is None, None, _NO_GPU_BOUND)]
    for number, gpu in enumerate(offer.gpus, start=1):
        most = offer.most_gpus(gpu)
        radios.append(
            _gpu_radio(
                number,
                gpu.name,
                gpu_label(gpu, most),
                most,
                gpu is current,
                offer.why_unavailable(gpu),
                _count_bound(offer, gpu),
            )
        )
    note = f'<div class="form-text">{escape(offer.gpu_note)}</div>' if offer.gpu_note else ""
    return (
        '<fieldset class="mb-3 cellpipe-gpu-types" id="cellpipe-gpu-type">'
        '<legend class="form-label fs-6">GPU type</legend>'
        f"{''.join(radios)}{note}</fieldset>"
        f"{_gpu_count(offer, current, selected)}{_FOLLOW_TYPE_SCRIPT}"
    )


_NO_GPU_BOUND = "Choose a GPU type above to ask for GPUs."


def _count_bound(offer: Offer, gpu: GpuOffer) -> str:
    """What the count may be for this type, and what bounds it."""
    most = offer.most_gpus(gpu)
    if most is None:
        return f"{gpu.display_name}: 1 or more."
    if most == 0:
        return f"{gpu.display_name}: none can be had now."
    if most == offer.gpus_left:
        why = "what your limit leaves you"
    elif most == gpu.max_per_server:
        why = "free on one machine" if (gpu.free or 0) > most else "free now"
    else:
        why = "the most one server can get"
    return f"{gpu.display_name}: 1 to {most} ({why})."


def _gpu_radio(
    number: int,
    value: str,
    label: str,
    most: int | None,
    checked: bool,
    unavailable: str | None,
    bound: str,
) -> str:
    """One type: the radio (its bounds in data- attributes, read by the script as data) and
    its label; a greyed one says why it cannot be chosen."""
    ident = f"cellpipe-gpu-type-{number}"
    flags = (" checked" if checked else "") + (" disabled" if unavailable else "")
    most_attr = f' data-most="{most}"' if most is not None else ""
    why = (
        f'<div class="form-text cellpipe-unavailable">Unavailable: {escape(unavailable)}.</div>'
        if unavailable
        else ""
    )
    return (
        '<div class="form-check">'
        f'<input class="form-check-input" type="radio" name="gpu_type" id="{ident}" '
        f'value="{_attr(value)}"{most_attr} data-bound="{_attr(bound)}"{flags}>'
        f'<label class="form-check-label" for="{ident}">{escape(label)}</label>{why}</div>'
    )


def _gpu_count(offer: Offer, current: GpuOffer | None, selected: Mapping[str, Any]) -> str:
    """The count: with a type chosen at least 1 and within that type's bound. The markup's
    own bounds are every type's loosest (0 to the best type's most), so that a browser
    without scripts can still switch types; the script narrows them to the chosen type."""
    try:
        count = max(0, int(str(selected.get("gpus") or 0)))
    except ValueError:
        count = 0
    if current is None:
        count, bound = 0, _NO_GPU_BOUND
    else:
        most = offer.most_gpus(current)
        count = min(max(count, 1), most) if most is not None else max(count, 1)
        bound = _count_bound(offer, current)
    loosest = offer.most_gpus_any
    maximum = f' max="{loosest}"' if loosest is not None else ""
    return (
        '<div class="mb-3"><label class="form-label" for="cellpipe-gpus">GPUs</label>'
        f'<input class="form-control" type="number" id="cellpipe-gpus" name="gpus" min="0"'
        f'{maximum} step="1" value="{count}" aria-describedby="cellpipe-gpus-bound">'
        f'<div class="form-text" id="cellpipe-gpus-bound">{escape(bound)}</div></div>'
    )


# Follows the chosen type: its bounds on the count (data-most: free and the user's limit),
# a count of 0 made 1, No GPU made 0. Reads only data- attributes and writes textContent, so
# no text from configuration or users is ever run; without scripts the server's checks and
# the bounds above still hold.
_FOLLOW_TYPE_SCRIPT = """<script>
(function () {
  var form = document.currentScript.parentElement;
  var count = form.querySelector('#cellpipe-gpus');
  var bound = form.querySelector('#cellpipe-gpus-bound');
  function follow(radio) {
    var most = radio.getAttribute('data-most');
    var wanted = parseInt(count.value, 10) || 0;
    if (radio.value === '') {
      count.min = 0; count.max = 0; wanted = 0;
    } else {
      count.min = 1;
      if (most === null) { count.removeAttribute('max'); } else { count.max = most; }
      wanted = Math.max(wanted, 1);
      if (most !== null) { wanted = Math.min(wanted, parseInt(most, 10)); }
    }
    count.value = String(wanted);
    bound.textContent = radio.getAttribute('data-bound');
  }
  form.querySelectorAll('input[name="gpu_type"]').forEach(function (radio) {
    radio.addEventListener('change', function () { if (radio.checked) { follow(radio); } });
    if (radio.checked) { follow(radio); }
  });
})();
</script>"""


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
        whose = other_servers(usage.servers)
        text += f" {whose[0].upper()}{whose[1:]} {uses(usage.servers)} {', '.join(used)}."
    return f'<p class="form-text cellpipe-limits">{escape(text)}</p>'
