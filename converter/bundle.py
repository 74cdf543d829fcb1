"""The bundle: what the step runtime needs to run any step of a pipeline, as plain JSON.

The runtime imports nothing of the converter, so this is the one contract between them:
`format` changes when its shape does.
"""

from __future__ import annotations

from typing import Any

from .model import CellCode, Pipeline

BUNDLE_FORMAT = 1


def _cells(cells: list[CellCode]) -> list[dict[str, Any]]:
    return [{"index": c.index, "id": c.id, "source": c.source} for c in cells]


def make_bundle(pipeline: Pipeline, workdir: str | None = None) -> dict[str, Any]:
    """The pipeline's code and data flow, keyed by task name."""
    tasks = {s.name: s.task for s in pipeline.steps}
    return {
        "format": BUNDLE_FORMAT,
        "pipeline": pipeline.settings.name,
        "notebook": pipeline.notebook.replace("\\", "/").rsplit("/", 1)[-1],
        "workdir": workdir,
        "prelude": _cells(pipeline.prelude),
        "parameters": {
            name: {"type": p.type, "default": p.default, "optional": p.optional}
            for name, p in pipeline.parameters.items()
        },
        "steps": {
            step.task: {
                "name": step.name,
                "cells": _cells(step.cells),
                "after": [tasks[name] for name in step.after],
                "receives": list(step.receives),
                # names inside the step's component (model.KFP_RESERVED_NAMES): the runtime
                # maps them back to the notebook's
                "input_artifacts": step.kfp_names().inputs,
                "output_artifacts": step.kfp_names().outputs,
                "parameter_inputs": step.kfp_names().parameters,
                "received_from": {n: tasks[p] for n, p in step.received_from.items()},
                "hands_on": list(step.hands_on),
                "parameters": list(step.parameters),
                "metrics": list(step.metrics),
                "models": step.model_outputs(),  # name -> the component's Model output
                "cache": step.options.cache,
                "report": step.options.report,  # keep a report of the cells' outputs
                "gpus": step.resources.gpu.count if step.resources.gpu else 0,
            }
            for step in pipeline.steps
        },
    }
