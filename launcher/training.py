"""The training engines: one step of the pipeline as a distributed training job, submitted,
followed, cancelled and deleted through the Kubernetes API.

    pytorchjob  tfjob  xgboostjob  mpijob   (the training operator, kubeflow.org/v1)
    trainjob                                (Kubeflow Trainer, trainer.kubeflow.org/v1alpha1)

What is sent comes from the plan (cellpipe.launcher.training_plan), whose objects come from
pure builders (cellpipe.launcher.training_objects); this module holds what has side effects.
The steps before the trained one run once, in a `prepare` Job, and leave their values on the
run's PersistentVolumeClaim. What the trained step hands on (a model), from the worker of
rank 0, stays on that claim under runs/RUN_ID/outputs as the run's output, and its metrics
come back in the pod's termination message. Deleting the run deletes the claim cellpipe
created (and with it the outputs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .cluster import (
    Submission,
    SubmitOptions,
    SubmitRequest,
    fail_submission,
    record_submission,
    set_status,
)
from .cluster_objects import ClusterObjects, CustomResource
from .gpus import GpuAsk
from .k8s import (
    REQUEST_TIMEOUT,
    RUN_LABEL,
    STEP_LABEL,
    ClusterError,
    KubeSettings,
    connect,
    explain,
    kubeconfig_path,
    label_value,
    pod_log,
    to_dict,
    to_yaml,
)
from .store import RunRecord, RunStore, cellpipe_home, open_store
from .training_objects import KINDS
from .training_plan import TrainingError, TrainingOptions, TrainingPlan, plan_training
from .vocabulary import FINISHED, UNFINISHED

if TYPE_CHECKING:
    from .config import CellPipe


class TrainingEngine:
    """Submits a training job and follows, cancels and deletes it through the Kubernetes API."""

    location: ClassVar[str] = "cluster"

    def __init__(
        self,
        engine: str,
        options: TrainingOptions | None = None,
        kube: KubeSettings | None = None,
        store: RunStore | None = None,
        home: Path | None = None,
    ) -> None:
        if engine not in KINDS:
            raise TrainingError(f"unknown training engine {engine!r}")
        self.name = engine
        self.kind = KINDS[engine]
        self.options = options or TrainingOptions()
        self.kube = kube or KubeSettings()
        self.home = home or cellpipe_home()
        self.store = store or open_store(self.home)
        self.last_plan: TrainingPlan | None = None

    @classmethod
    def for_submit(
        cls,
        name: str,
        options: SubmitOptions,
        config: CellPipe,
        store: RunStore,
        home: Path,
    ) -> TrainingEngine:
        """The engine a submit uses: the training choices of `options`, the GPU resource,
        label and tolerations of the configuration. TrainingError for what cannot be asked."""
        if options.workers < 1:
            raise TrainingError("workers must be at least 1")
        if options.gpus_per_worker is not None and options.gpus_per_worker < 0:
            raise TrainingError("gpus per worker cannot be negative")
        training = TrainingOptions(
            step=options.step,
            workers=options.workers,
            gpus_per_worker=options.gpus_per_worker,
            gpu_type=options.gpu_type,
            pvc=options.pvc,
            storage_size=options.storage_size,
            storage_class=options.storage_class,
            runtime=options.runtime,
            gpu_resource=config.gpu_resource,
            gpu_label=config.gpu_label,
            gpu_tolerations=config.gpu_tolerations,
        )
        kube = options.kube
        namespace = options.namespace or config.namespace
        if kube.namespace is None and namespace:
            kube = dataclasses.replace(kube, namespace=namespace)
        return cls(name, training, kube, store=store, home=home)

    @classmethod
    def for_tracking(
        cls,
        name: str,
        config: CellPipe,
        kube: KubeSettings,
        store: RunStore,
        home: Path,
    ) -> TrainingEngine:
        """The engine that follows a run of `name` (its objects are read back from the
        cluster; the configuration holds nothing it needs)."""
        return cls(name, kube=kube, store=store, home=home)

    def gpu_asks(self, request: SubmitRequest) -> list[GpuAsk]:
        """The GPUs each worker (and each step before) asks for, from the planned job
        (TrainingError when the job cannot be planned as asked)."""
        return self._plan(request).asks()

    def namespace_for(self, request: SubmitRequest) -> str:
        """The namespace, without reaching the cluster: --namespace, else the kubeconfig
        context's (read from the file), else `default`."""
        if request.namespace or self.kube.namespace:
            return str(request.namespace or self.kube.namespace)
        path = kubeconfig_path(self.kube)
        if path is not None and path.is_file():
            with contextlib.suppress(Exception):
                from kubernetes import config

                contexts, active = config.list_kube_config_contexts(config_file=str(path))
                if self.kube.context:
                    active = next(c for c in contexts if c["name"] == self.kube.context)
                found = (active.get("context") or {}).get("namespace")
                if found:
                    return str(found)
        return "default"

    def _plan(self, request: SubmitRequest) -> TrainingPlan:
        self.last_plan = plan_training(
            self.name, request, self.options, self.namespace_for(request)
        )
        return self.last_plan

    def plan(self, request: SubmitRequest) -> Submission:
        """Every object the submit creates (the plan is kept as `last_plan`); nothing is
        sent. TrainingError for a job that cannot be made as asked."""
        plan = self._plan(request)
        namespace = plan.namespace
        summary = [
            f"{plan.kind.kind} {plan.names.job} in namespace {namespace}: step "
            f"{plan.step.name!r} on {plan.workers} worker(s)"
            + (
                f", {plan.gpus_per_worker} GPU(s) each"
                + (f" of type {plan.gpu_type}" if plan.gpu_type else "")
                if plan.gpus_per_worker
                else ""
            ),
            (
                f"steps before it, run once by Job {plan.names.prepare}: "
                + ", ".join(repr(s.name) for s in plan.before)
            )
            if plan.before
            else "no steps before it",
            f"storage: PVC {plan.claim}"
            + (" (created for this run)" if plan.claim_created else "")
            + f", outputs in runs/{request.run_id}/outputs",
        ]
        skipped = [
            s.name for s in request.pipeline.steps if s is not plan.step and s not in plan.before
        ]
        if skipped:
            summary.append(
                "not part of the job (they do not come before the trained step): "
                + ", ".join(repr(n) for n in skipped)
            )
        external = {
            "namespace": namespace,
            "kind": plan.kind.kind,
            "api_version": plan.kind.api_version,
            "plural": plan.kind.plural,
            "name": plan.names.job,
            "prepare_job": plan.names.prepare if plan.before else None,
            "pvc": plan.claim,
            "pvc_created": plan.claim_created,
            "step": plan.step.name,
            "prepare_steps": [s.name for s in plan.before],
            "workers": plan.workers,
            "kubeconfig": self.kube.kubeconfig,
            "context": self.kube.context,
        }
        objects = [to_dict(o) for o in plan.objects]
        return Submission(self.name, to_yaml(plan.objects), objects, summary, external)

    def _core(self, record: RunRecord | None = None) -> ClusterObjects:
        """The Kubernetes APIs of the run's cluster, with this engine's job kind."""
        from kubernetes import client

        settings = KubeSettings(
            kubeconfig=self.kube.kubeconfig
            or (record.external.get("kubeconfig") if record else None),
            context=self.kube.context or (record.external.get("context") if record else None),
            namespace=self.kube.namespace,
        )
        connection = connect(settings)
        api = connection.api_client
        apis = client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)
        return ClusterObjects(*apis, self._resource())

    def _resource(self) -> CustomResource:
        operator = (
            "Kubeflow Trainer" if self.name == "trainjob" else "the Kubeflow training operator"
        )
        k = self.kind
        return CustomResource(k.group, k.version, k.plural, k.kind, operator)

    def submit(self, request: SubmitRequest, submission: Submission) -> RunRecord:
        record = record_submission(self.store, self.home, self.name, request, submission)
        try:
            objects = self._core(record)
        except ClusterError as exc:
            return fail_submission(self.store, record, str(exc))
        namespace = record.external["namespace"]
        created: list[dict[str, Any]] = []
        try:
            for obj in submission.objects:
                objects.create(namespace, obj)
                created.append(obj)
        except ClusterError as exc:
            cleaned = objects.remove_created(namespace, created)
            note = (
                f" (removed what this submit had created: {', '.join(cleaned)})" if cleaned else ""
            )
            return fail_submission(self.store, record, f"{exc}{note}")
        record.status = "Pending"
        self.store.update_run(record)
        return record

    # -- follow ---------------------------------------------------------------------------
    def _read(
        self, record: RunRecord
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
        """(the training job, the prepare Job, the run's pods) as plain dicts."""
        apis = self._core(record)
        core, batch, custom = apis.core, apis.batch, apis.custom
        external = record.external
        namespace = external["namespace"]
        job = prepare = None
        try:
            job = custom.get_namespaced_custom_object(
                self.kind.group,
                self.kind.version,
                namespace,
                self.kind.plural,
                external["name"],
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception as exc:
            error = explain(exc, f"reading {self.kind.kind} {external['name']}")
            if error.status != 404:
                raise error from None
        if external.get("prepare_job"):
            try:
                response = batch.read_namespaced_job(
                    external["prepare_job"],
                    namespace,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
                prepare = json.loads(response.data)
            except Exception as exc:
                error = explain(exc, f"reading Job {external['prepare_job']}")
                if error.status != 404:
                    raise error from None
        pods: list[dict[str, Any]] = []
        try:
            response = core.list_namespaced_pod(
                namespace,
                label_selector=f"{RUN_LABEL}={label_value(record.run_id)}",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            pods = json.loads(response.data).get("items") or []
        except Exception as exc:
            error = explain(exc, "listing the run's pods")
            if error.status != 403:
                raise error from None
        return job, prepare, pods

    def refresh(self, record: RunRecord) -> RunRecord:
        if record.status in FINISHED or "name" not in record.external:
            return record
        job, prepare, pods = self._read(record)
        self._apply(record, job, prepare, pods)
        return record

    def _apply(
        self,
        record: RunRecord,
        job: dict[str, Any] | None,
        prepare: dict[str, Any] | None,
        pods: list[dict[str, Any]],
    ) -> None:
        external = record.external
        evicted = [
            f"pod {p['metadata']['name']} was evicted: {p['status'].get('message', '')}".strip()
            for p in pods
            if (p.get("status") or {}).get("reason") == "Evicted"
        ]
        prepare_status: str = "Succeeded"
        prepare_error: str | None = None
        if prepare is not None:
            prepare_status, prepare_error = _job_status(prepare)
        if external.get("prepare_job") and prepare is None:
            prepare_status, prepare_error = "Failed", "the prepare Job is gone from the cluster"
        status: str
        error: str | None
        if job is None:
            status, error = (
                "Failed",
                f"the {self.kind.kind} {external['name']} is gone from the cluster",
            )
        else:
            status, error = _training_status(self.name, job)
        if prepare_status == "Failed":
            status = "Failed"
            error = f"a step before the trained one failed: {prepare_error}"
        elif prepare_status in UNFINISHED and status == "Pending":
            status = "Running" if prepare_status == "Running" else "Pending"
        if evicted and status != "Succeeded":
            error = "; ".join([*(e for e in [error] if e), *evicted])
        for step in record.steps.values():
            if step.name in external.get("prepare_steps", []):
                new = prepare_status
            elif step.name == external.get("step"):
                new = status if prepare_status == "Succeeded" else "Pending"
                if prepare_status == "Failed":
                    new = "Cancelled"
            else:
                new = "Cancelled" if status in FINISHED else "Pending"
            step_error = None
            if new == "Failed":
                step_error = (
                    prepare_error if step.name in external.get("prepare_steps", []) else error
                )
            elif new == "Cancelled" and step.name not in (
                external.get("step"),
                *external.get("prepare_steps", []),
            ):
                step_error = (
                    "not part of the training job (it does not come before the trained step)"
                )
            if (step.status, step.error) != (new, step_error):
                step.status, step.error = new, step_error
                self.store.update_step(record.run_id, step)
        if status == "Succeeded" and not record.metrics:
            record.metrics = _metrics_from_pods(pods)
            if record.metrics:
                self.store.update_run(record)
        set_status(self.store, record, status, error if status != "Succeeded" else None)

    def cancel(self, record: RunRecord) -> RunRecord:
        """Delete the job and the prepare Job (their pods stop); the claim and what is on it
        stay until `cellpipe delete`."""
        objects = self._core(record)
        external = record.external
        objects.delete_each(
            external["namespace"],
            [(self.kind.kind, external["name"]), ("Job", external.get("prepare_job"))],
        )
        for step in record.steps.values():
            if step.status in UNFINISHED:
                step.status, step.error = "Cancelled", "cancelled"
                self.store.update_step(record.run_id, step)
        set_status(self.store, record, "Cancelled", "cancelled")
        return record

    def delete(self, record: RunRecord) -> list[str]:
        """Delete everything the run created in the cluster; what was deleted."""
        external = record.external
        targets = [(self.kind.kind, external.get("name")), ("Job", external.get("prepare_job"))]
        if external.get("pvc_created"):
            targets.append(("PersistentVolumeClaim", external.get("pvc")))
        return self._core(record).delete_each(external["namespace"], targets)

    def logs(self, record: RunRecord, step: str | None, follow: bool) -> Iterator[str]:
        try:
            core = self._core(record).core
            _, _, pods = self._read(record)
        except ClusterError as exc:
            yield f"cannot read the run's pods: {exc}\n"
            return
        external = record.external
        wanted = pods
        if step is not None:
            found = next((s for s in record.steps.values() if step in (s.name, s.task)), None)
            if found is None:
                names = ", ".join(repr(s) for s in record.steps)
                yield f"run {record.run_id} has no step {step!r}; its steps are {names}\n"
                return
            label = "prepare" if found.name in external.get("prepare_steps", []) else found.task
            wanted = [
                p for p in pods if (p["metadata"].get("labels") or {}).get(STEP_LABEL) == label
            ]
        if not wanted:
            yield "no pods of this run are there (yet, or any more)\n"
            return
        for pod in sorted(wanted, key=lambda p: p["metadata"]["name"]):
            name = pod["metadata"]["name"]
            containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
            if len(wanted) > 1:
                yield f"==> {name} <==\n"
            try:
                yield from pod_log(
                    core, name, external["namespace"], containers[0] if containers else None, follow
                )
            except ClusterError as exc:
                yield f"cannot read the log of pod {name}: {exc}\n"


def _condition(
    conditions: list[dict[str, Any]] | None, kinds: tuple[str, ...]
) -> dict[str, Any] | None:
    """The latest condition of one of `kinds` that is True."""
    true = [c for c in conditions or [] if c.get("status") == "True" and c.get("type") in kinds]
    return true[-1] if true else None


def _job_status(job: dict[str, Any]) -> tuple[str, str | None]:
    """A batch/v1 Job's status in the run vocabulary."""
    status = job.get("status") or {}
    conditions = status.get("conditions")
    done = _condition(conditions, ("Complete", "Failed"))
    if done is not None:
        if done["type"] == "Complete":
            return "Succeeded", None
        return "Failed", done.get("message") or done.get("reason") or "the Job failed"
    if status.get("active"):
        return "Running", None
    return "Pending", None


def _training_status(engine: str, job: dict[str, Any]) -> tuple[str, str | None]:
    """A training job's conditions in the run vocabulary."""
    conditions = (job.get("status") or {}).get("conditions")
    if engine == "trainjob":
        done = _condition(conditions, ("Complete", "Failed"))
        if done is not None:
            if done["type"] == "Complete":
                return "Succeeded", None
            return "Failed", done.get("message") or done.get("reason")
        if _condition(conditions, ("Suspended",)):
            return "Pending", "suspended"
        jobs = (job.get("status") or {}).get("jobsStatus") or []
        return ("Running", None) if any(j.get("active") for j in jobs) else ("Pending", None)
    latest = _condition(
        conditions, ("Created", "Running", "Restarting", "Succeeded", "Failed", "Suspended")
    )
    if latest is None:
        return "Pending", None
    kind = latest["type"]
    if kind == "Succeeded":
        return "Succeeded", None
    if kind == "Failed":
        return "Failed", latest.get("message") or latest.get("reason") or "the job failed"
    if kind in ("Running", "Restarting"):
        return "Running", None
    return "Pending", None


def _metrics_from_pods(pods: list[dict[str, Any]]) -> dict[str, float]:
    """Metrics from the termination message of the worker of rank 0."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if not message:
                continue
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                data = json.loads(message)
                if data.get("status") == "Succeeded":
                    return {k: float(v) for k, v in (data.get("metrics") or {}).items()}
    return {}


__all__ = ["TrainingEngine", "TrainingError", "TrainingOptions"]
