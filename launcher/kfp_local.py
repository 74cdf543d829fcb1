"""The `kfp-local` engine: the compiled pipeline as the kfp SDK itself runs it (kfp.local).

The reference for the `local` engine: the same components and the same runtime, driven by
kfp.local's SubprocessRunner (one process per step). It reports the steps when the run ends:
kfp.local runs a pipeline in one blocking call.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cellpipe.converter import CompileOptions, Pipeline, compile_yaml
from cellpipe.converter.bundle import make_bundle

from .executed import keep_source
from .kfp_reports import kfp_local_outcomes, read_bundle, write_notebook
from .local_engine import RunRequest, StepListener, guarded
from .store import RunRecord, RunStore, cellpipe_home, open_store

EXECUTOR_OUTPUT = "executor_output.json"
METRICS_OUTPUT = "cellpipe_metrics"

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _environment(**variables: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _podman_compatible_docker() -> Iterator[None]:
    """kfp.local's DockerRunner starts containers with auto_remove and expects a 404 when one
    is gone; podman's Docker API sometimes answers 500 "no such container" instead, and
    DockerRunner then reports a finished step as an error. While a run lasts, that one answer is
    read as the 404 (NotFound) Docker gives; every other error passes through unchanged."""
    from docker.api.client import APIClient
    from docker.errors import APIError, NotFound

    original = APIClient._raise_for_status

    def raise_for_status(self: APIClient, response: Any) -> None:
        try:
            original(self, response)
        except APIError as exc:
            if exc.status_code == 500 and "no such container" in str(exc.explanation):
                raise NotFound(str(exc), response=exc.response) from None
            raise

    APIClient._raise_for_status = raise_for_status
    try:
        yield
    finally:
        APIClient._raise_for_status = original


class KfpLocalEngine:
    name = "kfp-local"

    def __init__(
        self, store: RunStore | None = None, home: Path | None = None, image: str | None = None
    ) -> None:
        """With `image`, every step runs in that built image through kfp.local's DockerRunner
        (the Docker Engine API at DOCKER_HOST); without, in this environment."""
        self.home = home or cellpipe_home()
        self.store = store or open_store(self.home)
        self.image = image

    def run(self, request: RunRequest, listener: StepListener | None = None) -> RunRecord:
        listener = guarded(listener)
        from kfp import dsl, local

        from cellpipe.converter.kfp_ir import pipeline_function

        pipeline = request.pipeline
        workdir = request.notebook.resolve().parent
        record = self.store.create(
            str(request.notebook.resolve()),
            pipeline.settings.name,
            self.name,
            request.parameters,
            [(s.name, s.task) for s in pipeline.steps],
            self.home / "runs",
            request.run_id,
            notebook_hash=request.notebook_hash,
        )
        run_dir = Path(record.outputs)
        run_dir.mkdir(parents=True, exist_ok=True)
        bundle_path = run_dir / "bundle.json"
        bundle_path.write_text(json.dumps(make_bundle(pipeline, str(workdir))))
        keep_source(run_dir, request.source or request.notebook)
        if self.image:  # the image's own bundle and workdir are the ones that run
            for step in pipeline.steps:
                step.image = self.image
        options = CompileOptions(local_only=True)
        (run_dir / "pipeline.yaml").write_text(compile_yaml(pipeline, options))
        record.status = "Running"
        self.store.update_run(record)
        kfp_root = run_dir / "kfp"
        runner = local.DockerRunner() if self.image else local.SubprocessRunner(use_venv=False)
        local.init(runner=runner, pipeline_root=str(kfp_root), raise_on_error=False)
        given = {n: value for n, value in request.parameters.items() if value is not None}
        runnable = _without_parameters(pipeline, set(request.parameters) - set(given))
        graph = dsl.pipeline(name=pipeline.settings.name)(pipeline_function(runnable, options))
        variables = (
            {}
            if self.image
            else {"CELLPIPE_BUNDLE": str(bundle_path), "CELLPIPE_WORKDIR": str(workdir)}
        )
        with (
            _environment(**variables),
            _podman_compatible_docker() if self.image else contextlib.nullcontext(),
            open(run_dir / "kfp-local-log.txt", "w") as log,
            contextlib.redirect_stdout(log),
        ):
            try:
                with warnings.catch_warnings():
                    # kfp.local warns that our image name lacks "python"; the step runs in this
                    # environment, which has the runtime (ENVIRONMENT.md).
                    warnings.filterwarnings("ignore", "You may be attemping", RuntimeWarning)
                    # by the pipeline's input names (`self` is renamed: model.KFP_RESERVED_NAMES)
                    names = pipeline.kfp_parameter_names()
                    graph(**{names[n]: value for n, value in given.items()})
            except Exception as exc:  # kfp.local raises for what it cannot start
                record.error = f"kfp.local: {type(exc).__name__}: {exc}"
        self._collect(record, kfp_root, listener)
        return record

    def _collect(self, record: RunRecord, kfp_root: Path, listener: StepListener | None) -> None:
        runs = (
            sorted(kfp_root.iterdir(), key=lambda p: p.stat().st_mtime) if kfp_root.exists() else []
        )
        task_roots = {p.name: p for p in runs[-1].iterdir()} if runs else {}
        for step in record.steps.values():
            root = task_roots.get(step.task)
            output = root / EXECUTOR_OUTPUT if root else None
            if output is not None and output.exists():
                step.status = "Succeeded"
                step.outputs = str(root)
                record.metrics.update(_metrics(json.loads(output.read_text())))
            elif root is not None:
                step.status = "Failed"
                step.error = (
                    f"failed under kfp.local; see {root.parent.parent.parent}/kfp-local-log.txt"
                )
            else:
                step.status = "Cancelled"
                step.error = "not run: a step before it failed"
            self.store.update_step(record.run_id, step)
            if listener:
                listener("finished", step)
        statuses = {s.status for s in record.steps.values()}
        record.status = "Succeeded" if statuses == {"Succeeded"} and not record.error else "Failed"
        if record.status == "Failed" and not record.error:
            failed = [s.name for s in record.steps.values() if s.status == "Failed"]
            record.error = f"step {failed[0]!r} failed" if failed else "the run failed"
        record.finished = time.time()
        self._write_executed(record, task_roots)
        self.store.update_run(record)

    def _write_executed(self, record: RunRecord, task_roots: dict[str, Path]) -> None:
        """The executed notebook, from each step's report page (its HTML output), as a run
        on Kubeflow Pipelines gives it back."""
        run_dir = Path(record.outputs)
        bundle = read_bundle(run_dir)
        if bundle is None:
            return
        try:
            write_notebook(run_dir, bundle, record, kfp_local_outcomes(bundle, record, task_roots))
        except (OSError, ValueError) as exc:  # the run's record matters more than its notebook
            log.warning("cellpipe: no executed notebook for run %s: %s", record.run_id, exc)


def _without_parameters(pipeline: Pipeline, names: set[str]) -> Pipeline:
    """The pipeline without the optional parameters that are None in this run: kfp.local
    (kfp 2.16) takes no None argument and cannot leave out an optional pipeline input either.
    The bundle keeps them, so each step's entry gives them their default, None."""
    if not names:
        return pipeline
    trimmed = copy.deepcopy(pipeline)
    trimmed.parameters = {n: p for n, p in trimmed.parameters.items() if n not in names}
    for step in trimmed.steps:
        step.parameters = [n for n in step.parameters if n not in names]
    return trimmed


def _metrics(executor_output: dict[str, Any]) -> dict[str, float]:
    artifacts = executor_output.get("artifacts", {}).get(METRICS_OUTPUT, {}).get("artifacts", [])
    metrics: dict[str, float] = {}
    for artifact in artifacts:
        metrics.update(artifact.get("metadata", {}))
    return metrics
