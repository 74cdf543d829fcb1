"""A notebook becomes a `Pipeline`: cells grouped into steps, parameters, metrics, data flow."""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dataflow, limits, names
from .cells import Cell
from .model import (
    CellCode,
    Diagnostic,
    GpuRequest,
    Parameter,
    Pipeline,
    Severity,
    Step,
)
from .parameters_cell import INJECTED_PARAMETERS, read_parameters, with_article
from .settings import DEFAULT_BASE_IMAGE, read_settings, slug
from .source import prepare
from .tags import (
    CellTags,
    StepLineError,
    TagWords,
    parse_cell_tags,
    parse_step_line,
    split_step_line,
    tag_words,
)

CELLPIPE_IMAGE_FORMAT = "1"  # bump when what goes into an image changes shape


@dataclass
class CompileOptions:
    """Explicit choices of the caller (CLI flags, UI dialog); they win over the notebook's."""

    registry: str | None = None
    base_image: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    gpu_label: str = "nvidia.com/gpu.product"
    gpu_tolerations: list[dict[str, str]] | None = None  # None: tolerate the GPU resource taint
    local_only: bool = False  # for the local engines: no registry needed, so no warning


@dataclass
class _Collected:
    steps: dict[str, Step] = field(default_factory=dict)
    trees: dict[str, list[tuple[int, ast.Module]]] = field(default_factory=dict)
    after: dict[str, list[tuple[str, int, str | None]]] = field(default_factory=dict)
    imports: list[Cell] = field(default_factory=list)
    functions: list[Cell] = field(default_factory=list)
    parameter_cells: list[Cell] = field(default_factory=list)
    metric_cells: list[Cell] = field(default_factory=list)
    own_report: set[str] = field(default_factory=set)  # steps whose own tags say report:
    # step -> (model name, cell index, cell id) of each `model:NAME` tag on its cells
    models: dict[str, list[tuple[str, int, str | None]]] = field(default_factory=dict)


def build_pipeline(
    notebook: Mapping[str, Any], path: str, options: CompileOptions | None = None
) -> Pipeline:
    """Turn a notebook (nbformat dict) into a Pipeline; problems land in `diagnostics`."""
    options = options or CompileOptions()
    not_unicode = limits.not_unicode(notebook)
    if not_unicode:  # text Python cannot parse nor UTF-8 write: refused before anything reads it
        pipeline = Pipeline(notebook=path, settings=read_settings({}, Path(path).stem).pipeline)
        pipeline.diagnostics.extend(Diagnostic(m, index) for index, m in not_unicode)
        return pipeline
    settings = read_settings(notebook.get("metadata") or {}, Path(path).stem)
    pipeline = Pipeline(notebook=path, settings=settings.pipeline)
    diagnostics = pipeline.diagnostics
    diagnostics.extend(Diagnostic(m, severity="warning") for m in settings.warnings)
    diagnostics.extend(Diagnostic(m) for m in settings.errors)
    raw_cells = notebook.get("cells") or []
    words = tag_words(raw_cells, notebook.get("metadata") or {})  # Kale's or cellpipe's
    cells = _read_cells(raw_cells, options, diagnostics, pipeline.requirements)
    if any(cell.tags.role == "step" for cell in cells):
        collected = _group(cells, diagnostics, words)
    else:
        collected = _one_step(cells, _notebook_step_name(path), diagnostics, words)
    if not collected.steps:
        if not pipeline.errors:
            diagnostics.append(
                Diagnostic(
                    "the notebook has no code to run (every code cell is skip, parameters or "
                    "metrics); add code cells, and tag the first cell of each step "
                    f"{words.step}:NAME"
                )
            )
        return pipeline
    pipeline.steps = list(collected.steps.values())
    _name_tasks(pipeline.steps)
    _apply_defaults(
        pipeline, settings.step_default_tags, options, diagnostics, collected.own_report
    )
    pipeline.prelude = [
        CellCode(c.index, c.id, c.code) for c in [*collected.imports, *collected.functions]
    ]
    pipeline.parameters = read_parameters(collected.parameter_cells, diagnostics)
    _flow(pipeline, collected, diagnostics, words)
    _name_images(pipeline, options, diagnostics)
    return pipeline


# --- cells -------------------------------------------------------------------------------------


def _read_cells(
    raw_cells: list[Any],
    options: CompileOptions,
    diagnostics: list[Diagnostic],
    requirements: list[str],
) -> list[Cell]:
    cells = []
    for index, cell in enumerate(raw_cells):
        if cell.get("cell_type") != "code":
            continue
        cell_id = cell.get("id")
        source = cell.get("source") or ""
        if isinstance(source, list):
            source = "".join(source)
        tags = list((cell.get("metadata") or {}).get("tags") or [])
        step_line, body = split_step_line(source)
        if step_line is not None:
            try:
                tags = [*tags, *parse_step_line(step_line).tags]
            except StepLineError as exc:
                diagnostics.append(Diagnostic(str(exc), index, cell_id))
            source = body
        parsed = parse_cell_tags(tags, options.gpu_resource)
        injected = INJECTED_PARAMETERS in tags and parsed.role in (None, "parameters")
        if injected:
            parsed.role = "parameters"
        papermill = parsed.role == "parameters" and "pipeline-parameters" not in tags
        for message in parsed.errors:
            diagnostics.append(Diagnostic(message, index, cell_id, _first(parsed.step_names)))
        for message in parsed.warnings:
            diagnostics.append(
                Diagnostic(message, index, cell_id, _first(parsed.step_names), "warning")
            )
        if parsed.role == "skip":
            continue
        prepared = prepare(source)
        problems: list[tuple[str, Severity]] = [(m, "warning") for m in prepared.warnings]
        if prepared.error:
            problems.append((prepared.error, "error"))
        cells.append(
            Cell(
                index,
                cell_id,
                parsed,
                prepared.code,
                prepared.tree,
                problems,
                papermill=papermill,
                injected=injected,
            )
        )
        requirements.extend(r for r in prepared.requirements if r not in requirements)
    return cells


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _notebook_step_name(path: str) -> str:
    """The one step of an untagged notebook is named after the notebook's file."""
    return Path(path.replace("\\", "/")).stem.strip() or "notebook"


def _one_step(
    cells: list[Cell], name: str, diagnostics: list[Diagnostic], words: TagWords
) -> _Collected:
    """No step tag anywhere: the notebook is one step, as papermill and kfp's
    notebook_component run it. Every code cell but skip ones is in it, in notebook order
    (imports and functions cells too); the parameters and metrics cells keep their roles, each
    cell by its own tags (no cell takes on the role of the cell above it)."""
    collected = _Collected()
    for cell in cells:
        role = cell.tags.role
        _tell_problems(cell, None if role in ("parameters", "metrics") else name, diagnostics)
        if role == "parameters":
            collected.parameter_cells.append(cell)
        elif role == "metrics":
            collected.metric_cells.append(cell)
        else:
            _add_to_step(collected, name, cell, diagnostics)
    if collected.steps:
        parameters = "; its parameters are pipeline parameters" if collected.parameter_cells else ""
        diagnostics.append(
            Diagnostic(
                "no cell is tagged as a step, so the notebook runs as one step, top to bottom "
                f"(every code cell but skip ones{parameters}); tag a cell {words.step}:NAME (or "
                "start it with %%step NAME) to split it into steps",
                step=name,
                severity="info",
            )
        )
    return collected


def _tell_problems(cell: Cell, step_name: str | None, diagnostics: list[Diagnostic]) -> None:
    for message, severity in cell.problems:
        diagnostics.append(Diagnostic(message, cell.index, cell.id, step_name, severity))


def _group(cells: list[Cell], diagnostics: list[Diagnostic], words: TagWords) -> _Collected:
    """Kale's rule: an untagged cell continues the role of the nearest tagged cell above."""
    collected = _Collected()
    role: str | None = None
    current_steps: list[str] = []
    waiting: list[Cell] = []  # cells above the first tag join the first step
    for cell in cells:
        if cell.papermill:
            # papermill's parameters cell is that cell alone (papermill injects after it and
            # runs the rest as code): the cells below it go on with the role above it
            _tell_problems(cell, None, diagnostics)
            _warn_step_settings(cell, "parameters", diagnostics, words)
            collected.parameter_cells.append(cell)
            continue
        if cell.tags.role is not None:
            role = cell.tags.role
            if role == "step":
                current_steps = cell.tags.step_names
        if role is None:
            waiting.append(cell)
            continue
        step_name = current_steps[0] if role == "step" else None
        for pending in [*waiting, cell]:
            for message, severity in pending.problems:
                diagnostics.append(
                    Diagnostic(message, pending.index, pending.id, step_name, severity)
                )
        if role == "step":
            for name in current_steps:
                for pending in [*waiting, cell]:
                    _add_to_step(collected, name, pending, diagnostics)
                waiting = []
            continue
        _warn_step_settings(cell, role, diagnostics, words)
        {
            "imports": collected.imports,
            "functions": collected.functions,
            "parameters": collected.parameter_cells,
            "metrics": collected.metric_cells,
        }[role].append(cell)
    return collected


def _warn_step_settings(
    cell: Cell, role: str, diagnostics: list[Diagnostic], words: TagWords
) -> None:
    if cell.tags.has_step_settings:
        diagnostics.append(
            Diagnostic(
                f"this cell is part of the {role} and not of a step, so its step settings "
                f"({words.after}:, gpu:, cpu:, image: ...) have nothing to apply to; move them "
                "to a step's cell",
                cell.index,
                cell.id,
                None,
                "warning",
            )
        )


def _add_to_step(
    collected: _Collected, name: str, cell: Cell, diagnostics: list[Diagnostic]
) -> None:
    step = collected.steps.get(name)
    if step is None:
        step = collected.steps[name] = Step(name=name, task="")
        collected.trees[name] = []
        collected.after[name] = []
    step.cells.append(CellCode(cell.index, cell.id, cell.code))
    if cell.tree is not None:
        collected.trees[name].append((cell.index, cell.tree))
    tags = cell.tags
    collected.after[name].extend((a, cell.index, cell.id) for a in tags.after)
    collected.models.setdefault(name, []).extend((m, cell.index, cell.id) for m in tags.models)
    _merge_resources(step, tags, cell, diagnostics)
    options = step.options
    options.retries = tags.retries if tags.retries is not None else options.retries
    options.timeout_seconds = tags.timeout_seconds or options.timeout_seconds
    options.cache = tags.cache if tags.cache is not None else options.cache
    options.env.update(tags.env)
    options.secrets.extend(tags.secrets)
    options.volumes.extend(tags.volumes)
    options.shm_size = tags.shm_size or options.shm_size
    options.labels.update(tags.labels)
    options.annotations.update(tags.annotations)
    if tags.report is not None:
        options.report = tags.report
        collected.own_report.add(name)
    step.base_image = tags.image or step.base_image


def _merge_resources(step: Step, tags: CellTags, cell: Cell, diagnostics: list[Diagnostic]) -> None:
    resources = step.resources
    if tags.gpu is not None:
        if resources.gpu is not None and resources.gpu != tags.gpu:
            diagnostics.append(
                Diagnostic(
                    "the step already asks for GPUs in an earlier cell; this cell's GPU tag "
                    "replaces it; keep one GPU tag per step",
                    cell.index,
                    cell.id,
                    step.name,
                    "warning",
                )
            )
        resources.gpu = tags.gpu
    resources.cpu_request = tags.cpu_request or resources.cpu_request
    resources.cpu_limit = tags.cpu_limit or resources.cpu_limit
    resources.memory_request = tags.memory_request or resources.memory_request
    resources.memory_limit = tags.memory_limit or resources.memory_limit


def _name_tasks(steps: list[Step]) -> None:
    """Valid, unique KFP task names; the person's step name stays the display name."""
    taken: set[str] = set()
    for step in steps:
        base = slug(step.name, limit=50)
        if base == "pipeline":
            base = "step"
        task, n = base, 2
        while task in taken:
            task, n = f"{base}-{n}", n + 1
        taken.add(task)
        step.task = task


def _apply_defaults(
    pipeline: Pipeline,
    default_tags: list[str],
    options: CompileOptions,
    diagnostics: list[Diagnostic],
    own_report: set[str],
) -> None:
    defaults = parse_cell_tags(default_tags, options.gpu_resource)
    for message in defaults.errors + defaults.warnings:
        diagnostics.append(Diagnostic(f"Kale steps_defaults: {message}", severity="warning"))
    base = pipeline.settings.default_resources
    for step in pipeline.steps:
        resources = step.resources
        # Kale's steps_defaults (limit:, secret:, image: too) below the step's own tags
        resources.cpu_request = resources.cpu_request or defaults.cpu_request or base.cpu_request
        resources.cpu_limit = resources.cpu_limit or defaults.cpu_limit or base.cpu_limit
        resources.memory_request = (
            resources.memory_request or defaults.memory_request or base.memory_request
        )
        resources.memory_limit = (
            resources.memory_limit or defaults.memory_limit or base.memory_limit
        )
        step.base_image = step.base_image or defaults.image
        own = {secret.env for secret in step.options.secrets}
        step.options.secrets[:0] = [s for s in defaults.secrets if s.env not in own]
        step.options.labels = {**defaults.labels, **step.options.labels}
        step.options.annotations = {**defaults.annotations, **step.options.annotations}
        step.options.env = {**defaults.env, **step.options.env}
        if defaults.cache is False:  # Kale's enable_caching: false, or steps_defaults
            step.options.cache = False
        if defaults.report is not None and step.name not in own_report:
            step.options.report = defaults.report  # Kale's steps_defaults, below the step's own
        mounted = {v.mount_path for v in step.options.volumes}
        step.options.volumes.extend(
            v for v in pipeline.settings.volumes if v.mount_path not in mounted
        )
        if resources.gpu is None and defaults.gpu is not None:
            resources.gpu = defaults.gpu
        if resources.gpu is not None and resources.gpu.resource is None:
            resources.gpu = GpuRequest(
                resources.gpu.count, resources.gpu.type, options.gpu_resource
            )


# --- parameters and metrics ---------------------------------------------------------------------


def _metric_names(cells: list[Cell], diagnostics: list[Diagnostic]) -> list[tuple[str, Cell]]:
    """Each bare `name` or `print(name)` line of a metrics cell."""
    found: list[tuple[str, Cell]] = []
    for cell in cells:
        if cell.tree is None:
            continue
        for statement in cell.tree.body:
            name = _metric_name(statement)
            if name is None:
                diagnostics.append(
                    Diagnostic(
                        f"metrics cell, line {statement.lineno}: write one metric per line, as "
                        "`name` or `print(name)`",
                        cell.index,
                        cell.id,
                    )
                )
            elif name not in (n for n, _ in found):
                found.append((name, cell))
    return found


def _metric_name(statement: ast.stmt) -> str | None:
    if not isinstance(statement, ast.Expr):
        return None
    value = statement.value
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "print"
        and len(value.args) == 1
        and not value.keywords
    ):
        value = value.args[0]
    return value.id if isinstance(value, ast.Name) else None


# --- data flow ----------------------------------------------------------------------------------


def _flow(
    pipeline: Pipeline, collected: _Collected, diagnostics: list[Diagnostic], words: TagWords
) -> None:
    prelude_trees = [
        (c.index, c.tree) for c in [*collected.imports, *collected.functions] if c.tree
    ]
    prelude = names.analyse(prelude_trees)
    for cell_index, message in prelude.notes:
        diagnostics.append(Diagnostic(message, cell_index, None, None, "warning"))
    flows = []
    # Parameters that are numbers, strings or booleans cannot change in place (until a step
    # binds the name to something else).
    fixed = {n for n, p in pipeline.parameters.items() if p.type in ("int", "float", "str", "bool")}
    for step in pipeline.steps:
        # Modules the prelude imports are modules in every step: calling them changes nothing
        # that travels (a seed call is warned about instead). Calls of its functions are
        # followed into their bodies.
        usage = names.analyse(collected.trees[step.name], names.step_usage(prelude, fixed))
        fixed -= set(usage.writes)
        names.add_called_function_reads(usage, prelude.functions)
        for cell_index, message in usage.notes:
            diagnostics.append(
                Diagnostic(message, cell_index, _cell_id(step, cell_index), step.name, "warning")
            )
        flows.append(dataflow.StepFlow(step, usage, collected.after[step.name]))
    graph = dataflow.build_graph(flows, diagnostics, words)
    if graph is None:
        return
    dataflow.resolve_values(flows, graph, pipeline.parameters, diagnostics)
    _resolve_metrics(pipeline, flows, collected, diagnostics)
    _resolve_models(pipeline, flows, collected, diagnostics)
    _warn_shared_files(flows, diagnostics)


def _resolve_metrics(
    pipeline: Pipeline,
    flows: list[dataflow.StepFlow],
    collected: _Collected,
    diagnostics: list[Diagnostic],
) -> None:
    for name, cell in _metric_names(collected.metric_cells, diagnostics):
        producers = [
            f for f in flows if name in f.usage.writes and f.step.first_cell.index < cell.index
        ]
        if not producers and name in pipeline.parameters:
            _parameter_metric(pipeline, pipeline.parameters[name], cell, diagnostics)
            continue
        if not producers:
            diagnostics.append(
                Diagnostic(
                    f"metric {name!r} is not produced by any step above the metrics cell; "
                    "compute it in a step first",
                    cell.index,
                    cell.id,
                )
            )
            continue
        step = producers[-1].step
        step.metrics.append(name)
        if name not in step.hands_on:
            step.hands_on.append(name)
        pipeline.metrics.append(name)


def _resolve_models(
    pipeline: Pipeline,
    flows: list[dataflow.StepFlow],
    collected: _Collected,
    diagnostics: list[Diagnostic],
) -> None:
    """Each step's models: its `model:NAME` tags, and (Kale 2.x) a bare name with "model" in
    it on the step's last line, which Kale keeps as a KFP Model though no step reads it."""
    for flow in flows:
        step = flow.step
        for name, cell_index, cell_id in collected.models.get(step.name, []):
            if name in flow.usage.writes or name in step.receives:
                if name not in step.models:
                    step.models.append(name)
                continue
            diagnostics.append(
                Diagnostic(
                    f"model {name!r} is not a value step {step.name!r} makes or receives; tag "
                    "model:NAME on the step that assigns NAME (e.g. model:clf after clf.fit(...))",
                    cell_index,
                    cell_id,
                    step.name,
                )
            )
        trailing = _trailing_name(collected.trees.get(step.name, []))
        if (
            trailing
            and "model" in trailing.lower()
            and trailing in flow.usage.writes
            and trailing not in pipeline.parameters
            and trailing not in step.models
        ):
            step.models.append(trailing)


def _trailing_name(trees: list[tuple[int, ast.Module]]) -> str | None:
    """The bare name on a step's last line (Kale's get_trailing_variable), or None."""
    if not trees or not trees[-1][1].body:
        return None
    last = trees[-1][1].body[-1]
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Name):
        return last.value.id
    return None


def _parameter_metric(
    pipeline: Pipeline, parameter: Parameter, cell: Cell, diagnostics: list[Diagnostic]
) -> None:
    """A metric that names a pipeline parameter (Kale's own test notebook has `print(d1)`):
    reported by the first step that receives the parameter, else by the first step."""
    if parameter.type not in ("int", "float", "bool"):
        diagnostics.append(
            Diagnostic(
                f"metric {parameter.name!r} is the pipeline parameter {parameter.name!r}, "
                f"{with_article(parameter.type)}; metrics must be numbers, so report a number "
                "computed from it in a step",
                cell.index,
                cell.id,
            )
        )
        return
    step = next((s for s in pipeline.steps if parameter.name in s.parameters), pipeline.steps[0])
    if parameter.name not in step.parameters:
        step.parameters.append(parameter.name)
    step.metrics.append(parameter.name)
    pipeline.metrics.append(parameter.name)


def _warn_shared_files(flows: list[dataflow.StepFlow], diagnostics: list[Diagnostic]) -> None:
    for writer in flows:
        for path in writer.usage.written_files:
            for reader in flows:
                if reader is writer or path not in reader.usage.string_constants:
                    continue
                cell_index = reader.usage.string_constants[path]
                diagnostics.append(
                    Diagnostic(
                        f"names the file {path!r}, which step {writer.step.name!r} writes; on "
                        "Kubeflow each step runs in its own pod, so files do not travel between "
                        "steps; hand the data on as a variable, or keep the file on a volume "
                        "(volume:PVC:PATH)",
                        cell_index,
                        _cell_id(reader.step, cell_index),
                        reader.step.name,
                        "warning",
                    )
                )


def _cell_id(step: Step, cell_index: int) -> str | None:
    return next((c.id for c in step.cells if c.index == cell_index), None)


# --- images -------------------------------------------------------------------------------------


def _name_images(
    pipeline: Pipeline, options: CompileOptions, diagnostics: list[Diagnostic]
) -> None:
    """The content-hash image a build will produce for each base, under the registry."""
    settings = pipeline.settings
    registry = options.registry or settings.registry
    base = options.base_image or settings.base_image or DEFAULT_BASE_IMAGE
    settings.base_image = base
    settings.registry = registry
    if not registry and not options.local_only:
        diagnostics.append(
            Diagnostic(
                "no registry is configured, so only the local engines can use the image; give "
                "--registry (or c.CellPipe.registry) to submit to a cluster",
                severity="warning",
            )
        )
    prelude = [c.source for c in pipeline.prelude]
    images: dict[str, str] = {}  # base -> image: the hash covers every step, once per base
    for own_base in [base, *(s.base_image or base for s in pipeline.steps)]:
        if own_base not in images:
            images[own_base] = image_reference(
                registry, settings.name, own_base, prelude, pipeline.steps
            )
    for step in pipeline.steps:
        step.image = images[step.base_image or base]
    pipeline.image = images[base]


def image_reference(
    registry: str | None, pipeline_name: str, base: str, prelude: list[str], steps: list[Step]
) -> str:
    content = json.dumps(
        {
            "format": CELLPIPE_IMAGE_FORMAT,
            "base": base,
            "prelude": prelude,
            "steps": [[s.task, [c.source for c in s.cells]] for s in steps],
        },
        sort_keys=True,
    )
    tag = hashlib.sha256(content.encode()).hexdigest()[:16]
    repository = (
        f"{registry.rstrip('/')}/{pipeline_name}" if registry else f"cellpipe/{pipeline_name}"
    )
    return f"{repository}:{tag}"
