"""The entry the kfp executor calls in every cellpipe step (`--function_to_execute
cellpipe_step`).

kfp's executor maps inputs and outputs through the function's signature, so the signature is
built here from the step's own declaration in the bundle; the body runs the step with the
cellpipe runtime. The bundle (the steps' code and data flow) is baked into the image at
CELLPIPE_BUNDLE, or pointed at by the local engines.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from . import values
from .step import StepFailed, fresh_main, run_prelude, run_step

DEFAULT_BUNDLE = "/cellpipe/bundle.json"
METRICS_OUTPUT = "cellpipe_metrics"
_PYTHON_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}


def _argument(flag: str) -> str:
    argv = sys.argv
    if flag in argv and argv.index(flag) + 1 < len(argv):
        return argv[argv.index(flag) + 1]
    raise SystemExit(f"cellpipe: the step was started without {flag}")


def load_bundle() -> dict[str, Any]:
    path = Path(os.environ.get("CELLPIPE_BUNDLE", DEFAULT_BUNDLE))
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def component_names(step: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The names inside the step's component of its parameters, inputs and outputs, keyed by
    the notebook's names: a name the component uses itself (`self`, `Output`,
    `cellpipe_metrics`) or that KFP does not take (`_tmp`) is renamed there by the compiler."""
    parameters = step.get("parameter_inputs") or {n: n for n in step["parameters"]}
    outputs = step.get("output_artifacts") or {n: n for n in step["hands_on"]}
    return parameters, step["input_artifacts"], outputs


def _run(bundle: dict[str, Any], task: str, kwargs: dict[str, Any]) -> None:
    step = bundle["steps"][task]
    parameter_inputs, input_artifacts, output_artifacts = component_names(step)
    workdir = os.environ.get("CELLPIPE_WORKDIR") or bundle.get("workdir") or "."
    if Path(workdir).is_dir():
        os.chdir(workdir)
        sys.path.insert(0, str(Path(workdir).resolve()))
    namespace = fresh_main()
    try:
        run_prelude(bundle, namespace)
        scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"cellpipe-{task}-{os.getpid()}"
        scratch.mkdir(parents=True, exist_ok=True)
        result = run_step(
            bundle,
            task,
            namespace,
            {name: kwargs.get(parameter_inputs[name]) for name in step["parameters"]},
            lambda name: values.load(Path(kwargs[input_artifacts[name]].path)),
            scratch,
        )
    except StepFailed as exc:
        print(exc.details, file=sys.stderr)
        raise SystemExit(1) from None
    for name, fmt in result.outputs.items():
        artifact = kwargs[output_artifacts[name]]
        _move(scratch / name, Path(artifact.path))
        artifact.metadata["cellpipe_format"] = fmt
    if step["metrics"]:
        for name, number in result.metrics.items():
            kwargs[METRICS_OUTPUT].log_metric(name, number)


def _move(source: Path, destination: Path) -> None:
    import shutil

    if destination.exists():
        shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(destination))


def _make_entry() -> Any:
    from kfp.dsl import Artifact, Input, Metrics, Output

    bundle = load_bundle()
    task = _argument("--cellpipe_step")
    step = bundle["steps"][task]
    parameters: list[inspect.Parameter] = []
    kind = inspect.Parameter.KEYWORD_ONLY
    annotations: dict[str, Any] = {}
    optional: set[str] = set()
    parameter_inputs, input_artifacts, output_artifacts = component_names(step)
    for name, input_name in parameter_inputs.items():
        spec = bundle["parameters"][name]
        annotations[input_name] = _PYTHON_TYPES[spec["type"]]
        if spec.get("optional"):  # `name = None`: kfp leaves an unset one out, so None
            annotations[input_name] = Optional[annotations[input_name]]  # noqa: UP045 (kfp reads typing's)
            optional.add(input_name)
    for input_name in input_artifacts.values():
        annotations[input_name] = Input[Artifact]
    for output_name in output_artifacts.values():
        annotations[output_name] = Output[Artifact]
    if step["metrics"]:
        annotations[METRICS_OUTPUT] = Output[Metrics]
    parameters = [
        inspect.Parameter(n, kind, annotation=a, **({"default": None} if n in optional else {}))
        for n, a in annotations.items()
    ]

    def cellpipe_step(**kwargs: Any) -> None:
        _run(bundle, task, kwargs)

    cellpipe_step.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    cellpipe_step.__annotations__ = dict(annotations)
    return cellpipe_step


def __getattr__(name: str) -> Any:
    # Built on first use: the executor imports this module with its own arguments in argv.
    if name == "cellpipe_step":
        return _make_entry()
    raise AttributeError(name)
