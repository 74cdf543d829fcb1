"""What the compiler accepts: each class of input the fuzzer (test_fuzz.py) found crashing the
compiler is now a user error naming the cell and the tag or line and what to write, or is
compiled exactly."""

from __future__ import annotations

import ast
import json
from fractions import Fraction
from typing import Any

import pytest
import yaml

from cellpipe.converter import build_pipeline, compile_yaml, limits
from cellpipe.converter.tags import parse_cell_tags
from tests.notebooks import notebook


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Fraction(1)),
        ("+2", Fraction(2)),
        ("-1", Fraction(-1)),
        ("500m", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("1e3", Fraction(1000)),
        ("1E-3", Fraction(1, 1000)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("10k", Fraction(10_000)),
        ("100u", Fraction(1, 10_000)),
        ("2E", Fraction(2 * 10**18)),
    ],
)
def test_quantities_read_by_kubernetes_grammar(text: str, value: Fraction) -> None:
    assert limits.quantity_value(text) == value


@pytest.mark.parametrize("text", ["", ".", "1K", "1 Gi", "1.5.2", "Gi", "١", "²", "1e", "1e999"])
def test_what_kubernetes_does_not_read_is_refused(text: str) -> None:
    with pytest.raises(limits.Refused):
        limits.quantity_value(text)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("2", "2"),
        ("0.5", "0.5"),
        ("500m", "500m"),
        ("1e3", "1000"),
        ("+2", "2"),
        ("2k", "2000"),
        ("0.25e1", "2500m"),
        ("1.5e-1", "150m"),
    ],
)
def test_cpu_is_written_as_kfp_and_kubernetes_both_read_it(text: str, written: str) -> None:
    assert limits.cpu(text) == written


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("4Gi", "4Gi"),
        ("512M", "512M"),
        ("1000", "1000"),
        ("1.5Gi", "1536Mi"),
        ("10k", "10000"),
        ("1e9", "1G"),
        ("+2Gi", "2Gi"),
        ("0.5Ki", "512"),
        ("128974848000m", "123Mi"),
    ],
)
def test_memory_is_written_as_kfp_and_kubernetes_both_read_it(text: str, written: str) -> None:
    assert limits.memory(text) == written


@pytest.mark.parametrize(
    ("key", "text", "fragment"),
    [
        ("cpu", "0", "more than 0"),
        ("cpu", "-1", "more than 0"),
        ("cpu", "1.5m", "finer than a millicore"),
        ("cpu", "100u", "finer than a millicore"),
        ("memory", "1.5", "not a whole number of bytes"),
        ("memory", "10m", "m means thousandths"),
        ("memory", "9Ei", "more bytes than Kubernetes can express"),
        ("memory", "10K", "not a Kubernetes quantity"),
    ],
)
def test_what_no_form_says_exactly_is_refused(key: str, text: str, fragment: str) -> None:
    with pytest.raises(limits.Refused, match=fragment):
        limits.cpu(text) if key == "cpu" else limits.memory(text)


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("gpu:" + "9" * 20, "at most 64"),
        ("gpu:²", "at least 1 and at most 64"),
        ("limit:nvidia.com/gpu:65", "at most 64"),
        ("retries:" + "9" * 20, "at most 100"),
        ("timeout:" + "9" * 20, "at most 31622400 seconds"),
        ("timeout:١", "not a whole number of seconds"),
        ("cpu:١", "not a Kubernetes quantity (e.g. cpu:500m or cpu:2)"),
        ("memory:1.5", "not a whole number of bytes (e.g. memory:512Mi or memory:4Gi)"),
        ("limit:memory:0", "more than 0"),
        ("shm:1m", "m means thousandths"),
    ],
)
def test_bounded_tags_say_what_to_write(tag: str, fragment: str) -> None:
    parsed = parse_cell_tags([tag])
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith(f"tag {tag!r}: ")
    assert fragment in parsed.errors[0]


@pytest.mark.parametrize(
    "tag", ["env:MODE\n=x", "secret:s3\n:key:AWS", "volume:data\n:/data", "annotation:team\n:x"]
)
def test_a_line_break_inside_a_kubernetes_name_is_an_error(tag: str) -> None:
    # `$` in a regex matches before a final line break: names are matched whole
    assert len(parse_cell_tags([tag]).errors) == 1


def test_quantities_kfp_refuses_are_compiled_with_the_same_value() -> None:
    nb = notebook(
        (["step:a", "memory:1.5Gi", "cpu:1e3"], "x = 1"),
        (["step:b", "limit:memory:10k", "cpu:+2", "shm:1.5Gi"], "y = x"),
        metadata={"cellpipe": {"resources": {"cpu": 0.5, "memory": "2e9"}}},
    )
    pipeline = build_pipeline(nb, "q.ipynb")
    assert pipeline.errors == []
    a, b = pipeline.steps
    assert (a.resources.memory_limit, a.resources.cpu_limit) == ("1536Mi", "1000")
    assert (b.resources.memory_limit, b.resources.memory_request) == ("10000", "2G")
    assert (b.resources.cpu_limit, b.options.shm_size) == ("2", "1536Mi")
    spec = next(yaml.safe_load_all(compile_yaml(pipeline)))
    resources = spec["deploymentSpec"]["executors"]["exec-a"]["container"]["resources"]
    assert (resources["resourceMemoryLimit"], resources["resourceCpuLimit"]) == ("1536Mi", "1000")


def errors_of(*cells: Any, **metadata: Any) -> list[str]:
    pipeline = build_pipeline(notebook(*cells, metadata=metadata or None), "e.ipynb")
    json.dumps(pipeline.to_json(), allow_nan=False)
    return [e.for_people("e.ipynb") for e in pipeline.errors]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("d = {1: 2}", "line 1: d has the key 1, which is not a string"),
        ("f = 1e999", "line 1: f = inf is not a finite number"),
        ("f = [1, -1e999]", "f[1] = -inf is not a finite number"),
        ("n = 123456789012345678901", "n = 123456789012345678901 is too large to travel exactly"),
        ("s = '\\ud800'", "s holds a lone surrogate"),
        ("d = {'k': ['\\udc80']}", "d['k'][0] holds a lone surrogate"),
        ("t = [(1, 2)]", "t[0] holds a tuple, which JSON cannot carry"),
        ("d = {'a': None}", "d['a'] is None, which Kubeflow Pipelines does not carry inside"),
    ],
)
def test_parameters_json_and_kfp_cannot_carry_are_errors_naming_the_cell(
    source: str, fragment: str
) -> None:
    errors = errors_of((["parameters"], source), (["step:a"], "y = 2"))
    assert len(errors) == 1
    assert errors[0].startswith("e.ipynb: cell 1: parameters cell, line 1: ")
    assert fragment in errors[0]


def test_control_characters_in_parameters_travel_as_data() -> None:
    nb = notebook((["parameters"], "s = 'a\\x01b\\x85c\\u2028d\\x7f'"), (["step:a"], "print(s)"))
    pipeline = build_pipeline(nb, "c.ipynb")
    assert pipeline.errors == []
    spec = next(yaml.safe_load_all(compile_yaml(pipeline)))
    default = spec["root"]["inputDefinitions"]["parameters"]["s"]["defaultValue"]
    assert default == "a\x01b\x85c\u2028d\x7f"


def test_deep_expressions_are_an_error_on_their_cell_not_a_recursion_error() -> None:
    chain = " + ".join(["a"] * 500)
    errors = errors_of(
        (["step:a"], "a = 1"),
        (["step:b"], f"x = 1\nx = {chain}"),
        (["step:c"], "y = " + "-" * 10_000 + "a"),  # beyond Python's own parser
    )
    assert errors[0].startswith("e.ipynb: cell 2 (step 'b'): line 2 nests an expression")
    assert "more than 200 levels deep" in errors[0]
    assert errors[1].startswith("e.ipynb: cell 3 (step 'c'): the cell nests an expression")
    assert len(errors) == 2


def test_a_chain_within_the_limit_compiles() -> None:
    chain = " + ".join(["a"] * 190)
    nb = notebook((["step:a"], "a = 1"), (["step:b"], f"x = {chain}"), (["step:c"], "print(x)"))
    assert build_pipeline(nb, "ok.ipynb").errors == []


def test_the_depth_check_agrees_with_a_full_walk() -> None:
    def depth(tree: ast.AST) -> int:
        deepest, stack = 0, [(tree, 1)]
        while stack:
            node, level = stack.pop()
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
        return deepest

    shapes = ["-{}", "not {}", "{}.b", "{}[0]", "f({})", "[{}]", "{} + a", "lambda: {}"]
    for count in (150, 190, 198, 199, 200, 210):
        for shape in shapes:
            text = "a"
            for _ in range(count):
                text = shape.format(text)
            try:
                tree = ast.parse(f"x = {text}")
            except (SyntaxError, RecursionError, MemoryError):
                continue
            deep = depth(tree) > limits.MAX_SYNTAX_DEPTH
            assert (limits.too_deep(tree) is not None) == deep, (shape, count)


def test_a_huge_cell_compiles_in_reasonable_time() -> None:
    source = "\n".join(f"x{i} = {i} + len('{'a' * 20}')" for i in range(5000))
    nb = notebook((["step:a"], source), (["step:b"], "y = x4999"))
    pipeline = build_pipeline(nb, "huge.ipynb")
    assert pipeline.errors == []
    assert pipeline.steps[1].receives == ["x4999"]


def test_text_that_is_not_unicode_is_refused_before_anything_reads_it() -> None:
    nb: dict[str, Any] = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kubeflow_notebook": {"pipeline_description": "a\ud800"}},
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["step:\udc80"]}, "source": "x = 1"},
            {"cell_type": "code", "metadata": {}, "source": "y = '\ud83d'", "id": "c"},
            {"cell_type": "markdown", "metadata": {}, "source": "\ud800 ignored"},
        ],
    }
    pipeline = build_pipeline(nb, "s.ipynb")
    assert [(e.cell_index, e.message.split(" holds ")[0]) for e in pipeline.errors] == [
        (None, "notebook metadata kubeflow_notebook.pipeline_description"),
        (0, "the cell's tags"),
        (1, "the cell's source"),
    ]
    json.dumps(pipeline.to_json(), ensure_ascii=False).encode("utf-8")


def test_kale_settings_kfp_would_refuse_are_errors_or_warnings() -> None:
    errors = errors_of(
        (["step:a"], "x = 1"),
        kubeflow_notebook={
            "security_context": {"run_as_user": -1, "run_as_group": "1000", "run_as_non_root": 1},
            "volumes": 3.5,
        },
    )
    assert [e.split(": ", 2)[1] for e in errors] == [
        "Kale setting security_context.run_as_user",
        "Kale setting security_context.run_as_group",
        "Kale setting security_context.run_as_non_root",
    ]
