"""The spawn form's HTML: fields, bounds, what is free, remembered choices, escaping."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from cellpipe.spawner.choices import CUSTOM_IMAGE, GpuOffer, ImageChoice, Limits, Offer, Usage
from cellpipe.spawner.form import render_form

# the form's one script, as the page gets it (the same text whatever is configured)
FOLLOW_SCRIPT = (
    render_form(Offer((), False, (), (), (GpuOffer("x", "x", "nvidia.com/gpu"),)), {})
    .split("<script>")[1]
    .split("</script>")[0]
)

A100 = GpuOffer("NVIDIA-A100-SXM4-80GB", "A100 80 GB", "nvidia.com/gpu", 6, 5, 3)
T4 = GpuOffer("Tesla-T4", "T4 16 GB", "nvidia.com/gpu", 1, 0, 0)
UNKNOWN = GpuOffer("NVIDIA-H100", "H100", "nvidia.com/gpu")
BIG = GpuOffer("NVIDIA-H200", "H200", "nvidia.com/gpu", 8, 8, 8)


class Fields(HTMLParser):
    """The form's controls as dicts: selects and radio groups with their options (a radio's
    text is its label's, `why` the reason a greyed one gives), inputs, scripts and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, Any]] = {}
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._select: str | None = None
        self._option: dict[str, Any] | None = None
        self._radios: dict[str, dict[str, Any]] = {}
        self._why: dict[str, Any] | None = None
        self._script = False
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "select":
            self._select = str(a["name"])
            self.controls[self._select] = {"tag": "select", "options": []}
        elif tag == "option" and self._select:
            self._option = {
                "value": a["value"],
                "selected": "selected" in a,
                "disabled": "disabled" in a,
                "text": "",
            }
            self.controls[self._select]["options"].append(self._option)
        elif tag == "input" and a.get("type") == "radio":
            radio = {
                "value": a["value"],
                "selected": "checked" in a,
                "disabled": "disabled" in a,
                "text": "",
                "why": None,
                "most": a.get("data-most"),
                "bound": a.get("data-bound"),
            }
            group = self.controls.setdefault(str(a["name"]), {"tag": "radio", "options": []})
            group["options"].append(radio)
            self._radios[str(a["id"])] = radio
        elif tag == "input":
            self.controls[str(a["name"])] = {"tag": "input", **a}
        elif tag == "label" and a.get("for") in self._radios:
            self._option = self._radios[str(a["for"])]
        elif tag == "div" and "cellpipe-unavailable" in (a.get("class") or "") and self._radios:
            self._why = list(self._radios.values())[-1]
            self._why["why"] = ""
        elif tag == "script":
            self._script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        if tag in ("option", "label"):
            self._option = None
        if tag == "div":
            self._why = None
        if tag == "script":
            self._script = False

    def handle_data(self, data: str) -> None:
        if self._script:
            self.scripts[-1] += data
        elif self._option is not None:
            self._option["text"] += data
        elif self._why is not None:
            self._why["why"] += data
        elif data.strip():
            self.text.append(data.strip())


def parse(html: str) -> Fields:
    fields = Fields()
    fields.feed(html)
    return fields


def offer(**changes: Any) -> Offer:
    values: dict[str, Any] = {
        "images": (ImageChoice("reg/notebook:1", "Notebook"), ImageChoice("reg/torch:2", "Torch")),
        "allow_custom_image": False,
        "cpu_choices": ("1", "2", "4"),
        "memory_choices": ("2Gi", "8Gi"),
        "gpus": (A100, T4),
        "limits": Limits(gpus=4, cpu=4),
        "usage": Usage(),
    }
    values.update(changes)
    return Offer(**values)


def test_the_fields_with_what_is_free_and_the_bounds() -> None:
    fields = parse(render_form(offer(), {}))
    assert fields.controls["image"]["options"] == [
        {"value": "reg/notebook:1", "selected": True, "disabled": False, "text": "Notebook"},
        {"value": "reg/torch:2", "selected": False, "disabled": False, "text": "Torch"},
    ]
    assert [o["text"] for o in fields.controls["cpu"]["options"]] == ["1 CPU", "2 CPUs", "4 CPUs"]
    assert [o["text"] for o in fields.controls["memory"]["options"]] == ["2 GiB", "8 GiB"]
    # each type with what is free of it, in plain sight (radios: no closed list to open);
    # the greyed one says why; each carries its own bound on the count
    assert fields.controls["gpu_type"] == {
        "tag": "radio",
        "options": [
            {
                "value": "",
                "selected": True,
                "disabled": False,
                "text": "No GPU",
                "why": None,
                "most": None,
                "bound": "Choose a GPU type above to ask for GPUs.",
            },
            {
                "value": "NVIDIA-A100-SXM4-80GB",
                "selected": False,
                "disabled": False,
                "text": "A100 80 GB: 5 of 6 free, at most 3 on one machine",
                "why": None,
                "most": "3",
                "bound": "A100 80 GB: 1 to 3 (free on one machine).",
            },
            {
                "value": "Tesla-T4",
                "selected": False,
                "disabled": True,
                "text": "T4 16 GB: 0 of 1 free",
                "why": "Unavailable: none is free right now; try again later.",
                "most": "0",
                "bound": "T4 16 GB: none can be had now.",
            },
        ],
    }
    # no type chosen: the count is 0, bounded by the best type (a browser without scripts
    # cannot follow the choice; the server checks the type's own bound)
    assert fields.controls["gpus"] == {
        "tag": "input",
        "class": "form-control",
        "type": "number",
        "id": "cellpipe-gpus",
        "name": "gpus",
        "min": "0",
        "max": "3",
        "step": "1",
        "value": "0",
        "aria-describedby": "cellpipe-gpus-bound",
    }
    assert "Choose a GPU type above to ask for GPUs." in fields.text
    assert "Your limit across all your servers: 4 GPUs, 4 CPUs." in fields.text
    # no form element of its own (JupyterHub's spawn.html wraps it); one script, the same
    # whatever is configured or chosen (it reads the data- attributes)
    assert not fields.tags & {"form", "style"}
    assert fields.scripts == [FOLLOW_SCRIPT]


def test_the_last_choices_are_preselected() -> None:
    last = {"image": "reg/torch:2", "cpu": "2", "memory": "8Gi", "gpu_type": A100.name, "gpus": 2}
    fields = parse(render_form(offer(), last))
    selected = {
        name: [o["value"] for o in control["options"] if o["selected"]]
        for name, control in fields.controls.items()
        if control["tag"] == "select"
    }
    assert selected == {
        "image": ["reg/torch:2"],
        "cpu": ["2"],
        "memory": ["8Gi"],
    }
    assert [o["value"] for o in fields.controls["gpu_type"]["options"] if o["selected"]] == [
        A100.name
    ]
    gpus = fields.controls["gpus"]
    assert (gpus["value"], gpus["min"], gpus["max"]) == ("2", "0", "3")
    assert "A100 80 GB: 1 to 3 (free on one machine)." in fields.text


def test_a_type_chosen_with_no_count_comes_back_with_one_and_the_count_within_the_type() -> None:
    # the form re-rendered after the server refused a type with 0 GPUs suggests the fix
    zero = parse(render_form(offer(), {"gpu_type": A100.name, "gpus": "0"}))
    assert zero.controls["gpus"]["value"] == "1"
    # and a count above what the type has comes back at the type's bound
    many = parse(
        render_form(offer(gpus=(A100, BIG), limits=Limits()), {"gpu_type": A100.name, "gpus": 9})
    )
    assert many.controls["gpus"]["value"] == "3"
    # while the markup's own bounds stay every type's loosest: without scripts, another type
    # may still be picked (the script narrows them to the chosen type: see test_hub.py)
    assert (many.controls["gpus"]["min"], many.controls["gpus"]["max"]) == ("0", "8")


def test_a_remembered_type_with_nothing_free_falls_back_to_no_gpu() -> None:
    fields = parse(render_form(offer(), {"gpu_type": T4.name, "gpus": 1}))
    chosen = [o["value"] for o in fields.controls["gpu_type"]["options"] if o["selected"]]
    assert chosen == [""]
    assert (fields.controls["gpus"]["value"], fields.controls["gpus"]["min"]) == ("0", "0")


def test_the_limit_and_other_servers_bound_the_count_and_disable_choices() -> None:
    busy = Usage(gpus=3, cpu=3, memory=0, servers=1)
    fields = parse(render_form(offer(usage=busy), {"cpu": "2"}))
    assert fields.controls["gpus"]["max"] == "1"
    cpu = {o["value"]: o for o in fields.controls["cpu"]["options"]}
    assert (cpu["1"]["disabled"], cpu["2"]["disabled"], cpu["4"]["disabled"]) == (
        False,
        True,
        True,
    )
    assert [v for v, o in cpu.items() if o["selected"]] == ["1"]
    assert (
        "Your limit across all your servers: 4 GPUs, 4 CPUs. Your other running server "
        "uses 3 GPUs, 3 CPUs." in fields.text
    )
    a100 = fields.controls["gpu_type"]["options"][1]
    assert (a100["most"], a100["bound"]) == (
        "1",
        "A100 80 GB: 1 to 1 (what your limit leaves you).",
    )
    spent = parse(render_form(offer(usage=Usage(gpus=4, servers=2)), {"gpu_type": A100.name}))
    assert spent.controls["gpus"]["max"] == "0"
    assert spent.controls["gpus"]["value"] == "0"
    a100 = spent.controls["gpu_type"]["options"][1]
    assert (a100["text"], a100["disabled"], a100["selected"], a100["why"]) == (
        "A100 80 GB: 5 of 6 free, at most 3 on one machine",
        True,
        False,
        "Unavailable: your limit of 4 GPUs is taken by your 2 other running servers.",
    )
    assert (
        "Your limit across all your servers: 4 GPUs, 4 CPUs. Your 2 other running servers "
        "use 4 GPUs, 0 CPUs." in spent.text
    )
    nothing = parse(render_form(offer(limits=Limits(gpus=0)), {}))
    reasons = [o["why"] for o in nothing.controls["gpu_type"]["options"]]
    assert reasons == [
        None,
        "Unavailable: your limit is 0 GPUs.",
        "Unavailable: your limit is 0 GPUs.",
    ]


def test_unknown_counts_and_no_limit() -> None:
    fields = parse(render_form(offer(gpus=(UNKNOWN,), limits=Limits()), {}).replace("\n", ""))
    assert fields.controls["gpu_type"]["options"][1]["text"] == "H100: availability unknown"
    assert fields.controls["gpu_type"]["options"][1]["most"] is None
    assert "max" not in fields.controls["gpus"]
    chosen = parse(
        render_form(offer(gpus=(UNKNOWN,), limits=Limits()), {"gpu_type": "NVIDIA-H100"})
    )
    assert "max" not in chosen.controls["gpus"]
    assert "H100: 1 or more." in chosen.text
    assert not any("Your limit" in t for t in fields.text)


def test_no_gpus_to_offer_sends_zero() -> None:
    fields = parse(render_form(offer(gpus=()), {}))
    assert "gpu_type" not in fields.controls
    assert fields.controls["gpus"] == {
        "tag": "input",
        "type": "hidden",
        "name": "gpus",
        "value": "0",
    }


def test_custom_image_field_when_allowed() -> None:
    fields = parse(render_form(offer(allow_custom_image=True), {"image": "ghcr.io/me/nb:1"}))
    image = fields.controls["image"]["options"]
    assert image[-1]["value"] == CUSTOM_IMAGE and image[-1]["selected"]
    assert fields.controls["custom_image"]["value"] == "ghcr.io/me/nb:1"
    plain = parse(render_form(offer(), {"image": "ghcr.io/me/nb:1"}))
    assert "custom_image" not in plain.controls
    assert plain.controls["image"]["options"][0]["selected"]


def test_text_from_configuration_and_users_is_escaped() -> None:
    hostile = GpuOffer('<script>alert(1)</script>"', "<b>bold</b> & co", "nvidia.com/gpu", 1, 1, 1)
    html = render_form(
        offer(
            gpus=(hostile,),
            images=(ImageChoice('reg/x:1"><script>', "<img src=x onerror=alert(1)>"),),
            allow_custom_image=True,
            gpu_note="<i>note</i>",
        ),
        {"image": '"><script>alert(2)</script>', "gpus": "<b>"},
    )
    assert "<script>alert" not in html and "<img" not in html and "<i>" not in html
    fields = parse(html)
    assert fields.scripts == [FOLLOW_SCRIPT]
    assert fields.controls["gpu_type"]["options"][1]["value"] == '<script>alert(1)</script>"'
    assert fields.controls["gpu_type"]["options"][1]["text"] == "<b>bold</b> & co: 1 of 1 free"
    assert fields.controls["gpu_type"]["options"][1]["bound"] == (
        "<b>bold</b> & co: 1 to 1 (free now)."
    )
    assert fields.controls["custom_image"]["value"] == '"><script>alert(2)</script>'
    assert fields.controls["gpus"]["value"] == "0"


def test_unknown_counts_bounded_by_the_largest_machine_say_so() -> None:
    by_node = GpuOffer("NVIDIA-H100", "H100", "nvidia.com/gpu", largest=8)
    fields = parse(render_form(offer(gpus=(by_node,), limits=Limits()), {}).replace("\n", ""))
    assert fields.controls["gpu_type"]["options"][1]["text"] == (
        "H100: availability unknown, at most 8 (the largest machine has 8)"
    )
    assert fields.controls["gpus"]["max"] == "8"
    configured = GpuOffer(
        "NVIDIA-H100", "H100", "nvidia.com/gpu", largest=4, largest_configured=True
    )
    fields = parse(render_form(offer(gpus=(configured,), limits=Limits()), {}).replace("\n", ""))
    assert fields.controls["gpu_type"]["options"][1]["text"] == (
        "H100: availability unknown, at most 4 per server"
    )
    assert fields.controls["gpus"]["max"] == "4"
