"""The command grammar of `cellpipe` and of `%cellpipe` (the same commands, options and
words): one argparse parser. The magic's variant (`for_magic=True`) takes NOTEBOOK optionally
(the kernel's notebook is the default) or as `--notebook PATH`, `submit --form`, `load` and
`debug` (the last two load into the kernel; the CLI has no kernel, so no such commands).

Choices come from the vocabulary (cellpipe.launcher.vocabulary), never from literals here.
"""

from __future__ import annotations

import argparse
from typing import Any

from cellpipe.launcher.vocabulary import (
    BUILDERS,
    BUILDERS_HERE,
    CLUSTER_ENGINES,
    FORMATS,
    KFP_ENGINE,
    LOCAL_ENGINES,
    SERVING_ENGINES,
    TUNE_ALGORITHMS,
    TUNING_ENGINES,
)
from cellpipe.runtime.version import VERSION as __version__

MAGIC_NOTEBOOK_HELP = "the .ipynb file (default: the notebook this kernel runs)"


def add_notebook_argument(parser: argparse.ArgumentParser, for_magic: bool) -> None:
    """NOTEBOOK: required for the CLI; for the magic optional, or `--notebook PATH`."""
    if not for_magic:
        parser.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
        return
    parser.add_argument("notebook", metavar="NOTEBOOK", nargs="?", help=MAGIC_NOTEBOOK_HELP)
    parser.add_argument(
        "--notebook", dest="notebook_option", metavar="PATH", help=MAGIC_NOTEBOOK_HELP
    )


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="what to print: text for people (default) or JSON for programs",
    )


def build_parser(
    *,
    for_magic: bool = False,
    prog: str = "cellpipe",
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The parser of every command; `for_magic`: the `%cellpipe` variant. `parser_class` is
    used for the subcommands too (the magic's turns errors into its own)."""
    parser = parser_class(
        prog=prog,
        description="Tag notebook cells as steps; run the notebook as a Kubeflow pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"cellpipe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compile_cmd = commands.add_parser(
        "compile",
        help="turn a tagged notebook into a Kubeflow Pipelines v2 pipeline (YAML)",
        description="Turn a tagged notebook into a Kubeflow Pipelines v2 pipeline (YAML).",
    )
    add_notebook_argument(compile_cmd, for_magic)
    compile_cmd.add_argument(
        "-o",
        "--output",
        metavar="PIPELINE.yaml",
        help="where to write the pipeline (default: NOTEBOOK with .yaml beside it; - for stdout)",
    )
    compile_cmd.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="what to print: a summary (text) or the pipeline as the UI sees it (json)",
    )
    compile_cmd.add_argument("--registry", help="registry the pipeline's image will be pushed to")
    compile_cmd.add_argument("--base-image", help="base image for steps without image: tags")
    compile_cmd.add_argument(
        "--gpu-resource",
        help="Kubernetes resource name of a GPU (default: c.CellPipe.gpu_resource, nvidia.com/gpu)",
    )
    compile_cmd.add_argument(
        "--gpu-label",
        help="node label whose value is the GPU type (default: c.CellPipe.gpu_label, "
        "nvidia.com/gpu.product)",
    )
    run_cmd = commands.add_parser(
        "run",
        help="compile and run the notebook as its pipeline on this machine",
        description="Compile and run the notebook as its pipeline on this machine.",
    )
    add_notebook_argument(run_cmd, for_magic)
    run_cmd.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter, typed by its default (repeatable)",
    )
    run_cmd.add_argument(
        "--image",
        metavar="REF",
        help="run every step inside this built image (kfp.local's DockerRunner; DOCKER_HOST)",
    )
    run_cmd.add_argument(
        "--build",
        action="store_true",
        help="build the image first (as `cellpipe build`), then run the steps inside it",
    )
    run_cmd.add_argument("--registry", metavar="HOST/REPO", help="with --build: where to push")
    run_cmd.add_argument(
        "--builder",
        choices=BUILDERS_HERE,
        help="with --build (default: c.CellPipe.builder, append)",
    )
    run_cmd.add_argument(
        "--force",
        action="store_true",
        help="with --image: run it even if it was built from other notebook code",
    )
    run_cmd.add_argument(
        "--engine",
        choices=LOCAL_ENGINES,
        default=None,
        help="local: cellpipe's fast executor (default); kfp-local: the kfp SDK's kfp.local",
    )
    add_format_argument(run_cmd)
    run_cmd.add_argument("--no-cache", action="store_true", help="run every step again")
    run_cmd.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="show each step's line only, not what it printed (`cellpipe logs RUN` has it)",
    )
    run_cmd.add_argument(
        "--require-gpus",
        action="store_true",
        help="fail, rather than run on the CPU, when a step asks for GPUs this machine lacks",
    )
    add_build_arguments(commands, for_magic)
    add_submit_arguments(commands, for_magic)
    add_tune_arguments(commands, for_magic)
    add_serve_arguments(commands)
    add_runs_arguments(commands)
    if for_magic:
        add_load_arguments(commands)
        add_debug_arguments(commands)
    return parser


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
    parser.add_argument(
        "--host",
        metavar="URL",
        help="Kubeflow Pipelines API (c.CellPipe.kfp_host, $KF_PIPELINES_ENDPOINT)",
    )


def add_submit_arguments(commands: Any, for_magic: bool = False) -> None:
    submit = commands.add_parser(
        "submit",
        help="submit the pipeline to Kubeflow Pipelines, or a step as a training job",
        description="Build (or reuse) the image, compile, and submit: the whole pipeline to "
        "Kubeflow Pipelines (--engine kfp), or one step with the steps before it as a "
        "distributed training job (--engine pytorchjob|tfjob|xgboostjob|mpijob|trainjob). "
        "Prints the run's id; `cellpipe status RUN` follows it.",
    )
    add_notebook_argument(submit, for_magic)
    submit.add_argument(
        "--engine", choices=CLUSTER_ENGINES, default=KFP_ENGINE, help=f"default: {KFP_ENGINE}"
    )
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
        choices=BUILDERS_HERE,
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
    add_format_argument(submit)
    add_cluster_arguments(submit)
    if for_magic:
        submit.add_argument(
            "--form",
            action="store_true",
            help="show a form (engine, parameters, GPUs per step, workers) to submit from, "
            "and follow the run with a progress bar per step",
        )
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


def add_tune_arguments(commands: Any, for_magic: bool = False) -> None:
    """`cellpipe tune` (issue 18): its whole grammar in this one function."""
    tune = commands.add_parser(
        "tune",
        help="search the notebook's parameters for the best value of a metric",
        description="Run trials of the pipeline with parameters from the search spaces and "
        "report the best (here, trials side by side, the steps that use no tuned parameter "
        "run once; or --engine katib: a Katib Experiment). SPACE: 1..6 (integers), "
        "0.001..0.1 (floats), 0.001..0.1:log, 0.1..0.9:0.2 (steps), a,b,c (values).",
    )
    add_notebook_argument(tune, for_magic)
    tune.add_argument(
        "--objective", required=True, metavar="METRIC", help="a metric of the notebook"
    )
    direction = tune.add_mutually_exclusive_group(required=True)
    direction.add_argument(
        "--maximize", action="store_true", help="the best trial has the highest objective"
    )
    direction.add_argument(
        "--minimize", action="store_true", help="the best trial has the lowest objective"
    )
    tune.add_argument(
        "--search",
        action="append",
        default=[],
        required=True,
        metavar="NAME=SPACE",
        help="a parameter and its space (repeatable)",
    )
    tune.add_argument("--trials", type=int, metavar="N", help="default: 12; grid: the whole grid")
    tune.add_argument("--parallel", type=int, metavar="P", help="default: the cores")
    tune.add_argument(
        "--algorithm",
        choices=TUNE_ALGORITHMS,
        default="random",
        help="how each trial's parameters are chosen (default: random)",
    )
    tune.add_argument("--seed", type=int, metavar="S", help="the search's seed, to repeat it")
    tune.add_argument("--goal", type=float, metavar="VALUE", help="stop once a trial reaches it")
    tune.add_argument(
        "--max-failed", type=int, default=3, metavar="N", help="stop after more failed trials"
    )
    tune.add_argument(
        "--engine",
        choices=TUNING_ENGINES,
        default=TUNING_ENGINES[0],
        help="local: the trials here (default); katib: a Katib Experiment",
    )
    tune.add_argument("--image", metavar="REF", help="katib: run in this built image (no build)")
    tune.add_argument("--registry", metavar="HOST/REPO", help="katib: where the image is pushed")
    tune.add_argument("--builder", choices=BUILDERS_HERE, help="katib: how the image is built")
    tune.add_argument("--namespace", metavar="NS", help="katib: Kubernetes namespace")
    tune.add_argument("--pvc", metavar="NAME", help="katib: an existing claim for shared values")
    tune.add_argument("--storage-size", default="10Gi", metavar="SIZE", help="katib: 10Gi")
    tune.add_argument(
        "--dry-run", action="store_true", help="katib: print the objects and send nothing"
    )
    add_format_argument(tune)
    tune.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    tune.add_argument("--context", metavar="NAME", help="kubeconfig context")


def add_serve_arguments(commands: Any) -> None:
    """`cellpipe serve` (issue 19): its whole grammar in this one function."""
    serve = commands.add_parser(
        "serve",
        help="serve the model a run kept: here (KServe's model server) or as an InferenceService",
        description="Serve a run's model (a step's `model:NAME` value). local: KServe's model "
        "server on 127.0.0.1 with the V1 and V2 protocols, until Ctrl-C; kserve: a KServe "
        "InferenceService, waited for until Ready.",
    )
    serve.add_argument("run", metavar="RUN", help="the run's id, or the start of it")
    serve.add_argument("--model", metavar="NAME", help="which model (default: the run's only one)")
    serve.add_argument(
        "--engine",
        choices=SERVING_ENGINES,
        default=SERVING_ENGINES[0],
        help="local: KServe's model server here (default); kserve: an InferenceService",
    )
    serve.add_argument("--name", metavar="SERVICE", help="the model's name in its URLs")
    serve.add_argument(
        "--port", type=int, metavar="P", help="local: the port (default: a free one)"
    )
    serve.add_argument("--gpus", metavar="N[:TYPE]", help="kserve: GPUs for the predictor")
    serve.add_argument("--min-replicas", type=int, metavar="N", help="kserve: the fewest replicas")
    serve.add_argument("--max-replicas", type=int, metavar="N", help="kserve: the most replicas")
    serve.add_argument("--image", metavar="REF", help="kserve: the custom predictor's image")
    serve.add_argument(
        "--storage-uri",
        metavar="URI",
        help="kserve: where the cluster reads the model (s3://, pvc://)",
    )
    serve.add_argument("--namespace", metavar="NS", help="kserve: Kubernetes namespace")
    serve.add_argument("--service-account", metavar="NAME", help="kserve: reads the storage")
    serve.add_argument("--dry-run", action="store_true", help="kserve: print it, create nothing")
    add_format_argument(serve)
    serve.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    serve.add_argument("--context", metavar="NAME", help="kubeconfig context")


def add_build_arguments(commands: Any, for_magic: bool = False) -> None:
    build = commands.add_parser(
        "build",
        help="build and push the image the pipeline's steps run in",
        description="Build the image the pipeline's steps run in (requirements, runtime, step "
        "code) and push it. Nothing changed, nothing built: the tag is a content hash.",
    )
    add_notebook_argument(build, for_magic)
    build.add_argument("--registry", metavar="HOST/REPO", help="where to push the image")
    build.add_argument("--base", metavar="IMAGE", help="base image (default: the notebook's)")
    build.add_argument(
        "--builder",
        choices=BUILDERS,
        help="append: layers added through the registry API, no daemon; engine: a Docker "
        "Engine API (DOCKER_HOST: Docker or podman); kaniko: a Job to build in the cluster "
        "(default: c.CellPipe.builder, else append)",
    )
    add_format_argument(build)
    add_file_size_argument(build)
    build.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="kaniko: where to write the Job and its context (default: cellpipe-build/ beside "
        "the notebook)",
    )
    requirements = commands.add_parser(
        "requirements",
        help="show what the pipeline's image needs, and why",
        description="Show the requirements found for the notebook (pinned to its kernel's "
        "environment), the local modules and files that go into the image, and what is left out.",
    )
    add_notebook_argument(requirements, for_magic)
    add_format_argument(requirements)
    add_file_size_argument(requirements)


def add_file_size_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-file-size",
        type=float,
        default=20.0,
        metavar="MB",
        help="files the notebook names are baked into the image up to this size (default 20 MB)",
    )


def add_runs_arguments(commands: Any) -> None:
    runs = commands.add_parser(
        "runs", help="list runs of every engine", description="List runs, newest first."
    )
    runs.add_argument("--notebook", metavar="NOTEBOOK", help="only this notebook's runs")
    runs.add_argument("--engine", metavar="ENGINE", help="only runs of this engine")
    runs.add_argument("--status", metavar="STATUS", help="only runs with this status")
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="default: 50")
    runs.add_argument(
        "--refresh", action="store_true", help="ask the engines for unfinished runs' status"
    )
    add_format_argument(runs)
    add_cluster_arguments(runs)

    status = commands.add_parser(
        "status",
        help="a run's status and its steps'",
        description="Show a run (RUN is its id, or the start of it), asking its engine first.",
    )
    status.add_argument("run", metavar="RUN", help="the run's id, or the start of it")
    add_format_argument(status)
    status.add_argument(
        "--no-refresh", action="store_true", help="show the stored record; ask no engine"
    )
    status.add_argument(
        "--compiled", action="store_true", help="print the compiled pipeline (or job) kept"
    )
    add_cluster_arguments(status)

    logs = commands.add_parser(
        "logs",
        help="what a run's steps printed",
        description="Print the run's log: its own lines, then each step's output in order "
        "under a header with the step's status (--step: one step's log only). Cluster runs' "
        "from the step pods.",
    )
    logs.add_argument("run", metavar="RUN", help="the run's id, or the start of it")
    logs.add_argument("--step", metavar="STEP", help="a step's name or task name")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing while the run goes on"
    )
    add_cluster_arguments(logs)

    cancel = commands.add_parser("cancel", help="stop a run", description="Stop a run.")
    cancel.add_argument("run", metavar="RUN", help="the run's id, or the start of it")
    add_format_argument(cancel)
    add_cluster_arguments(cancel)

    delete = commands.add_parser(
        "delete",
        help="forget a run (and delete it in its engine)",
        description="Delete a run: its record and folder here, and what it made in its "
        "engine (the KFP run; the training job and the claim cellpipe created for it).",
    )
    delete.add_argument("run", metavar="RUN", help="the run's id, or the start of it")
    delete.add_argument(
        "--keep-remote", action="store_true", help="leave the run in its engine; forget it here"
    )
    delete.add_argument(
        "--force", action="store_true", help="delete a run that is still going on here too"
    )
    add_cluster_arguments(delete)

    gpus = commands.add_parser(
        "gpus",
        help="the cluster's GPU types, totals and free counts",
        description="List each GPU type of the cluster's nodes with its resource name, total, "
        "free (allocatable minus what running pods request) and nodes; where nodes may not "
        "be listed, the configured c.CellPipe.gpu_types with counts unknown.",
    )
    add_format_argument(gpus)
    gpus.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    gpus.add_argument("--context", metavar="NAME", help="kubeconfig context")


def add_load_arguments(commands: Any) -> None:
    """`%cellpipe load RUN NAME [--step S] [--as VAR]` (the magic only)."""
    load = commands.add_parser(
        "load",
        help="bring a value (or metric) a run kept into this kernel",
        description="Bind NAME, as step S of run RUN handed it on (default: the last step "
        "that hands it on), or the run's metric NAME, in this kernel's namespace.",
    )
    load.add_argument("run", metavar="RUN", help="the run's id (or the start of it)")
    load.add_argument("name", metavar="NAME", help="a variable a step handed on, or a metric")
    load.add_argument("--step", metavar="S", help="the step's name or task name")
    load.add_argument("--as", dest="target", metavar="VAR", help="bind it to VAR (default NAME)")


def add_debug_arguments(commands: Any) -> None:
    """`%cellpipe debug RUN STEP` (the magic only: it loads into the kernel)."""
    debug = commands.add_parser(
        "debug",
        help="load what a step of a run received (values, parameters) into this kernel",
        description="Load the values and parameters step STEP of run RUN received into this "
        "kernel's namespace, and say which cell failed, to re-run it here. For runs of the "
        "local and kfp-local engines.",
    )
    debug.add_argument("run", metavar="RUN", help="the run's id (or the start of it)")
    debug.add_argument(
        "step",
        metavar="STEP",
        nargs="+",
        help='the step\'s name or task name (quote a name with spaces: "train model")',
    )
