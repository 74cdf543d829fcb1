"""`cellpipe submit`: the notebook's pipeline to Kubeflow Pipelines, or one step of it as a
distributed training job. A thin adapter over cellpipe.launcher (kfp_engine, training, gpus).

Settings, in the one precedence: the command's options > the notebook's metadata.cellpipe >
c.CellPipe.* in the Jupyter config files (the server extension's own) > defaults.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from cellpipe.launcher.errors import UserError

ENGINES = ("kfp", "pytorchjob", "tfjob", "xgboostjob", "mpijob", "trainjob")
CONFIG_FILES = ("jupyter_server_config", "jupyter_cellpipe_config")
EXIT_SUBMIT_FAILED = 1


# --- configuration -----------------------------------------------------------------------------


def load_config() -> Any:
    """c.CellPipe from the Jupyter config files (jupyter_server_config.{json,py} and
    jupyter_cellpipe_config.{json,py} in every Jupyter config folder, the user's last)."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets import TraitError
    from traitlets.config import Config
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    from cellpipe.launcher.config import CellPipe

    merged = Config()
    for folder in reversed(jupyter_config_path()):
        for base in CONFIG_FILES:
            for loader, suffix in ((JSONFileConfigLoader, ".json"), (PyFileConfigLoader, ".py")):
                path = Path(folder) / f"{base}{suffix}"
                if not path.is_file():
                    continue
                try:
                    merged.merge(loader(path.name, str(path.parent)).load_config())
                except Exception as exc:  # a broken config file is the user's to fix
                    raise UserError(f"cannot read the Jupyter config file {path}: {exc}") from None
    try:
        return CellPipe(config=merged)
    except TraitError as exc:
        raise UserError(f"Jupyter configuration: {exc}") from None


def configured(config: Any, name: str) -> bool:
    """Whether c.CellPipe.NAME was set in a config file (not just its default)."""
    return name in (config.config.get("CellPipe") or {})


# --- arguments ---------------------------------------------------------------------------------


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
    parser.add_argument(
        "--host",
        metavar="URL",
        help="Kubeflow Pipelines API (c.CellPipe.kfp_host, $KF_PIPELINES_ENDPOINT)",
    )


def add_submit_arguments(commands: Any) -> None:
    submit = commands.add_parser(
        "submit",
        help="submit the pipeline to Kubeflow Pipelines, or a step as a training job",
        description="Build (or reuse) the image, compile, and submit: the whole pipeline to "
        "Kubeflow Pipelines (--engine kfp), or one step with the steps before it as a "
        "distributed training job (--engine pytorchjob|tfjob|xgboostjob|mpijob|trainjob). "
        "Prints the run's id; `cellpipe status RUN` follows it.",
    )
    submit.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
    submit.add_argument("--engine", choices=ENGINES, default="kfp", help="default: kfp")
    submit.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter, typed by its default (repeatable)",
    )
    submit.add_argument(
        "--image", metavar="REF", help="run in this image, already built (no build)"
    )
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be sent (the pipeline or the Kubernetes objects, as YAML) and "
        "send nothing",
    )
    submit.add_argument("--registry", metavar="HOST/REPO", help="where the image is pushed")
    submit.add_argument(
        "--builder",
        choices=["append", "engine"],
        default=None,
        help="how the image is built when it is not there yet (default: c.CellPipe.builder "
        "when set, else append)",
    )
    submit.add_argument("--namespace", metavar="NS", help="Kubernetes namespace / Kubeflow profile")
    submit.add_argument(
        "--gpu",
        action="append",
        default=[],
        metavar="STEP=N[:TYPE]",
        help="GPUs for a step (its name or task name), over its tags; N=0 takes them away "
        "(repeatable)",
    )
    submit.add_argument("--format", choices=["text", "json"], default="text")
    add_cluster_arguments(submit)
    kfp = submit.add_argument_group("Kubeflow Pipelines (--engine kfp)")
    kfp.add_argument("--experiment", metavar="NAME", help="default: the notebook's, else Default")
    kfp.add_argument("--ui-url", metavar="URL", help="the KFP UI, for links (default: from --host)")
    training = submit.add_argument_group("training jobs (--engine pytorchjob|tfjob|...)")
    training.add_argument(
        "--step",
        metavar="NAME",
        help="the step to train (default: the one step with GPUs, else the last step)",
    )
    training.add_argument("--workers", type=int, default=1, metavar="N", help="default: 1")
    training.add_argument(
        "--gpus-per-worker", type=int, metavar="M", help="default: the step's gpu: tag"
    )
    training.add_argument("--gpu-type", metavar="TYPE", help="default: the step's gpu: tag")
    training.add_argument(
        "--pvc", metavar="NAME", help="an existing claim for the run's values and outputs"
    )
    training.add_argument(
        "--storage-size", default="10Gi", metavar="SIZE", help="the run's own claim: 10Gi"
    )
    training.add_argument("--storage-class", metavar="NAME", help="the run's own claim's class")
    training.add_argument(
        "--runtime",
        default="torch-distributed",
        metavar="NAME",
        help="trainjob: the ClusterTrainingRuntime (default: torch-distributed)",
    )


# --- submit ------------------------------------------------------------------------------------


def submit_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cellpipe.converter import NotebookError, build_pipeline, read_notebook
    from cellpipe.converter.params import ParameterError, parameter_values
    from cellpipe.launcher.cluster import SubmitRequest, notebook_hash
    from cellpipe.launcher.gpus import GpuChoiceError, apply_gpu_choices, configured_types
    from cellpipe.launcher.k8s import KubeSettings
    from cellpipe.launcher.store import cellpipe_home, new_run_id

    config = load_config()
    notebook = Path(args.notebook)
    try:
        raw = read_notebook(notebook)
    except NotebookError as exc:
        raise UserError(f"{notebook}: {exc}") from None
    options = config.compile_options(raw.get("metadata") or {}, registry=args.registry)
    pipeline = build_pipeline(raw, str(notebook), options)
    for warning in pipeline.warnings:
        if "no registry is configured" in warning.message and (args.image or args.dry_run):
            continue  # an image given (or none needed) makes the registry moot
        print(f"cellpipe: warning: {warning.for_people(str(notebook))}", file=err)
    if pipeline.errors:
        raise UserError("\n".join(e.for_people(str(notebook)) for e in pipeline.errors))
    try:
        parameters = parameter_values(pipeline.parameters, args.parameter)
    except ParameterError as exc:
        raise UserError(f"{notebook}: {exc}") from None
    types = configured_types(config.gpu_types, config.gpu_resource)
    try:
        gpus = apply_gpu_choices(pipeline, args.gpu, types, config.gpu_resource)
    except GpuChoiceError as exc:
        raise UserError(f"{notebook}: {exc}") from None
    kube = KubeSettings(args.kubeconfig, args.context, args.namespace or config.namespace)
    request = SubmitRequest(
        pipeline=pipeline,
        notebook=notebook,
        parameters=parameters,
        options=options,
        images={s.name: s.image for s in pipeline.steps},
        gpus=gpus,
        namespace=args.namespace or config.namespace,
        kube=kube,
        run_id=new_run_id(),
        notebook_hash=notebook_hash(notebook),
    )
    engine = _engine(args, config, kube, cellpipe_home())
    _check_gpus(args, config, engine, request, types, err)
    if args.image:
        request.images = {s.name: args.image for s in pipeline.steps}
    elif not args.dry_run:
        request.images = _build(args, config, pipeline, notebook, raw, err)
    submission = _plan(engine, request)
    if args.dry_run:
        _print_dry_run(args, submission, request, out)
        return 0
    record = engine.submit(request, submission)
    _print_submitted(args, record, submission, out, err)
    return 0 if record.status != "Failed" else EXIT_SUBMIT_FAILED


def _engine(args: argparse.Namespace, config: Any, kube: Any, home: Path) -> Any:
    if args.engine == "kfp":
        from cellpipe.launcher.kfp_engine import KfpEngine, KfpSettings

        settings = KfpSettings.from_environment(
            host=args.host or config.kfp_host,
            token=config.kfp_token,
            namespace=args.namespace or config.namespace,
            experiment=args.experiment,
            ui_url=args.ui_url,
            kube=kube,
        )
        return KfpEngine(settings, home=home)
    from cellpipe.launcher.training import TrainingEngine, TrainingOptions

    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.gpus_per_worker is not None and args.gpus_per_worker < 0:
        raise UserError("--gpus-per-worker cannot be negative")
    options = TrainingOptions(
        step=args.step,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        gpu_type=args.gpu_type,
        pvc=args.pvc,
        storage_size=args.storage_size,
        storage_class=args.storage_class,
        runtime=args.runtime,
        gpu_resource=config.gpu_resource,
        gpu_label=config.gpu_label,
        gpu_tolerations=config.gpu_tolerations,
    )
    return TrainingEngine(args.engine, options, kube, home=home)


def _plan(engine: Any, request: Any) -> Any:
    from cellpipe.launcher.training import TrainingError

    try:
        return engine.plan(request)
    except TrainingError as exc:
        raise UserError(f"{request.notebook}: {exc}") from None


def _check_gpus(
    args: argparse.Namespace, config: Any, engine: Any, request: Any, types: Any, err: TextIO
) -> None:
    """Refuse, before anything is built or sent, what no node can ever satisfy."""
    from cellpipe.launcher import gpus

    if engine.name == "kfp":
        asks = gpus.asks_of(request.pipeline, config.gpu_resource)
    else:
        _plan(engine, request)
        asks = engine.last_plan.asks()
    if not asks:
        return
    if args.dry_run:  # sends nothing, so asks nothing of the cluster either
        inventory = gpus.from_configuration(types, config.gpu_resource, config.gpu_label)
    else:
        inventory = gpus.cluster_inventory(
            request.kube, types, config.gpu_resource, config.gpu_label
        )
    problems = gpus.check_asks(asks, inventory)
    if problems:
        raise UserError(f"{request.notebook}: " + f"\n{request.notebook}: ".join(problems))
    if inventory.message and not args.dry_run:
        print(
            f"cellpipe: note: GPU choices not checked against the nodes: {inventory.message}",
            file=err,
        )


def _build(
    args: argparse.Namespace,
    config: Any,
    pipeline: Any,
    notebook: Path,
    raw: dict[str, Any],
    err: TextIO,
) -> dict[str, str]:
    """Build the image (or find it built: the tag is a content hash); step -> image."""
    from cellpipe.launcher.build import BuildError, BuildRequest, build_image
    from cellpipe.launcher.registry import RegistryError

    registry = pipeline.settings.registry
    if not registry:
        raise UserError(
            f"{notebook}: a cluster pulls the image from a registry: give --registry HOST/REPO "
            "(or metadata.cellpipe.registry, or c.CellPipe.registry), or --image REF"
        )
    builder = args.builder or (config.builder if configured(config, "builder") else "append")
    if builder == "kaniko":
        raise UserError(
            "the kaniko builder builds inside the cluster: run `cellpipe build --builder kaniko`, "
            "apply its Job, then submit with --image REF"
        )
    try:
        results = build_image(
            BuildRequest(pipeline, notebook, raw, registry=registry, builder=builder),
            lambda message: print(f"  {message}", file=err, flush=True),
        )
    except (BuildError, RegistryError) as exc:
        raise UserError(f"{notebook}: {exc}") from None
    for warning in results[0].warnings:
        print(f"cellpipe: warning: {notebook}: {warning}", file=err)
    images = {}
    for result in results:
        for name in result.steps:
            images[name] = result.image
    return images


def _print_dry_run(args: argparse.Namespace, submission: Any, request: Any, out: TextIO) -> None:
    if args.format == "json":
        print(
            json.dumps(
                {
                    "engine": submission.engine,
                    "dry_run": True,
                    "summary": submission.summary,
                    "images": request.images,
                    "gpus": request.gpus,
                    "parameters": request.parameters,
                    "external": submission.external,
                    "objects": submission.objects,
                },
                indent=2,
            ),
            file=out,
        )
        return
    lines = [f"# cellpipe submit --dry-run: nothing was sent ({submission.engine})"]
    lines += [f"# {line}" for line in submission.summary]
    if not args.image:
        lines.append("# image: the one a build would produce (not built in a dry run)")
    out.write("\n".join(lines) + "\n" + submission.yaml)


def _print_submitted(
    args: argparse.Namespace, record: Any, submission: Any, out: TextIO, err: TextIO
) -> None:
    if record.status == "Failed":
        print(f"cellpipe: error: run {record.run_id} was not submitted: {record.error}", file=err)
    if args.format == "json":
        result = record.to_json()
        keys = ("run_id", "engine", "status", "error", "image", "gpus", "external", "links")
        print(json.dumps({k: result[k] for k in keys}, indent=2), file=out)
        return
    if record.status == "Failed":
        print(f"run {record.run_id}: Failed (kept: `cellpipe status {record.run_id}`)", file=out)
        return
    external = record.external
    if record.engine == "kfp":
        where = f"Kubeflow Pipelines run {external.get('run_id')}"
        version = "uploaded" if external.get("version_uploaded") else "unchanged, reused"
        details = [
            f"pipeline {external.get('pipeline')!r}, "
            f"version {external.get('version_name')!r} ({version})"
        ]
    else:
        where = f"{external.get('kind')} {external.get('name')} in {external.get('namespace')}"
        details = list(submission.summary)
    print(f"run {record.run_id}: {record.status} on {record.engine} ({where})", file=out)
    for line in details:
        print(f"  {line}", file=out)
    for link in record.links.values():
        print(f"  {link}", file=out)
    print(
        f"follow it: cellpipe status {record.run_id}; cellpipe logs {record.run_id} --follow",
        file=out,
    )
