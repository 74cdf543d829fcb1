"""The `katib` tuning engine: a tune sent to the cluster as a Katib Experiment, followed
through its Trials, cancelled and deleted, through the official Kubernetes client.

`submit_katib` records the tune (before anything is sent, so one that never reaches the
cluster is kept, Failed, with its error), creates the claim, the prepare Job and the
Experiment (launcher/katib_objects.py), and removes what it had created when a later create
fails. `refresh_katib` reads the Experiment and its Trials back into the tune's record: each
Trial a trial (its parameters, its objective from the Trial's observation, its status from
its conditions), the best from the Experiment's `currentOptimalTrial`. `watch_katib` refreshes
until the Experiment has ended.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from .cluster_objects import ClusterObjects, CustomResource
from .errors import UserError
from .k8s import REQUEST_TIMEOUT, ClusterError, KubeSettings, connect, explain, kubeconfig_path
from .katib_objects import (
    EXPERIMENT_LABEL,
    EXPERIMENTS,
    KATIB_GROUP,
    KATIB_VERSION,
    TRIALS,
    KatibPlan,
)
from .tune_records import TrialRecord, TuneRecord, TuneStore
from .vocabulary import FINISHED, KATIB_ENGINE, RunStatus

Say = Callable[[str], None]


_EXPERIMENT = CustomResource(KATIB_GROUP, KATIB_VERSION, EXPERIMENTS, "Experiment", "Katib")


def _apis(kube: KubeSettings) -> ClusterObjects:
    from kubernetes import client

    api = connect(kube).api_client
    return ClusterObjects(
        client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api), _EXPERIMENT
    )


def namespace_of(kube: KubeSettings) -> str:
    """The namespace, without reaching the cluster: the one given, else the kubeconfig
    context's, else `default`."""
    if kube.namespace:
        return kube.namespace
    path = kubeconfig_path(kube)
    if path is not None and path.is_file():
        with contextlib.suppress(ClusterError):
            return connect(kube).namespace
    return "default"


def _kube(tune: TuneRecord, kube: KubeSettings | None = None) -> KubeSettings:
    """The cluster the tune was sent to (as recorded), unless told otherwise."""
    given = kube or KubeSettings()
    return KubeSettings(
        kubeconfig=given.kubeconfig or tune.external.get("kubeconfig"),
        context=given.context or tune.external.get("context"),
        namespace=tune.external.get("namespace") or given.namespace,
    )


def submit_katib(
    tune: TuneRecord, plan: KatibPlan, tunes: TuneStore, kube: KubeSettings
) -> TuneRecord:
    """Record the tune, then create its objects in order; Failed with the error when the
    cluster refuses one (what this submit had created is removed again)."""
    tune.engine = KATIB_ENGINE
    tune.external = {
        "namespace": plan.namespace,
        "experiment": plan.names.job,
        "prepare_job": plan.names.prepare if len(plan.objects) > 1 + plan.claim_created else None,
        "pvc": plan.claim,
        "pvc_created": plan.claim_created,
        "gpus_per_trial": plan.gpus_per_trial,
        "kubeconfig": kube.kubeconfig,
        "context": kube.context,
    }
    tunes.save(tune)
    created: list[dict[str, Any]] = []
    try:
        apis = _apis(kube)
        for obj in plan.dicts():
            apis.create(plan.namespace, obj)
            created.append(obj)
    except ClusterError as exc:
        removed = apis.remove_created(plan.namespace, created) if created else []
        note = f" (removed what this tune had created: {', '.join(removed)})" if removed else ""
        tune.status, tune.error, tune.finished = RunStatus.FAILED.value, f"{exc}{note}", time.time()
        tunes.save(tune)
        return tune
    tune.status = RunStatus.RUNNING.value
    tunes.save(tune)
    return tune


# --- following ------------------------------------------------------------------------------


def refresh_katib(
    tune: TuneRecord, tunes: TuneStore, kube: KubeSettings | None = None
) -> TuneRecord:
    """The tune as the cluster has it now (its record updated and saved)."""
    if tune.status in FINISHED and tune.finished:
        return tune
    namespace, name = tune.external["namespace"], tune.external["experiment"]
    custom = _apis(_kube(tune, kube)).custom
    try:
        found = custom.get_namespaced_custom_object(
            KATIB_GROUP,
            KATIB_VERSION,
            namespace,
            EXPERIMENTS,
            name,
            _request_timeout=REQUEST_TIMEOUT,
        )
        listed = custom.list_namespaced_custom_object(
            KATIB_GROUP,
            KATIB_VERSION,
            namespace,
            TRIALS,
            label_selector=f"{EXPERIMENT_LABEL}={name}",
            _request_timeout=REQUEST_TIMEOUT,
        )
    except Exception as exc:
        error = explain(exc, f"reading Experiment {name}")
        if error.status == 404:
            tune.status, tune.error = RunStatus.FAILED.value, f"the Experiment {name} is gone"
            tune.finished = time.time()
            tunes.save(tune)
            return tune
        raise error from None
    _apply(tune, found, listed.get("items") or [])
    for trial in tune.trials:
        tunes.save_trial(tune.tune_id, trial)
    tunes.save(tune)
    return tune


def _apply(tune: TuneRecord, experiment: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    ordered = sorted(
        trials, key=lambda t: (t["metadata"].get("creationTimestamp") or "", t["metadata"]["name"])
    )
    tune.trials = [_trial(i + 1, t, tune.metric, tune.search) for i, t in enumerate(ordered)]
    status = experiment.get("status") or {}
    state, message = _condition(status.get("conditions") or [], _EXPERIMENT_STATES)
    if state is not None:
        tune.status = state
        if state in FINISHED:
            tune.finished = tune.finished or time.time()
            tune.error = message if state != RunStatus.SUCCEEDED else None
    best = (status.get("currentOptimalTrial") or {}).get("bestTrialName")
    if best:
        tune.external["best_trial"] = best


_EXPERIMENT_STATES = (
    ("Succeeded", "Succeeded"),
    ("Failed", "Failed"),
    ("Running", "Running"),
    ("Created", "Pending"),
)
_TRIAL_STATES = (
    ("Succeeded", "Succeeded"),
    ("Failed", "Failed"),
    ("MetricsUnavailable", "Failed"),
    ("Killed", "Cancelled"),
    ("EarlyStopped", "Succeeded"),
    ("Running", "Running"),
    ("Created", "Pending"),
)


def _condition(
    conditions: list[dict[str, Any]], states: tuple[tuple[str, str], ...]
) -> tuple[str | None, str | None]:
    """The status the first true condition of `states` (in that order) says, and its message."""
    true = {c.get("type"): c for c in conditions if c.get("status") == "True"}
    for kind, status in states:
        if kind in true:
            return status, true[kind].get("message")
    return None, None


def _trial(number: int, trial: dict[str, Any], metric: str, search: dict[str, str]) -> TrialRecord:
    spec, status = trial.get("spec") or {}, trial.get("status") or {}
    parameters = {
        a["name"]: _value(a.get("value"))
        for a in spec.get("parameterAssignments") or []
        if a.get("name") in search
    }
    state, message = _condition(status.get("conditions") or [], _TRIAL_STATES)
    record = TrialRecord(
        number, parameters, state or RunStatus.PENDING.value, run_id=trial["metadata"]["name"]
    )
    for observed in (status.get("observation") or {}).get("metrics") or []:
        if observed.get("name") == metric:
            with contextlib.suppress(TypeError, ValueError):
                record.value = float(observed.get("latest"))
    if record.status == RunStatus.FAILED:
        record.error = message
    started, ended = status.get("startTime"), status.get("completionTime")
    if started and ended:
        record.seconds = _seconds_between(started, ended)
    record.steps_ran = []  # not told by Katib: each trial runs the tuned steps only
    return record


def _value(text: Any) -> Any:
    """Katib's assignments are strings: numbers read back as numbers."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def _seconds_between(start: str, end: str) -> float | None:
    from datetime import datetime

    try:
        return (
            datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))
        ).total_seconds()
    except ValueError:
        return None


def watch_katib(
    tune: TuneRecord,
    tunes: TuneStore,
    kube: KubeSettings | None = None,
    *,
    on_change: Callable[[TuneRecord], None] | None = None,
    interval: float = 5.0,
    timeout: float | None = None,
) -> TuneRecord:
    """Refresh until the Experiment has ended (or `timeout` seconds have passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = None
    while True:
        tune = refresh_katib(tune, tunes, kube)
        state = tune.to_json()
        if on_change and state != seen:
            on_change(tune)
        seen = state
        if tune.status in FINISHED or (deadline is not None and time.monotonic() > deadline):
            return tune
        time.sleep(interval)


def cancel_katib(
    tune: TuneRecord, tunes: TuneStore, kube: KubeSettings | None = None
) -> TuneRecord:
    """Stop the tune: the Experiment is deleted (Katib stops its trials); the record keeps
    the trials read until then."""
    if tune.status in FINISHED:
        raise UserError(f"tune {tune.tune_id} has already ended ({tune.status})", reason="conflict")
    with contextlib.suppress(ClusterError):
        tune = refresh_katib(tune, tunes, kube)
    apis = _apis(_kube(tune, kube))
    apis.delete(tune.external["namespace"], "Experiment", tune.external["experiment"])
    tune.status, tune.error, tune.finished = RunStatus.CANCELLED.value, "cancelled", time.time()
    tunes.save(tune)
    return tune


def delete_katib(tune: TuneRecord, kube: KubeSettings | None = None) -> list[str]:
    """Delete what the tune made in the cluster: the Experiment, the prepare Job, the claim
    it created (never a claim it was given)."""
    external = tune.external
    apis = _apis(_kube(tune, kube))
    doomed = [("Experiment", external.get("experiment")), ("Job", external.get("prepare_job"))]
    if external.get("pvc_created"):
        doomed.append(("PersistentVolumeClaim", external.get("pvc")))
    return apis.delete_each(external["namespace"], doomed)
