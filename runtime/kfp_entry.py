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

from . import report_html, values
from .report_html import REPORT_OUTPUT
from .step import REPORT_FILE, StepFailed, fresh_main, run_prelude, run_step, write_report

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
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"cellpipe-{task}-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    namespace = fresh_main()
    try:
        try:
            run_prelude(bundle, namespace)
        except StepFailed as exc:  # no cell of the step ran: the report says where it failed
            write_report(scratch / REPORT_FILE, exc.cells, [], 0.0, exc)
            raise
        result = run_step(
            bundle,
            task,
            namespace,
            {name: kwargs.get(parameter_inputs[name]) for name in step["parameters"]},
            lambda name: values.load(Path(kwargs[input_artifacts[name]].path)),
            scratch,
        )
    except StepFailed as exc:
        # kfp's executor writes no outputs when the function fails, and a cluster's launcher
        # uploads none of a failed step: the page is written where kfp.local keeps it, for
        # the executed notebook; the KFP UI shows the failed step's log, not the page
        _publish_report(bundle, task, scratch, kwargs.get(REPORT_OUTPUT))
        print(exc.details, file=sys.stderr)
        raise SystemExit(1) from None
    for name, fmt in result.outputs.items():
        artifact = kwargs[output_artifacts[name]]
        _move(scratch / name, Path(artifact.path))
        artifact.metadata["cellpipe_format"] = fmt
    for saved in result.models.values():  # a Model artifact, in the runtime's format
        artifact = kwargs[saved["output"]]
        _move(scratch / saved["output"], Path(artifact.path))
        artifact.metadata.update(
            {"cellpipe_format": saved["format"], "cellpipe_versions": saved["versions"]}
        )
    if step["metrics"]:
        for name, number in result.metrics.items():
            kwargs[METRICS_OUTPUT].log_metric(name, number)
    _publish_report(bundle, task, scratch, kwargs.get(REPORT_OUTPUT))


def _publish_report(bundle: dict[str, Any], task: str, scratch: Path, artifact: Any) -> None:
    """The step's report as its HTML page (runtime/report_html.py) at the report output's
    path. The component declares the output, so a page is always written: one that says what
    went wrong when the report could not be read or drawn."""
    if artifact is None:  # report:disabled
        return
    step = bundle["steps"][task]
    notebook = bundle.get("notebook", "notebook")
    try:
        report = json.loads((scratch / REPORT_FILE).read_text(encoding="utf-8"))
        page = report_html.render(
            report, step["name"], report_html.step_sources(bundle, task), notebook
        )
    except Exception as exc:  # the step's own outcome stands; its page says what was lost
        problem = {"status": "Unknown", "error": f"cellpipe: no report of this step: {exc}"}
        page = report_html.render(problem, step["name"], {}, notebook)
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def declares_report(step: dict[str, Any]) -> bool:
    """Whether the step's component has the report output: as the compiled component says
    (the executor input kfp hands the step lists its outputs; both are compiled from the
    step's `report` option), else as the bundle says (on unless `report:disabled`)."""
    try:
        executor_input = json.loads(_argument("--executor_input"))
        return REPORT_OUTPUT in executor_input["outputs"]["artifacts"]
    except (SystemExit, ValueError, KeyError, TypeError):
        return bool(step.get("report", True))


def _move(source: Path, destination: Path) -> None:
    import shutil

    if destination.exists():
        shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(destination))


def _make_entry() -> Any:
    from kfp.dsl import HTML, Artifact, Input, Metrics, Model, Output

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
    for model_output in (step.get("models") or {}).values():
        annotations[model_output] = Output[Model]
    if declares_report(step):
        annotations[REPORT_OUTPUT] = Output[HTML]
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
