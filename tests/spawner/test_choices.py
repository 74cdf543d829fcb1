"""The server's check of what a user chose: form fields and REST user_options alike."""

from __future__ import annotations

from typing import Any

import pytest

from cellpipe.spawner.choices import (
    CUSTOM_IMAGE,
    Choices,
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
from cellpipe.spawner.choices import (
    ConfigError as SpawnerConfigError,
)

A100 = GpuOffer("NVIDIA-A100-SXM4-80GB", "A100 80 GB", "nvidia.com/gpu", 6, 5, 3)
MIG = GpuOffer("1g.10gb", "A100 slice", "nvidia.com/mig-1g.10gb", 7, 7, 7)
T4 = GpuOffer("Tesla-T4", "T4 16 GB", "nvidia.com/gpu", 1, 0, 0)
IMAGES = (
    ImageChoice("registry.example.com/team/notebook:1", "Notebook"),
    ImageChoice("registry.example.com/team/torch:2", "PyTorch"),
)


def offer(**changes: Any) -> Offer:
    values: dict[str, Any] = {
        "images": IMAGES,
        "allow_custom_image": False,
        "cpu_choices": ("1", "2", "4"),
        "memory_choices": ("2Gi", "8Gi"),
        "gpus": (A100, MIG, T4),
        "limits": Limits(gpus=4, cpu=8, memory=32 * 2**30),
        "usage": Usage(),
    }
    values.update(changes)
    return Offer(**values)


def refused(options: Any, **changes: Any) -> str:
    with pytest.raises(FormError) as caught:
        check_choices(options, offer(**changes))
    return str(caught.value)


def test_nothing_chosen_takes_the_first_of_everything_and_no_gpu() -> None:
    assert check_choices({}, offer()) == Choices(
        "registry.example.com/team/notebook:1", "1", "2Gi", None, 0
    )


def test_a_full_choice_keeps_the_resource_of_its_type() -> None:
    chosen = check_choices(
        {
            "image": "registry.example.com/team/torch:2",
            "cpu": "4",
            "memory": "8Gi",
            "gpu_type": "1g.10gb",
            "gpus": "2",
        },
        offer(),
    )
    assert chosen == Choices(
        "registry.example.com/team/torch:2", "4", "8Gi", "1g.10gb", 2, "nvidia.com/mig-1g.10gb"
    )
    assert chosen.to_user_options() == {
        "image": "registry.example.com/team/torch:2",
        "cpu": "4",
        "memory": "8Gi",
        "gpu_type": "1g.10gb",
        "gpus": 2,
    }
    assert (chosen.cpu_cores, chosen.memory_bytes) == (4.0, 8 * 2**30)


def test_a_gpu_type_with_the_count_left_at_0_is_refused_never_no_gpu_silently() -> None:
    message = (
        "You chose A100 80 GB with 0 GPUs, which would start a server without a GPU. "
        "Ask for at least 1 A100 80 GB, or choose No GPU."
    )
    assert refused({"gpu_type": "NVIDIA-A100-SXM4-80GB", "gpus": 0}) == message
    # as the form sends it (the count's field left empty or at 0) and as the REST API does
    form = options_from_form({"gpu_type": ["NVIDIA-A100-SXM4-80GB"], "gpus": ["0"]})
    assert refused(form) == message
    assert refused({"gpu_type": "NVIDIA-A100-SXM4-80GB"}) == message
    assert refused({"gpu_type": "H100", "gpus": "0"}).startswith("You chose 'H100' with 0 GPUs")
    # the form's No GPU is a choice: no GPU, whatever count a browser without scripts left
    for count in ("0", "2"):
        form = options_from_form({"gpu_type": [""], "gpus": [count]})
        chosen = check_choices(form, offer())
        assert (chosen.gpu_type, chosen.gpus) == (None, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"image": "evil.example/x:1"},
            "Image: 'evil.example/x:1' is not one of the offered images: "
            "registry.example.com/team/notebook:1, registry.example.com/team/torch:2",
        ),
        ({"cpu": "3"}, "CPU: '3' is not one of 1, 2, 4"),
        ({"cpu": 2}, "CPU: 2 is not text"),
        ({"memory": "1Ti"}, "Memory: '1Ti' is not one of 2Gi, 8Gi"),
        ({"gpus": "two"}, "GPUs: 'two' is not a whole number"),
        ({"gpus": "-1"}, "GPUs: -1 is below 0"),
        ({"gpus": -2}, "GPUs: -2 is below 0"),
        ({"gpus": True}, "GPUs: True is not a whole number"),
        ({"gpus": 1.5}, "GPUs: '1.5' is not a whole number"),
        ({"gpus": "1e9"}, "GPUs: '1e9' is not a whole number"),
        ({"gpus": "99999999"}, "GPUs: '99999999' is not a whole number"),
        (
            {"gpus": 1},
            "You asked for 1 GPU; choose a GPU type: A100 80 GB, A100 slice, T4 16 GB",
        ),
        (
            {"gpus": 1, "gpu_type": "H100"},
            "GPU type 'H100' is not offered; the types are: NVIDIA-A100-SXM4-80GB, 1g.10gb, "
            "Tesla-T4",
        ),
        (
            {"gpus": 5, "gpu_type": "1g.10gb"},
            "You asked for 5 GPUs; your limit is 4 GPUs at a time, so you may ask for at most 4.",
        ),
        (
            {"gpus": 4, "gpu_type": "NVIDIA-A100-SXM4-80GB"},
            "You asked for 4 × A100 80 GB; only 3 are free right now on any one machine. "
            "Ask for fewer, choose another type, or try again later.",
        ),
        (
            {"gpus": 1, "gpu_type": "Tesla-T4"},
            "You asked for 1 × T4 16 GB; none is free right now. Ask for fewer, choose "
            "another type, or try again later.",
        ),
        ({"image": "x" * 400}, "Image: the value is too long"),
        ({"gpu_type": ["a"], "gpus": 1}, "GPU type: ['a'] is not text"),
    ],
)
def test_what_is_refused_and_the_message(options: dict[str, Any], message: str) -> None:
    assert refused(options) == message


def test_not_a_mapping_is_refused() -> None:
    assert refused(["gpus", 1]) == "the server options must be a JSON object"


def test_limits_count_the_users_other_running_servers() -> None:
    busy = Usage(gpus=3, cpu=6, memory=30 * 2**30, servers=2)
    assert refused({"gpus": 2, "gpu_type": "1g.10gb"}, usage=busy) == (
        "You asked for 2 GPUs; your limit is 4 GPUs at a time and your 2 other running "
        "servers already use 3 GPUs, so you may ask for at most 1."
    )
    assert refused({"cpu": "4"}, usage=busy) == (
        "You asked for 4 CPUs; your limit is 8 CPUs at a time and your 2 other running "
        "servers already use 6 CPUs. Choose less, or stop another server first."
    )
    assert refused({"cpu": "1", "memory": "8Gi"}, usage=busy) == (
        "You asked for 8 GiB of memory; your limit is 32 GiB at a time and your 2 other "
        "running servers already use 30 GiB. Choose less, or stop another server first."
    )
    one = Usage(gpus=4, cpu=1, memory=0, servers=1)
    assert refused({"gpus": 1, "gpu_type": "1g.10gb"}, usage=one) == (
        "You asked for 1 GPU; your limit is 4 GPUs at a time and your other running server "
        "already uses 4 GPUs, so none is left to you: choose No GPU, or stop another server "
        "first."
    )
    assert check_choices({"cpu": "2", "gpus": 1, "gpu_type": "1g.10gb"}, offer(usage=busy))


def test_no_limit_and_unknown_counts_let_the_cluster_decide() -> None:
    unknown = GpuOffer("NVIDIA-A100-SXM4-80GB", "A100", "nvidia.com/gpu")
    chosen = check_choices(
        {"gpus": 16, "gpu_type": unknown.name}, offer(gpus=(unknown,), limits=Limits())
    )
    assert chosen.gpus == 16


def test_no_gpus_offered_refuses_any_gpu() -> None:
    assert refused({"gpus": 1}, gpus=()) == ("You asked for 1 GPU; this hub has no GPUs to offer.")


def test_one_type_offered_needs_no_type() -> None:
    assert check_choices({"gpus": 2}, offer(gpus=(MIG,))).gpu_type == "1g.10gb"


def test_custom_images_when_allowed_must_be_image_references() -> None:
    allowed = {"allow_custom_image": True}
    chosen = check_choices({"image": "ghcr.io/me/notebook:v2"}, offer(**allowed))
    assert chosen.image == "ghcr.io/me/notebook:v2"
    digest = "sha256:" + "a" * 64
    assert check_choices({"image": f"me/nb@{digest}"}, offer(**allowed)).image.endswith(digest)
    for bad in ("Not An Image", "x;rm -rf /", "-flag", "a//b", "UPPER/case:1", "x:"):
        assert refused({"image": bad}, **allowed) == (
            f"Image: {bad!r} is not an image reference; write it as "
            "registry.example.com/team/notebook:tag"
        )


def test_no_cpu_or_memory_choices_means_no_such_field() -> None:
    chosen = check_choices({}, offer(cpu_choices=(), memory_choices=()))
    assert (chosen.cpu, chosen.memory) == (None, None)
    assert refused({"cpu": "2"}, cpu_choices=()) == "CPU: this hub offers no choice of cpu"


def test_no_image_configured_is_said() -> None:
    assert refused({}, images=()) == "Image: no image is configured; ask the hub's administrator"


def test_form_fields_become_user_options() -> None:
    form = {
        "image": ["registry.example.com/team/torch:2"],
        "cpu": ["2"],
        "memory": [" 8Gi "],
        "gpu_type": ["Tesla-T4"],
        "gpus": ["1"],
        "_xsrf": ["token"],
        "evil": ["1"],
    }
    assert options_from_form(form) == {
        "image": "registry.example.com/team/torch:2",
        "cpu": "2",
        "memory": "8Gi",
        "gpu_type": "Tesla-T4",
        "gpus": "1",
    }
    custom = {"image": [CUSTOM_IMAGE], "custom_image": ["ghcr.io/me/nb:1"]}
    assert options_from_form(custom) == {"image": "ghcr.io/me/nb:1", "custom_image": True}


@pytest.mark.parametrize(
    ("text", "cores"), [("2", 2.0), ("0.5", 0.5), ("500m", 0.5), ("1.5", 1.5), (".25", 0.25)]
)
def test_cpu_quantities(text: str, cores: float) -> None:
    assert cpu_cores(text) == cores


@pytest.mark.parametrize(
    ("text", "amount"),
    [("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("8G", 8 * 10**9), ("1.5Gi", 3 * 2**29)],
)
def test_memory_quantities(text: str, amount: int) -> None:
    assert memory_bytes(text) == amount


@pytest.mark.parametrize("bad", ["", "two", "2x", "-1", "0", "1e3", "nan"])
def test_bad_quantities(bad: str) -> None:
    with pytest.raises(ValueError):
        cpu_cores(bad)
    with pytest.raises(ValueError):
        memory_bytes(bad if bad else "Gi")


def test_group_limits_give_the_most_generous_per_resource() -> None:
    default = Limits(gpus=1, cpu=4, memory=None)
    groups = {
        "gpu-team": Limits.from_config({"gpus": 4, "cpu": 2}, "g"),
        "big-memory": Limits.from_config({"memory": "1Ti"}, "g"),
        "no-gpu-limit": Limits.from_config({"gpus": None}, "g"),
    }
    assert user_limits(default, groups, []) == default
    assert user_limits(default, groups, ["gpu-team"]) == Limits(gpus=4, cpu=4, memory=None)
    assert user_limits(default, groups, ["gpu-team", "big-memory", "other"]) == Limits(
        gpus=4, cpu=4, memory=None
    )
    assert user_limits(Limits(gpus=1, cpu=1, memory=2**30), groups, ["big-memory"]) == Limits(
        gpus=1, cpu=1, memory=2**40
    )
    assert user_limits(default, groups, ["no-gpu-limit"]) == Limits(gpus=None, cpu=4)


def test_limits_from_configuration_are_checked() -> None:
    assert Limits.from_config({"gpus": 2, "cpu": "8", "memory": "32Gi"}, "x") == Limits(
        2, 8.0, 32 * 2**30
    )
    assert Limits.from_config({"gpus": 1}, "x").given == {"gpus"}
    with pytest.raises(SpawnerConfigError, match="unknown keys gpu"):
        Limits.from_config({"gpu": 2}, "default_limits")
    with pytest.raises(SpawnerConfigError, match="gpus must be a whole number"):
        Limits.from_config({"gpus": "2"}, "default_limits")
    with pytest.raises(SpawnerConfigError, match="not a memory quantity"):
        Limits.from_config({"memory": "lots"}, "default_limits")


def test_running_servers_usage_is_read_leniently() -> None:
    assert lenient_usage({"gpus": 2, "gpu_type": "x", "cpu": "2", "memory": "4Gi"}) == Usage(
        2, 2.0, 4 * 2**30, 1
    )
    assert lenient_usage({"gpus": "many", "cpu": "lots", "memory": []}) == Usage(0, 0.0, 0, 1)


def test_unknown_free_counts_and_no_limit_are_bounded_by_the_largest_machine() -> None:
    # Given free counts the hub cannot know and no limit, but the largest node's size
    by_node = GpuOffer("NVIDIA-A100-SXM4-80GB", "A100", "nvidia.com/gpu", largest=8)
    assert refused({"gpus": 16, "gpu_type": by_node.name}, gpus=(by_node,), limits=Limits()) == (
        "You asked for 16 × A100; the largest machine has 8, so one server can get at most 8. "
        "Ask for fewer."
    )
    assert check_choices(
        {"gpus": 8, "gpu_type": by_node.name}, offer(gpus=(by_node,), limits=Limits())
    ).gpus == (8)
    # and where not even the nodes can be read: the bound configured for the spawner
    configured = GpuOffer(
        "NVIDIA-A100-SXM4-80GB", "A100", "nvidia.com/gpu", largest=4, largest_configured=True
    )
    assert refused(
        {"gpus": 5, "gpu_type": configured.name}, gpus=(configured,), limits=Limits()
    ) == (
        "You asked for 5 × A100; one server may ask for at most 4 (the hub cannot see how many "
        "one machine has). Ask for fewer."
    )
