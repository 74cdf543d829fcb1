"""What the cluster engines (`kfp` and the training engines) share: the request to submit,
the record kept before anything is sent, and the end of a submission that failed.

A cluster run is recorded first (Pending, with its compiled pipeline or job objects, image,
parameters, GPU choices and the notebook's content hash); only then is anything sent. A
submission that never reaches its engine ends Failed with the error kept, never lost.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from cellpipe.converter import CompileOptions, Pipeline

from .k8s import KubeSettings
from .store import RunRecord, RunStore, new_run_id
from .vocabulary import FINISHED, UNFINISHED, RunStatus

if TYPE_CHECKING:
    from .config import CellPipe
    from .gpus import GpuAsk


def notebook_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class SubmitRequest:
    """A compiled pipeline, ready for a cluster engine."""

    pipeline: Pipeline
    notebook: Path
    parameters: dict[str, Any]
    options: CompileOptions
    images: dict[str, str]  # step display name -> the image it runs in
    gpus: dict[str, dict[str, Any]] = field(default_factory=dict)  # the GPU choices
    namespace: str | None = None  # None: the engine's default (kubeconfig context, profile)
    kube: KubeSettings = field(default_factory=KubeSettings)
    run_id: str = field(default_factory=new_run_id)
    notebook_hash: str | None = None

    @property
    def image(self) -> str:
        """The image of most steps (the one recorded with the run)."""
        values = list(self.images.values())
        return max(values, key=values.count) if values else ""


@dataclass
class Submission:
    """What a submit sends (and `--dry-run` prints): YAML documents, and words about them."""

    engine: str
    yaml: str  # the compiled pipeline (KFP) or the Kubernetes objects (training), as sent
    objects: list[dict[str, Any]]
    summary: list[str] = field(default_factory=list)  # one line each, for people
    external: dict[str, Any] = field(default_factory=dict)  # names known before sending


@dataclass
class SubmitOptions:
    """A submit's choices beyond the pipeline, each engine reading its own: the front doors
    fill it from their input (flags, a JSON body, widget fields) and nothing else."""

    engine: str
    namespace: str | None = None  # None: c.CellPipe.namespace, else the engine's default
    kube: KubeSettings = field(default_factory=KubeSettings)
    # kfp
    host: str | None = None  # None: c.CellPipe.kfp_host, else $KF_PIPELINES_ENDPOINT
    experiment: str | None = None
    ui_url: str | None = None
    # training engines
    step: str | None = None
    workers: int = 1
    gpus_per_worker: int | None = None
    gpu_type: str | None = None
    pvc: str | None = None
    storage_size: str = "10Gi"
    storage_class: str | None = None
    runtime: str = "torch-distributed"


class ClusterEngine(Protocol):
    """An engine that submits to a cluster. Registered by name (cellpipe.launcher.plugins);
    built by `for_submit` to submit a run and by `for_tracking` to follow one."""

    location: ClassVar[str]  # "cluster"
    name: str
    store: RunStore

    @classmethod
    def for_submit(
        cls, name: str, options: SubmitOptions, config: CellPipe, store: RunStore, home: Path
    ) -> ClusterEngine: ...

    @classmethod
    def for_tracking(
        cls, name: str, config: CellPipe, kube: KubeSettings, store: RunStore, home: Path
    ) -> ClusterEngine: ...

    def gpu_asks(self, request: SubmitRequest) -> list[GpuAsk]:
        """What the run asks of the cluster's GPUs (checked before anything is built)."""
        ...

    def plan(self, request: SubmitRequest) -> Submission: ...

    def submit(self, request: SubmitRequest, submission: Submission) -> RunRecord: ...

    def refresh(self, record: RunRecord) -> RunRecord: ...

    def cancel(self, record: RunRecord) -> RunRecord: ...

    def delete(self, record: RunRecord) -> list[str]: ...

    def logs(self, record: RunRecord, step: str | None, follow: bool) -> Any: ...


def record_submission(
    store: RunStore,
    home: Path,
    engine: str,
    request: SubmitRequest,
    submission: Submission,
) -> RunRecord:
    """Record the run as Pending, before anything is sent, and keep what will be sent
    beside it (runs/RUN_ID/submitted.yaml) as well as in the store."""
    pipeline = request.pipeline
    record = store.create(
        str(request.notebook.resolve()),
        pipeline.settings.name,
        engine,
        request.parameters,
        [(s.name, s.task) for s in pipeline.steps],
        home / "runs",
        request.run_id,
        notebook_hash=request.notebook_hash,
        image=request.image,
        compiled=submission.yaml,
        gpus=request.gpus,
        external=dict(submission.external),
    )
    run_dir = Path(record.outputs)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "submitted.yaml").write_text(submission.yaml)
    return record


def fail_submission(store: RunStore, record: RunRecord, error: str) -> RunRecord:
    """A run that did not reach its engine: Failed, its error kept, its steps never run."""
    record.status = RunStatus.FAILED
    record.error = error
    record.finished = time.time()
    for step in record.steps.values():
        if step.status in UNFINISHED:
            step.status = "Cancelled"
            step.error = "the run never started"
            store.update_step(record.run_id, step)
    store.update_run(record)
    return record


def set_status(store: RunStore, record: RunRecord, status: str, error: str | None) -> None:
    """Record a status read from the engine (and its end time, once it has ended)."""
    changed = (record.status, record.error) != (status, error)
    record.status = status
    record.error = error
    if status in FINISHED and record.finished is None:
        record.finished = time.time()
    if changed or status in FINISHED:
        store.update_run(record)
