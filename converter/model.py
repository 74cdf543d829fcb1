"""The typed pipeline IR: what the converter returns and every front door reads.

Plain dataclasses, no kfp import: the launcher, the server and the sidebar all consume these,
and `to_json` is the shape the UI sees (README, "compile JSON").
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

ParameterType = Literal["int", "float", "bool", "str", "list", "dict"]
Severity = Literal["error", "warning", "info"]  # info: how the notebook was read, no problem


@dataclass(frozen=True)
class Diagnostic:
    """A problem found in a notebook, located so that an editor can put it on its cell.

    `cell_index` counts code and markdown cells alike from 0 (nbformat order); messages for
    people count from 1.
    """

    message: str
    cell_index: int | None = None
    cell_id: str | None = None
    step: str | None = None
    severity: Severity = "error"

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "cell_index": self.cell_index,
            "cell_id": self.cell_id,
            "step": self.step,
        }

    def for_people(self, notebook: str) -> str:
        """`NOTEBOOK: cell N (step 'S'): message`, the CLI's and the server's wording."""
        where = [notebook]
        if self.cell_index is not None:
            cell = f"cell {self.cell_index + 1}"
            if self.step is not None:
                cell += f" (step {self.step!r})"
            where.append(cell)
        elif self.step is not None:
            where.append(f"step {self.step!r}")
        return ": ".join([*where, self.message])


@dataclass(frozen=True)
class GpuRequest:
    count: int
    type: str | None = None
    resource: str | None = None  # None: the configured GPU resource name

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "type": self.type, "resource": self.resource}


@dataclass
class Resources:
    """CPU and memory as Kubernetes quantities; requests and limits kept apart (Kale's `limit:`)."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    gpu: GpuRequest | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cpu_request or self.cpu_limit:
            out["cpu"] = {"request": self.cpu_request, "limit": self.cpu_limit}
        if self.memory_request or self.memory_limit:
            out["memory"] = {"request": self.memory_request, "limit": self.memory_limit}
        if self.gpu is not None:
            out["gpu"] = self.gpu.to_json()
        return out


@dataclass(frozen=True)
class SecretEnv:
    secret: str
    key: str
    env: str


@dataclass(frozen=True)
class VolumeMount:
    pvc: str
    mount_path: str


@dataclass
class StepOptions:
    """Task options and pod settings that ride along with a step."""

    retries: int | None = None
    timeout_seconds: int | None = None
    cache: bool = True
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[SecretEnv] = field(default_factory=list)
    volumes: list[VolumeMount] = field(default_factory=list)
    shm_size: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # keep a report of the step's cells' outputs (Kale's report:; report:disabled turns it off)
    report: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "retries": self.retries,
            "timeout": self.timeout_seconds,
            "cache": self.cache,
            "env": dict(self.env),
            "secrets": [dataclasses.asdict(s) for s in self.secrets],
            "volumes": [dataclasses.asdict(v) for v in self.volumes],
            "shm": self.shm_size,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }


@dataclass(frozen=True)
class CellCode:
    """One notebook cell's code as the step runs it: its IPython source, with the lines that
    drive cellpipe and the pip install lines made `pass` (source.prepare)."""

    index: int
    id: str | None
    source: str


# Names a compiled component uses itself: `self` (calling a component), `Output` (kfp's name
# for a component's return value) and cellpipe's metrics and report outputs. A parameter or
# value of such a name is renamed in the component and in the pipeline's inputs
# (Step.kfp_names, Pipeline.kfp_parameter_names), never refused.
KFP_RESERVED_NAMES = frozenset({"self", "Output", "cellpipe_metrics", "cellpipe_report"})
# A model's output in its step's component (a kfp `Model` artifact): cellpipe_model_NAME.
MODEL_OUTPUT_PREFIX = "cellpipe_model_"


# The names KFP takes for inputs and outputs (kfp.dsl.pipeline_channel, less what a Python
# name cannot hold): ASCII, a letter first.
_KFP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*", re.ASCII)


def kfp_name(name: str) -> str:
    """A Python name in the letters KFP takes: `_tmp` -> `v_tmp`, `α` -> `u3b1`."""
    if _KFP_NAME.fullmatch(name):
        return name
    text = "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"u{ord(c):x}" for c in name)
    return text if text[:1].isascii() and text[:1].isalpha() else f"v{text}"


def _namer(taken: set[str]) -> Callable[[str, str], str]:
    """Gives each name its KFP name, each given once and none of `taken` (the names in play)
    given to another: a name KFP takes keeps it, else kfp_name(NAME)+SUFFIX (+2, +3...)."""
    given: set[str] = set()

    def give(name: str, suffix: str) -> str:
        if name not in KFP_RESERVED_NAMES and name not in given and _KFP_NAME.fullmatch(name):
            given.add(name)
            return name
        base = kfp_name(name)
        # a name KFP does not take tries its KFP form first; then NAME_in, NAME_in2...
        tries = itertools.chain(
            [base] if base != name else [],
            [f"{base}{suffix}"],
            (f"{base}{suffix}{n}" for n in itertools.count(2)),
        )
        candidate = next(
            c for c in tries if c not in taken and c not in given and c not in KFP_RESERVED_NAMES
        )
        given.add(candidate)
        return candidate

    return give


@dataclass(frozen=True)
class KfpNames:
    """Inside a step's component: the name of each parameter, received value (an input
    artifact) and handed-on value (an output artifact), keyed by the notebook's name."""

    parameters: dict[str, str]
    inputs: dict[str, str]
    outputs: dict[str, str]


@dataclass
class Step:
    name: str  # the display name, exactly as the person wrote it
    task: str  # a valid, unique KFP task name derived from `name`
    cells: list[CellCode] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # display names of the direct predecessors
    receives: list[str] = field(default_factory=list)
    hands_on: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # pipeline parameters the step reads
    received_from: dict[str, str] = field(default_factory=dict)  # name -> producing step's name
    metrics: list[str] = field(default_factory=list)  # metrics this step reports
    models: list[str] = field(default_factory=list)  # values kept as models (`model:NAME`)
    resources: Resources = field(default_factory=Resources)
    options: StepOptions = field(default_factory=StepOptions)
    base_image: str | None = None  # `image:REF`; None means the notebook's base
    image: str = ""  # the content-hash image a build will produce for this step

    @property
    def first_cell(self) -> CellCode:
        return self.cells[0]

    def kfp_names(self) -> KfpNames:
        """The name of each of the step's parameters, inputs and outputs in its component.

        Outputs keep the variable's name, so what a step hands on reads plainly in the KFP
        UI, unless the component uses that name itself (KFP_RESERVED_NAMES: then NAME_) or KFP
        does not take it (see kfp_name). A component declares each name once, so an input of
        an output's name (a value received and handed on changed, a parameter changed) is
        NAME_in, as is an input of a reserved name (NAME_in2... should that be taken too).
        The runtime maps the names back: the step's code sees its own.
        """
        give = _namer(set(self.hands_on) | set(self.parameters) | set(self.receives))
        outputs = {name: give(name, "_") for name in self.hands_on}
        parameters = {name: give(name, "_in") for name in self.parameters}
        inputs = {name: give(name, "_in") for name in self.receives}
        return KfpNames(parameters=parameters, inputs=inputs, outputs=outputs)

    def model_outputs(self) -> dict[str, str]:
        """The component's `Model` output of each model the step makes: MODEL_OUTPUT_PREFIX and
        the name (as KFP takes it), apart from the values it hands on."""
        return {name: f"{MODEL_OUTPUT_PREFIX}{kfp_name(name)}" for name in self.models}

    def input_artifact_names(self) -> dict[str, str]:
        """The KFP input name of each received value (`kfp_names().inputs`)."""
        return self.kfp_names().inputs

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "after": list(self.after),
            "receives": list(self.receives),
            "hands_on": list(self.hands_on),
            "parameters": list(self.parameters),
            "metrics": list(self.metrics),
            "models": list(self.models),
            "resources": self.resources.to_json(),
            "options": self.options.to_json(),
            "base_image": self.base_image,
            "image": self.image,
            "cells": [c.index for c in self.cells],
            "cell_ids": [c.id for c in self.cells],
        }


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    default: Any
    cell_index: int
    cell_id: str | None
    # `name = None` (papermill's optional parameter): None is a value it may take, at run time
    # too; `type` is its annotation's (`name: int = None`), else str.
    optional: bool = False


@dataclass
class PipelineSettings:
    """Notebook-level settings (`metadata.cellpipe`, or Kale's `metadata.kubeflow_notebook`)."""

    name: str
    description: str = ""
    experiment: str | None = None
    base_image: str | None = None
    registry: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    service_account: str | None = None
    default_resources: Resources = field(default_factory=Resources)
    volumes: list[VolumeMount] = field(default_factory=list)
    security_context: dict[str, Any] = field(default_factory=dict)  # run_as_user, ...

    def to_json(self) -> dict[str, Any]:
        return {
            "security_context": dict(self.security_context),
            "name": self.name,
            "description": self.description,
            "experiment": self.experiment,
            "base_image": self.base_image,
            "registry": self.registry,
            "image_pull_secrets": list(self.image_pull_secrets),
            "service_account": self.service_account,
            "volumes": [dataclasses.asdict(v) for v in self.volumes],
        }


@dataclass
class Pipeline:
    """A notebook as a pipeline: the converter's one result."""

    notebook: str
    settings: PipelineSettings
    steps: list[Step] = field(default_factory=list)
    prelude: list[CellCode] = field(default_factory=list)  # imports then functions, in every step
    parameters: dict[str, Parameter] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    image: str = ""
    requirements: list[str] = field(default_factory=list)  # from !pip / %pip install lines
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def notes(self) -> list[Diagnostic]:
        """How the notebook was read, where that may surprise (an untagged notebook is one
        step): no problem, but worth a line (`cellpipe: note: ...`)."""
        return [d for d in self.diagnostics if d.severity == "info"]

    def kfp_parameter_names(self) -> dict[str, str]:
        """The pipeline's input name of each parameter: its own, NAME_ for a name a component
        uses itself (KFP_RESERVED_NAMES: `graph(self=...)` cannot be called), or what kfp_name
        makes of a name KFP does not take."""
        give = _namer(set(self.parameters))
        return {name: give(name, "_") for name in self.parameters}

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.settings.name,
            "description": self.settings.description,
            "image": self.image,
            "settings": self.settings.to_json(),
            "steps": [s.to_json() for s in self.steps],
            "parameters": {name: p.default for name, p in self.parameters.items()},
            "parameter_types": {name: p.type for name, p in self.parameters.items()},
            "metrics": list(self.metrics),
            "models": [
                {"name": name, "step": step.name, "task": step.task, "output": output}
                for step in self.steps
                for name, output in step.model_outputs().items()
            ],
            "requirements": list(self.requirements),
            "warnings": [d.to_json() for d in self.warnings],
            "notes": [d.to_json() for d in self.notes],
            "optional_parameters": [n for n, p in self.parameters.items() if p.optional],
            "errors": [d.to_json() for d in self.errors],
        }
