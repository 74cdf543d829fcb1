"""Marking a model (issue 19): `model:NAME`, `%%step ... --model NAME`, and Kale 2.x's bare
name on a step's last line; the compile JSON lists the models and each step's component
declares a kfp `Model` output for it, kept though no step reads it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cellpipe.converter import Pipeline, build_pipeline, compile_yaml
from cellpipe.converter.tags import StepLineError, parse_cell_tags, parse_step_line


def nb(*cells: tuple[list[str], str]) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": []}
            for tags, src in cells
        ],
    }


FIT = (
    "from sklearn.linear_model import LinearRegression\n"
    "reg = LinearRegression().fit([[1], [2]], [1, 2])"
)


def compile_notebook(notebook: dict[str, Any], path: str) -> Pipeline:
    return build_pipeline(notebook, path)


def test_a_model_tag_marks_the_steps_value() -> None:
    pipeline = compile_notebook(
        nb((["step:data"], "X = [[1], [2]]"), (["step:train", "model:reg"], FIT)), "m.ipynb"
    )
    assert not pipeline.errors
    assert pipeline.step("train").models == ["reg"]
    assert pipeline.to_json()["models"] == [
        {"name": "reg", "step": "train", "task": "train", "output": "cellpipe_model_reg"}
    ]


def test_the_component_declares_a_model_output_no_step_reads() -> None:
    pipeline = compile_notebook(nb((["step:train", "model:reg"], FIT)), "m.ipynb")
    spec = yaml.safe_load(compile_yaml(pipeline))
    outputs = spec["components"]["comp-train"]["outputDefinitions"]["artifacts"]
    assert outputs["cellpipe_model_reg"]["artifactType"]["schemaTitle"] == "system.Model"
    # the model is not a value handed on: no step reads it, and it is no plain artifact
    assert "reg" not in outputs


def test_the_step_line_takes_a_model() -> None:
    assert parse_step_line("%%step train --model reg").tags == ["step:train", "model:reg"]
    with pytest.raises(StepLineError, match="--model needs a value"):
        parse_step_line("%%step train --model")
    pipeline = compile_notebook(nb(([], f"%%step train --model reg\n{FIT}")), "m.ipynb")
    assert pipeline.step("train").models == ["reg"]


def test_kales_trailing_model_name_is_a_model() -> None:
    # Kale 2.x keeps a bare name on a step's last line as an output; one with "model" in it
    # as a kfp Model (kale/compiler.py's _artifact_type)
    source = "from sklearn.linear_model import LinearRegression\n"
    source += "my_model = LinearRegression().fit([[1], [2]], [1, 2])\nmy_model"
    pipeline = compile_notebook(nb((["step:train"], source)), "k.ipynb")
    assert pipeline.step("train").models == ["my_model"]
    # a trailing name without "model" in it is shown, not served
    plain = compile_notebook(nb((["step:train"], "table = {}\ntable")), "k.ipynb")
    assert plain.step("train").models == []


def test_a_model_the_step_does_not_make_is_an_error() -> None:
    pipeline = compile_notebook(nb((["step:train", "model:forest"], FIT)), "m.ipynb")
    (error,) = pipeline.errors
    assert error.step == "train" and error.cell_index == 0
    assert "model 'forest' is not a value step 'train' makes or receives" in error.message


def test_a_model_tag_needs_a_variable_name() -> None:
    parsed = parse_cell_tags(["model:my model"])
    assert parsed.models == []
    assert parsed.errors == [
        "tag 'model:my model': write model:NAME with NAME the variable holding the model "
        "(model:clf)"
    ]
