"""The tag grammar: cellpipe's tags, Kale's dialect and the %%step line."""

from __future__ import annotations

import pytest

from cellpipe.converter import build_pipeline
from cellpipe.converter.model import GpuRequest, SecretEnv, VolumeMount
from cellpipe.converter.tags import (
    StepLineError,
    parse_cell_tags,
    parse_step_line,
    split_step_line,
)
from tests.notebooks import notebook


def test_step_and_after_tags_in_both_dialects() -> None:
    ours = parse_cell_tags(["step:Load data!", "after:fetch", "after:clean"])
    kale = parse_cell_tags(["block:Load data!", "prev:fetch", "prev:clean"])
    for parsed in (ours, kale):
        assert parsed.role == "step"
        assert parsed.step_names == ["Load data!"]
        assert parsed.after == ["fetch", "clean"]
        assert parsed.errors == []


@pytest.mark.parametrize(
    ("tag", "role"),
    [
        ("imports", "imports"),
        ("functions", "functions"),
        ("parameters", "parameters"),
        ("pipeline-parameters", "parameters"),
        ("metrics", "metrics"),
        ("pipeline-metrics", "metrics"),
        ("skip", "skip"),
    ],
)
def test_role_tags(tag: str, role: str) -> None:
    assert parse_cell_tags([tag]).role == role


def test_resources_and_task_options() -> None:
    parsed = parse_cell_tags(
        [
            "step:train",
            "gpu:2:NVIDIA-A100-SXM4-80GB",
            "cpu:500m",
            "memory:4Gi",
            "image:ghcr.io/acme/torch:2.3",
            "retries:3",
            "timeout:3600",
            "cache:off",
            "env:MODE=fast=yes",
            "secret:s3-creds:access-key:AWS_ACCESS_KEY_ID",
            "volume:data-pvc:/data",
            "shm:2Gi",
            "label:team:ml",
            "annotation:example.com/owner:Ana María",
        ]
    )
    assert parsed.errors == [] and parsed.warnings == []
    assert parsed.gpu == GpuRequest(count=2, type="NVIDIA-A100-SXM4-80GB")
    assert (parsed.cpu_request, parsed.cpu_limit) == ("500m", "500m")
    assert (parsed.memory_request, parsed.memory_limit) == ("4Gi", "4Gi")
    assert parsed.image == "ghcr.io/acme/torch:2.3"
    assert (parsed.retries, parsed.timeout_seconds, parsed.cache) == (3, 3600, False)
    assert parsed.env == {"MODE": "fast=yes"}
    assert parsed.secrets == [SecretEnv("s3-creds", "access-key", "AWS_ACCESS_KEY_ID")]
    assert parsed.volumes == [VolumeMount("data-pvc", "/data")]
    assert parsed.shm_size == "2Gi"
    assert parsed.labels == {"team": "ml"}
    assert parsed.annotations == {"example.com/owner": "Ana María"}


def test_kale_limits_and_cache() -> None:
    parsed = parse_cell_tags(
        ["block:train", "limit:nvidia.com/gpu:2", "limit:memory:8Gi", "cache:disabled"]
    )
    assert parsed.gpu == GpuRequest(count=2, type=None, resource=None)
    assert (parsed.memory_request, parsed.memory_limit) == (None, "8Gi")
    assert parsed.cache is False
    amd = parse_cell_tags(["limit:amd.com/gpu:1"])
    assert amd.gpu == GpuRequest(count=1, type=None, resource="amd.com/gpu")


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("gpu:0", "at least 1"),
        ("gpu:two", "at least 1"),
        ("cpu:lots", "not a Kubernetes quantity"),
        ("memory:4GB", "not a Kubernetes quantity"),
        ("retries:-1", "not a whole number"),
        ("timeout:0", "at least 1 second"),
        ("cache:maybe", "cache:off or cache:on"),
        ("env:1BAD=x", "env:NAME=VALUE"),
        ("secret:only-two:parts", "secret:SECRET:KEY:ENV"),
        ("volume:data:relative/path", "absolute path"),
        ("label:team:not a value", "not a valid label value"),
    ],
)
def test_bad_tag_values_are_errors_that_say_what_to_write(tag: str, fragment: str) -> None:
    parsed = parse_cell_tags([tag])
    assert len(parsed.errors) == 1
    assert fragment in parsed.errors[0]
    assert repr(tag) in parsed.errors[0] or tag.split(":")[0] in parsed.errors[0]


def test_two_roles_on_one_cell_follow_kale_and_warn() -> None:
    # Kale: a special tag wins over step:, and the first special tag wins.
    assert parse_cell_tags(["step:a", "skip"]).role == "skip"
    both = parse_cell_tags(["imports", "step:a"])
    assert both.role == "imports"
    assert both.errors == []
    assert both.warnings == [
        "the cell is tagged both imports and step; it is treated as imports (as Kale does); "
        "keep one of these tags"
    ]
    assert parse_cell_tags(["functions", "imports"]).role == "functions"


def test_kale_report_and_notebook_tags() -> None:
    assert parse_cell_tags(["step:a", "report:enabled"]).report is True
    assert parse_cell_tags(["step:a", "report:disabled"]).report is False
    assert "report:enabled or report:disabled" in parse_cell_tags(["report:x"]).errors[0]
    (warning,) = parse_cell_tags(["notebook:other"]).warnings
    assert "notebook: steps" in warning and "not supported" in warning


def test_unknown_prefixed_tags_warn_and_plain_words_are_left_to_other_tools() -> None:
    parsed = parse_cell_tags(["stpe:train", "hide-input", "injected-parameters"])
    assert parsed.warnings == [
        "tag 'stpe:train' is not a cellpipe or Kale tag and is ignored; "
        "see the tag grammar in the README"
    ]
    assert parsed.role is None


def test_step_line_means_the_same_as_tags() -> None:
    line = parse_step_line(
        '%%step "Load data!" --after fetch clean --gpu 1:T4 --cpu 2 --memory 1Gi'
    )
    assert line.tags == [
        "step:Load data!",
        "after:fetch",
        "after:clean",
        "gpu:1:T4",
        "cpu:2",
        "memory:1Gi",
    ]
    assert parse_step_line("%%step train --image python:3.12").tags == [
        "step:train",
        "image:python:3.12",
    ]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("%%step", "names no step"),
        ("%%step --gpu 1", "names no step"),
        ("%%step train --gpu", "--gpu needs a value"),
        ("%%step train --gpus 2", "unknown option '--gpus'"),
        ("%%step train --cpu 1 2", "--cpu takes one value"),
        ("%%step Load data", "unexpected 'data'"),
        ('%%step "unclosed', "cannot read"),
    ],
)
def test_bad_step_lines(line: str, fragment: str) -> None:
    with pytest.raises(StepLineError, match="usage: %%step NAME") as caught:
        parse_step_line(line)
    assert fragment in str(caught.value)


def test_split_step_line_only_takes_the_magic_itself() -> None:
    # The code keeps its line numbers: the magic's line stays, empty
    assert split_step_line("%%step a\nx = 1") == ("%%step a", "\nx = 1")
    assert split_step_line("\n%%step a\nx = 1") == ("%%step a", "\n\nx = 1")
    assert split_step_line("%%stepper a\nx = 1") == (None, "%%stepper a\nx = 1")
    assert split_step_line("x = 1") == (None, "x = 1")


def test_the_three_spellings_give_the_same_pipeline() -> None:
    # Given the same two-step notebook written with our tags, Kale's tags and %%step lines
    ours = notebook(
        (["imports"], "import math"),
        (["step:prepare"], "x = 2"),
        (["step:square", "after:prepare", "gpu:1:T4"], "y = math.pow(x, 2)"),
    )
    kale = notebook(
        (["imports"], "import math"),
        (["block:prepare"], "x = 2"),
        (["block:square", "prev:prepare", "gpu:1:T4"], "y = math.pow(x, 2)"),
    )
    magic = notebook(
        (["imports"], "import math"),
        ([], "%%step prepare\nx = 2"),
        ([], "%%step square --after prepare --gpu 1:T4\ny = math.pow(x, 2)"),
    )
    # When each is built
    results = [build_pipeline(nb, "n.ipynb").to_json() for nb in (ours, kale, magic)]
    # Then the steps, edges, data and resources agree
    for result in results:
        result.pop("warnings")
        for step in result["steps"]:
            step.pop("cell_ids")
    assert results[0]["steps"] == results[1]["steps"]
    assert results[0]["steps"][1]["resources"] == results[2]["steps"][1]["resources"]
    assert results[2]["steps"][1]["after"] == ["prepare"]
    assert results[2]["steps"][1]["receives"] == ["x"]
    assert results[2]["errors"] == []
