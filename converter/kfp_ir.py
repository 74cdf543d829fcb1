"""A `Pipeline` becomes KFP v2 IR, built through the kfp SDK's own objects.

Each step is a component whose inputs are the pipeline parameters it reads and the values it
receives (artifacts), and whose outputs are the values it hands on (and its metrics). Its
container runs the kfp executor on a fixed entry module that hands off to the cellpipe runtime;
the step's code itself is baked into the image, so no user text is ever rendered into source.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import re
from collections.abc import Callable
from typing import Any, Optional

import yaml
from google.protobuf import json_format

from . import kfp_platform
from .build import CompileOptions
from .kfp_sdk import dsl, pipeline_spec_builder, python_component, structures
from .model import Pipeline, Step

ARTIFACT_TYPE = "system.Artifact@0.0.1"
METRICS_TYPE = "system.Metrics@0.0.1"
# A model a step makes (`model:NAME`): a kfp `Model` output, kept whether or not a step reads it.
MODEL_TYPE = "system.Model@0.0.1"
METRICS_OUTPUT = "cellpipe_metrics"
# The step's cells and their outputs as an HTML page (kfp.dsl.HTML): the KFP UI shows it, and
# the executed notebook of a run is assembled from it (runtime/report_html.py writes it).
REPORT_TYPE = "system.HTML@0.0.1"
REPORT_OUTPUT = "cellpipe_report"
ENTRY_FUNCTION = "cellpipe_step"
# The module the kfp executor loads: fixed text, the same for every step and every notebook.
ENTRY_MODULE = (
    "# cellpipe: the step's code is baked into the image; the runtime runs it.\n"
    f"from cellpipe.runtime.kfp_entry import {ENTRY_FUNCTION}\n"
)
# The same launch script as kfp's lightweight Python components, so every kfp engine
# (kfp.local's SubprocessRunner included) recognises and runs the step.
LAUNCH_SCRIPT = """\
program_path=$(mktemp -d)

printf "%s" "$0" > "$program_path/ephemeral_component.py"
_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main \
    --component_module_path \
    "$program_path/ephemeral_component.py" \
    "$@"
"""
_PARAMETER_TYPES: dict[str, tuple[str, type]] = {
    "int": ("Integer", int),
    "float": ("Float", float),
    "bool": ("Boolean", bool),
    "str": ("String", str),
    "list": ("List", list),
    "dict": ("Dict", dict),
}
DEFAULT_GPU_TOLERATION = {"operator": "Exists", "effect": "NoSchedule"}


def step_component(step: Step, pipeline: Pipeline) -> python_component.PythonComponent:
    """The step's component spec: typed inputs and outputs, the entry command."""
    inputs: dict[str, structures.InputSpec] = {}
    names = step.kfp_names()  # the component's own names (reserved ones renamed)
    for name, input_name in names.parameters.items():
        parameter = pipeline.parameters[name]
        kfp_type = _PARAMETER_TYPES[parameter.type][0]
        if parameter.optional:  # papermill's `name = None`: kfp's `Optional[T] = None`
            inputs[input_name] = structures.InputSpec(type=kfp_type, default=None, optional=True)
        else:
            inputs[input_name] = structures.InputSpec(type=kfp_type)
    for input_name in names.inputs.values():
        inputs[input_name] = structures.InputSpec(type=ARTIFACT_TYPE)
    outputs = {
        output_name: structures.OutputSpec(type=ARTIFACT_TYPE)
        for output_name in names.outputs.values()
    }
    if step.metrics:
        outputs[METRICS_OUTPUT] = structures.OutputSpec(type=METRICS_TYPE)
    for output_name in step.model_outputs().values():
        outputs[output_name] = structures.OutputSpec(type=MODEL_TYPE)
    if step.options.report:  # on unless `report:disabled`
        outputs[REPORT_OUTPUT] = structures.OutputSpec(type=REPORT_TYPE)
    container = structures.ContainerSpecImplementation(
        image=step.image,
        command=["sh", "-ec", LAUNCH_SCRIPT, ENTRY_MODULE],
        args=[
            "--executor_input",
            dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            "--function_to_execute",
            ENTRY_FUNCTION,
            "--cellpipe_step",
            step.task,
        ],
    )
    spec = structures.ComponentSpec(
        name=step.task,
        description=f"cellpipe step {step.name!r}",
        inputs=inputs or None,
        outputs=outputs or None,
        implementation=structures.Implementation(container=container),
    )
    return python_component.PythonComponent(spec, _runs_in_the_runtime)


def _runs_in_the_runtime(**_: Any) -> None:
    raise RuntimeError("a cellpipe step runs through cellpipe.runtime, not in the compiler")


def pipeline_function(pipeline: Pipeline, options: CompileOptions) -> Callable[..., None]:
    """The pipeline as the SDK wants it: a function of the parameters that creates the tasks."""
    parameter_names = list(pipeline.parameters)
    steps = _topological(pipeline.steps)
    components = {s.name: step_component(s, pipeline) for s in steps}
    names = {s.name: s.kfp_names() for s in steps}

    def body(*values: Any) -> None:
        channels = dict(zip(parameter_names, values, strict=True))
        tasks: dict[str, dsl.PipelineTask] = {}
        for step in steps:
            own = names[step.name]
            arguments: dict[str, Any] = {own.parameters[n]: channels[n] for n in step.parameters}
            for name, input_name in own.inputs.items():
                producer = step.received_from[name]
                arguments[input_name] = tasks[producer].outputs[names[producer].outputs[name]]
            task = components[step.name](**arguments)
            task.set_display_name(step.name)
            for parent in step.after:
                task.after(tasks[parent])
            configure_task(task, step, pipeline, options)
            tasks[step.name] = task

    pipeline_names = pipeline.kfp_parameter_names()
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                pipeline_names[p.name],
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=p.default,
                annotation=(
                    Optional[_PARAMETER_TYPES[p.type][1]]  # noqa: UP045 (kfp reads typing's)
                    if p.optional
                    else _PARAMETER_TYPES[p.type][1]
                ),
            )
            for p in pipeline.parameters.values()
        ]
    )
    body.__name__ = pipeline.settings.name.replace("-", "_")
    body.__doc__ = pipeline.settings.description or None
    return body


def configure_task(
    task: dsl.PipelineTask, step: Step, pipeline: Pipeline, options: CompileOptions
) -> None:
    """Resources, GPUs and task options, each through the SDK; the pod's settings as
    kfp.kubernetes writes them (kfp_platform.py)."""
    pod: kfp_platform.KubernetesConfig = {}
    resources = step.resources
    if resources.cpu_request:
        task.set_cpu_request(resources.cpu_request)
    if resources.cpu_limit:
        task.set_cpu_limit(resources.cpu_limit)
    if resources.memory_request:
        task.set_memory_request(resources.memory_request)
    if resources.memory_limit:
        task.set_memory_limit(resources.memory_limit)
    gpu = resources.gpu
    if gpu is not None:
        resource = gpu.resource or options.gpu_resource
        task.set_accelerator_type(resource).set_accelerator_limit(gpu.count)
        if gpu.type:
            kfp_platform.add_node_selector(pod, label_key=options.gpu_label, label_value=gpu.type)
        # Each a toleration's keywords (a number for toleration_seconds, as kfp.kubernetes).
        tolerations: list[dict[str, Any]] | None = options.gpu_tolerations
        if tolerations is None:
            tolerations = [{"key": resource, **DEFAULT_GPU_TOLERATION}]
        for toleration in tolerations:
            kfp_platform.add_toleration(pod, **toleration)
    _configure_options(task, pod, step, pipeline)
    if pod:
        task.platform_config["kubernetes"] = pod


def _configure_options(
    task: dsl.PipelineTask, pod: kfp_platform.KubernetesConfig, step: Step, pipeline: Pipeline
) -> None:
    opts = step.options
    if opts.retries:
        task.set_retry(num_retries=opts.retries)
    task.set_caching_options(enable_caching=opts.cache)
    if opts.timeout_seconds:
        kfp_platform.set_timeout(pod, opts.timeout_seconds)
    for name, value in opts.env.items():
        task.set_env_variable(name, value)
    for secret in opts.secrets:
        kfp_platform.use_secret_as_env(
            pod, secret_name=secret.secret, secret_key_to_env={secret.key: secret.env}
        )
    for volume in opts.volumes:
        kfp_platform.mount_pvc(pod, pvc_name=volume.pvc, mount_path=volume.mount_path)
    if opts.shm_size:
        kfp_platform.empty_dir_mount(
            pod,
            volume_name="dshm",
            mount_path="/dev/shm",
            medium="Memory",
            size_limit=opts.shm_size,
        )
    for key, value in opts.labels.items():
        kfp_platform.add_pod_label(pod, key, value)
    for key, value in opts.annotations.items():
        kfp_platform.add_pod_annotation(pod, key, value)
    if pipeline.settings.security_context:
        kfp_platform.set_security_context(pod, **pipeline.settings.security_context)
    if pipeline.settings.image_pull_secrets:
        kfp_platform.set_image_pull_secrets(pod, list(pipeline.settings.image_pull_secrets))


def compile_yaml(pipeline: Pipeline, options: CompileOptions | None = None) -> str:
    """KFP v2 IR (with its Kubernetes platform spec) as YAML text, as kfp's compiler writes it."""
    if pipeline.errors:
        raise ValueError("a pipeline with errors cannot be compiled")
    options = options or CompileOptions()
    # kfp's task setters call inspect.stack(), whose cost grows with the caller's stack (a
    # Jupyter server, a test runner: twice the time at 80 frames): the graph is built in a
    # thread of its own, whose stack starts empty.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        graph = pool.submit(_graph, pipeline, options).result()
    spec = json_format.MessageToDict(graph.pipeline_spec)
    documents = [spec]
    if graph.platform_spec.platforms:
        documents.append(json_format.MessageToDict(graph.platform_spec))
    header = pipeline_spec_builder.extract_comments_from_pipeline_spec(spec, graph.description)
    # libyaml's emitter writes what PyYAML's own does, ten times faster.
    return _comment_safe(header) + yaml.dump_all(documents, Dumper=_DUMPER, sort_keys=True)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _graph(pipeline: Pipeline, options: CompileOptions) -> Any:
    function = pipeline_function(pipeline, options)
    return dsl.pipeline(
        name=pipeline.settings.name, description=pipeline.settings.description or None
    )(function)


def _comment_safe(header: str) -> str:
    # kfp's header repeats parameter defaults and the description; a line break inside one
    # would end the comment and break the YAML, so every line stays a comment, and a character
    # YAML allows nowhere (a control character) is written as its escape.
    return "".join(
        (line if line.startswith("#") else f"#  {line}") + "\n"
        for line in _NOT_IN_YAML.sub(_escaped, header).splitlines()
    )


# What YAML's reader refuses anywhere in a stream, comments included (PyYAML's NON_PRINTABLE).
_NOT_IN_YAML = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def _topological(steps: list[Step]) -> list[Step]:
    """Notebook order, except that a step never comes before the steps it runs after."""
    done: set[str] = set()
    ordered: list[Step] = []
    remaining = list(steps)
    while remaining:
        for step in remaining:
            if all(p in done for p in step.after):
                ordered.append(step)
                done.add(step.name)
                remaining.remove(step)
                break
    return ordered
