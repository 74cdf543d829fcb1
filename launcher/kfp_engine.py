"""The `kfp` engine: the compiled pipeline submitted to a Kubeflow Pipelines server.

    upload (a new pipeline version only when the compiled content changed)
      -> the experiment (found or created) -> the run -> its id and the link to the KFP UI

It speaks the KFP v2beta1 REST API through `kfp_server_api`, the generated client that
`kfp.Client` itself wraps. cellpipe calls it directly because `kfp.Client` prints links to
stdout, retries a health check for half a minute before the first call when the server is
away, and writes ~/.config/kfp/context.json; authentication is set up as `kfp.Client` does it:

- `--host URL` (or c.CellPipe.kfp_host, or $KF_PIPELINES_ENDPOINT) with a bearer token
  ($CELLPIPE_KFP_TOKEN or c.CellPipe.kfp_token) and/or a session cookie for multi-user
  Kubeflow behind a login ($CELLPIPE_KFP_COOKIE, e.g. `authservice_session=...`);
- inside the cluster, the pod's projected Kubeflow Pipelines service-account token
  ($KF_PIPELINES_SA_TOKEN_PATH, /var/run/secrets/kubeflow/pipelines/token), with the
  in-cluster address when no host is given;
- with no host outside the cluster, the kubeconfig: the API server's service proxy to
  `ml-pipeline` in the `kubeflow` namespace, with the kubeconfig's credentials.

Logs come from the step pods through the Kubernetes API where the user may read them;
otherwise the message says so and gives the run's link in the KFP UI.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from cellpipe.converter import compile_yaml
from cellpipe.converter.bundle import make_bundle

from .cluster import (
    Submission,
    SubmitOptions,
    SubmitRequest,
    fail_submission,
    record_submission,
    set_status,
)
from .executed import StepOutcome, keep_source
from .gpus import GpuAsk, asks_of
from .k8s import (
    REQUEST_TIMEOUT,
    ClusterError,
    KubeSettings,
    connect,
    explain,
    kubeconfig_path,
    pod_log,
)
from .kfp_reports import (
    NOTEBOOK_NOTE,
    cluster_reports,
    missing_note,
    read_bundle,
    why_no_notebook,
    write_notebook,
)
from .store import RunRecord, RunStore, cellpipe_home, open_store
from .vocabulary import FINISHED, KFP_ENGINE, UNFINISHED

if TYPE_CHECKING:
    from .config import CellPipe

TOKEN_ENV = "CELLPIPE_KFP_TOKEN"
COOKIE_ENV = "CELLPIPE_KFP_COOKIE"
ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"  # kfp.Client's own
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # kfp.Client's own
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
IN_CLUSTER_HOST = "http://ml-pipeline.{namespace}.svc.cluster.local:8888"
KUBE_PROXY_PATH = "api/v1/namespaces/{namespace}/services/ml-pipeline:http/proxy"
KFP_SYSTEM_NAMESPACE = "kubeflow"
DEFAULT_EXPERIMENT = "Default"
GPU_RESOURCE = "nvidia.com/gpu"  # c.CellPipe.gpu_resource's default
STEP_CONTAINER = "main"  # the container of a KFP v2 step pod that runs the step
# KFP's run and task states, as the run vocabulary says them
STATES = {
    "RUNTIME_STATE_UNSPECIFIED": "Pending",
    "PENDING": "Pending",
    "RUNNING": "Running",
    "PAUSED": "Running",
    "CANCELING": "Running",
    "SUCCEEDED": "Succeeded",
    "SKIPPED": "Succeeded",
    "CACHED": "Succeeded",
    "FAILED": "Failed",
    "CANCELED": "Cancelled",
}


@dataclass
class KfpSettings:
    host: str | None = None
    token: str | None = None
    cookie: str | None = None
    namespace: str | None = None  # the Kubeflow profile (multi-user); None: single-user
    experiment: str | None = None
    ui_url: str | None = None  # where the KFP UI is, when it cannot be told from the host
    ssl_ca_cert: str | None = None
    kube: KubeSettings = field(default_factory=KubeSettings)
    service_account: str | None = None
    host_from: str | None = None  # where `host` came from, for people: --host, configuration...

    @classmethod
    def from_environment(cls, **given: Any) -> KfpSettings:
        """Explicit values, else the environment (the token and cookie are never stored)."""
        settings = cls(**{k: v for k, v in given.items() if v is not None})
        if not settings.host and os.environ.get(ENDPOINT_ENV):
            settings.host, settings.host_from = os.environ[ENDPOINT_ENV], f"${ENDPOINT_ENV}"
        settings.token = os.environ.get(TOKEN_ENV) or settings.token
        settings.cookie = os.environ.get(COOKIE_ENV) or settings.cookie
        return settings


def _api() -> Any:
    import importlib

    return importlib.import_module("kfp_server_api")  # untyped: Any


def api_client(settings: KfpSettings) -> tuple[Any, str, str | None, str]:
    """The KFP API client, the address it speaks to, the UI's address (None: unknown), and
    the API for people: its address and where that came from (what an error names)."""
    kfp = _api()
    configuration = kfp.Configuration()
    configuration.retries = 1
    if settings.ssl_ca_cert:
        configuration.ssl_ca_cert = settings.ssl_ca_cert
    token = settings.token
    token_path = os.environ.get(SA_TOKEN_ENV) or SA_TOKEN_PATH
    if not token and Path(token_path).is_file():
        token = Path(token_path).read_text().strip()
    host = settings.host
    ui = settings.ui_url
    if host:
        if not host.startswith(("http://", "https://")):
            host = f"https://{host}"
        configuration.host = host.rstrip("/")
        ui = ui or _ui_from_host(configuration.host)
        source = f"from {settings.host_from or '--host or c.CellPipe.kfp_host'}"
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration.host = IN_CLUSTER_HOST.format(namespace=KFP_SYSTEM_NAMESPACE)
        source = "the in-cluster address: no --host, c.CellPipe.kfp_host or $" + ENDPOINT_ENV
    else:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        path = kubeconfig_path(settings.kube)
        if path is None:
            raise ClusterError(
                "no Kubeflow Pipelines address: give --host URL (or c.CellPipe.kfp_host, or "
                f"${ENDPOINT_ENV}), or a kubeconfig to reach it through the API server"
            )
        try:
            config.load_kube_config(
                config_file=str(path),
                context=settings.kube.context,
                client_configuration=configuration,
            )
        except (ConfigException, OSError, ValueError) as exc:
            raise ClusterError(f"cannot use the kubeconfig {path}: {exc}") from None
        source = (
            f"the API server's proxy, from the kubeconfig {path} (context "
            f"{settings.kube.context or 'its current one'}): no --host, c.CellPipe.kfp_host or "
            f"${ENDPOINT_ENV}"
        )
        configuration.host = (
            f"{configuration.host}/{KUBE_PROXY_PATH.format(namespace=KFP_SYSTEM_NAMESPACE)}"
        )
    if token:
        configuration.api_key["authorization"] = token
        configuration.api_key_prefix["authorization"] = "Bearer"
    client = kfp.ApiClient(configuration, cookie=settings.cookie)
    where = f"the Kubeflow Pipelines API at {configuration.host} ({source})"
    return client, configuration.host, ui, where


def _ui_from_host(host: str) -> str:
    """The KFP UI for an API address: Kubeflow's central dashboard serves the API at
    /pipeline and the UI at /_/pipeline; a standalone KFP serves both at its root."""
    if host.endswith("/pipeline"):
        return host[: -len("/pipeline")] + "/_/pipeline"
    return host


def run_link(ui: str | None, kfp_run_id: str) -> str | None:
    return f"{ui}/#/runs/details/{kfp_run_id}" if ui else None


def content_hash(pipeline_yaml: str) -> str:
    """The compiled pipeline's content, without kfp's comment header."""
    return hashlib.sha256(_spec_json(pipeline_yaml).encode()).hexdigest()


def _spec_json(pipeline_yaml: str) -> str:
    documents = [d for d in yaml.safe_load_all(pipeline_yaml) if d]
    spec: Any = documents[0]
    if len(documents) > 1:
        spec = {"pipeline_spec": documents[0], "platform_spec": documents[1]}
    return json.dumps(spec, sort_keys=True)


def _kfp_parameters(request: SubmitRequest) -> dict[str, Any]:
    """The run's parameter values by the pipeline's input names (a name KFP does not take, or
    one a component uses itself, is renamed in the compiled pipeline)."""
    names = request.pipeline.kfp_parameter_names()
    # An optional parameter that is None is left out: KFP (2.5 on) runs an optional input
    # given no value with none, and the step's entry gives it its default, None.
    return {
        names.get(name, name): value
        for name, value in request.parameters.items()
        if value is not None
    }


def _filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


class KfpEngine:
    """Submits to Kubeflow Pipelines and follows, cancels and deletes its runs."""

    name = KFP_ENGINE
    location: ClassVar[str] = "cluster"

    def __init__(
        self,
        settings: KfpSettings | None = None,
        store: RunStore | None = None,
        home: Path | None = None,
        gpu_resource: str = GPU_RESOURCE,
    ) -> None:
        self.settings = settings or KfpSettings.from_environment()
        self.home = home or cellpipe_home()
        self.store = store or open_store(self.home)
        self.gpu_resource = gpu_resource  # of steps whose GPU type names none
        self.api = "the Kubeflow Pipelines API"  # its address and source once connected

    @classmethod
    def for_submit(
        cls,
        name: str,
        options: SubmitOptions,
        config: CellPipe,
        store: RunStore,
        home: Path,
    ) -> KfpEngine:
        """The engine a submit uses: the options' address, namespace and experiment, else
        the configuration's (c.CellPipe.kfp_host, namespace), else the environment's."""
        settings = KfpSettings.from_environment(
            host=options.host or config.kfp_host,
            host_from="--host" if options.host else "c.CellPipe.kfp_host",
            token=config.kfp_token,
            namespace=options.namespace or config.namespace,
            experiment=options.experiment,
            ui_url=options.ui_url,
            kube=options.kube,
        )
        return cls(settings, store, home, gpu_resource=config.gpu_resource)

    @classmethod
    def for_tracking(
        cls,
        name: str,
        config: CellPipe,
        kube: KubeSettings,
        store: RunStore,
        home: Path,
    ) -> KfpEngine:
        """The engine that follows a run: the configured address (a run's own address,
        kept with it, is used when none is configured) and the Kubernetes API for logs."""
        settings = KfpSettings.from_environment(
            host=config.kfp_host, token=config.kfp_token, kube=kube
        )
        return cls(settings, store, home)

    def gpu_asks(self, request: SubmitRequest) -> list[GpuAsk]:
        """The GPUs each step asks for (each step is a pod of its own)."""
        return asks_of(request.pipeline, self.gpu_resource)

    # -- submit ---------------------------------------------------------------------------
    def plan(self, request: SubmitRequest) -> Submission:
        """The KFP pipeline YAML, each step in its image; nothing is sent."""
        for step in request.pipeline.steps:
            step.image = request.images.get(step.name, step.image)
        text = compile_yaml(request.pipeline, request.options)
        pipeline = request.pipeline.settings.name
        version = f"{pipeline}-{content_hash(text)[:12]}"
        experiment = (
            self.settings.experiment or request.pipeline.settings.experiment or DEFAULT_EXPERIMENT
        )
        namespace = self.settings.namespace or request.namespace
        summary = [
            f"Kubeflow Pipelines: pipeline {pipeline!r}, version {version!r}, experiment "
            f"{experiment!r}" + (f", namespace {namespace!r}" if namespace else ""),
        ]
        external = {
            "host": self.settings.host,
            "namespace": namespace,
            "pipeline": pipeline,
            "version_name": version,
            "experiment": experiment,
        }
        return Submission(self.name, text, list(yaml.safe_load_all(text)), summary, external)

    def submit(self, request: SubmitRequest, submission: Submission) -> RunRecord:
        record = record_submission(self.store, self.home, self.name, request, submission)
        # what the executed notebook is assembled from when the run ends (kfp_reports.py)
        run_dir = Path(record.outputs)
        (run_dir / "bundle.json").write_text(json.dumps(make_bundle(request.pipeline)))
        keep_source(run_dir, request.notebook)
        try:
            client, host, ui, self.api = api_client(self.settings)
        except ClusterError as exc:
            return fail_submission(self.store, record, str(exc))
        record.external["api"] = host
        try:
            with contextlib.closing(client):
                self._send(client, record, submission, request)
        except ClusterError as exc:
            return fail_submission(self.store, record, str(exc))
        link = run_link(ui, record.external["run_id"])
        if link:
            record.links["kfp_ui"] = link
        self.store.update_run(record)
        return record

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except Exception as exc:
            if isinstance(exc, (TypeError, AttributeError)):
                raise
            raise explain(exc, what, self.api) from None

    def _send(
        self, client: Any, record: RunRecord, submission: Submission, request: SubmitRequest
    ) -> None:
        kfp = _api()
        external = record.external
        namespace = external.get("namespace")
        pipelines = kfp.PipelineServiceApi(client)
        pipeline_id = self._pipeline_id(pipelines, external["pipeline"], namespace)
        with tempfile.TemporaryDirectory(prefix="cellpipe-kfp-") as folder:
            package = Path(folder) / f"{external['pipeline']}.yaml"
            package.write_text(submission.yaml)
            upload = kfp.PipelineUploadServiceApi(client)
            created = False
            if pipeline_id is None:
                try:
                    uploaded = self._call(
                        f"uploading pipeline {external['pipeline']!r}",
                        upload.upload_pipeline,
                        str(package),
                        name=external["pipeline"],
                        description=request.pipeline.settings.description or None,
                        namespace=namespace,
                    )
                    pipeline_id, created = uploaded.pipeline_id, True
                except ClusterError as exc:
                    # uploaded meanwhile by someone else: use theirs
                    pipeline_id = self._pipeline_id(pipelines, external["pipeline"], namespace)
                    if exc.status != 409 or pipeline_id is None:
                        raise
            external["pipeline_id"] = pipeline_id
            version_id = self._version_id(
                pipelines, pipeline_id, external["version_name"], submission.yaml
            )
            if version_id is None:
                version = self._call(
                    f"uploading a new version of pipeline {external['pipeline']!r}",
                    upload.upload_pipeline_version,
                    str(package),
                    name=external["version_name"],
                    pipelineid=pipeline_id,
                )
                version_id = version.pipeline_version_id
                external["version_uploaded"] = True
            else:  # a new pipeline's first version is the one its upload made
                external["version_uploaded"] = created
        external["version_id"] = version_id
        experiment_id = self._experiment_id(client, external["experiment"], namespace)
        external["experiment_id"] = experiment_id
        run = kfp.V2beta1Run(
            display_name=f"{external['pipeline']} {record.run_id}",
            description=f"cellpipe run {record.run_id} of {request.notebook.name}",
            experiment_id=experiment_id,
            pipeline_version_reference=kfp.V2beta1PipelineVersionReference(
                pipeline_id=pipeline_id, pipeline_version_id=version_id
            ),
            runtime_config=kfp.V2beta1RuntimeConfig(parameters=_kfp_parameters(request)),
            service_account=self.settings.service_account,
        )
        created_run = self._call(
            "creating the run", kfp.RunServiceApi(client).run_service_create_run, run
        )
        external["run_id"] = created_run.run_id
        state = str(created_run.state or "PENDING")
        record.status = STATES.get(state, "Pending")

    def _pipeline_id(self, pipelines: Any, name: str, namespace: str | None) -> str | None:
        found = self._call(
            f"looking up pipeline {name!r}",
            pipelines.pipeline_service_list_pipelines,
            filter=_filter("display_name", name),
            namespace=namespace,
        )
        matches = [p for p in found.pipelines or [] if p.display_name == name]
        return str(matches[0].pipeline_id) if matches else None

    def _version_id(
        self, pipelines: Any, pipeline_id: str, version_name: str, text: str
    ) -> str | None:
        """The version with this content: by its name, or (the version KFP made when the
        pipeline was uploaded) by its pipeline spec."""
        found = self._call(
            "looking up the pipeline's versions",
            pipelines.pipeline_service_list_pipeline_versions,
            pipeline_id,
            page_size=20,
            sort_by="created_at desc",
        )
        versions = found.pipeline_versions or []
        for version in versions:
            if version.display_name == version_name:
                return str(version.pipeline_version_id)
        wanted = _spec_json(text)
        for version in versions:
            spec = version.pipeline_spec
            if spec is not None and json.dumps(spec, sort_keys=True) == wanted:
                return str(version.pipeline_version_id)
        return None

    def _experiment_id(self, client: Any, name: str, namespace: str | None) -> str:
        kfp = _api()
        experiments = kfp.ExperimentServiceApi(client)

        def find() -> str | None:
            found = self._call(
                f"looking up experiment {name!r}",
                experiments.experiment_service_list_experiments,
                filter=_filter("display_name", name),
                namespace=namespace,
            )
            matches = [e for e in found.experiments or [] if e.display_name == name]
            return str(matches[0].experiment_id) if matches else None

        existing = find()
        if existing:
            return existing
        try:
            created = self._call(
                f"creating experiment {name!r}",
                experiments.experiment_service_create_experiment,
                kfp.V2beta1Experiment(display_name=name, namespace=namespace),
            )
        except ClusterError as exc:
            existing = find() if exc.status == 409 else None
            if existing is None:
                raise
            return existing
        return str(created.experiment_id)

    # -- follow ---------------------------------------------------------------------------
    def _client(self, record: RunRecord) -> tuple[Any, str | None]:
        settings = self.settings
        if not settings.host and record.external.get("host"):
            settings.host = record.external["host"]
            settings.host_from = f"the address run {record.run_id} was submitted to"
        client, _, ui, self.api = api_client(settings)
        return client, ui

    def _get(self, client: Any, record: RunRecord) -> Any:
        kfp_run_id = record.external.get("run_id")
        if not kfp_run_id:
            raise ClusterError(f"run {record.run_id} has no Kubeflow Pipelines run id")
        return self._call(
            f"reading run {kfp_run_id}",
            _api().RunServiceApi(client).run_service_get_run,
            kfp_run_id,
        )

    def refresh(self, record: RunRecord) -> RunRecord:
        """The run's status and its steps' from the server."""
        if record.status in FINISHED or not record.external.get("run_id"):
            return record
        client, ui = self._client(record)
        link = run_link(ui, record.external["run_id"])
        if link and record.links.get("kfp_ui") != link:
            record.links["kfp_ui"] = link
            self.store.update_run(record)
        with contextlib.closing(client):
            run = self._get(client, record)
            self._apply(record, run)
            if record.status in FINISHED:
                self._give_back_notebook(client, record, run)
        return record

    def _apply(self, record: RunRecord, run: Any) -> None:
        status = STATES.get(str(run.state or "PENDING"), "Pending")
        error = None
        if status == "Failed":
            message = getattr(run.error, "message", None) if run.error else None
            error = f"the run failed in Kubeflow Pipelines: {message or 'see the KFP UI'}"
        elif status == "Cancelled":
            error = record.error or "cancelled"
        tasks = (run.run_details.task_details or []) if run.run_details else []
        pods: dict[str, list[str]] = {}
        for task in tasks:
            step = next(
                (s for s in record.steps.values() if task.display_name in (s.name, s.task)),
                None,
            )
            if step is None:
                continue
            pods[step.task] = [
                p for p in [task.pod_name, *(c.pod_name for c in task.child_tasks or [])] if p
            ]
            step_status = STATES.get(str(task.state or "PENDING"), "Pending")
            step_error = getattr(task.error, "message", None) if task.error else None
            if (step.status, step.error) != (step_status, step_error):
                step.status, step.error = step_status, step_error
                if task.start_time and task.end_time:
                    step.seconds = (task.end_time - task.start_time).total_seconds()
                self.store.update_step(record.run_id, step)
        if status in FINISHED:
            for step in record.steps.values():
                if step.status in UNFINISHED:
                    step.status = "Cancelled"
                    step.error = step.error or "the run ended before this step finished"
                    self.store.update_step(record.run_id, step)
        if pods and pods != record.external.get("pods"):
            record.external["pods"] = pods
            self.store.update_run(record)
        set_status(self.store, record, status, error)

    def cancel(self, record: RunRecord) -> RunRecord:
        """Terminate the run in KFP (its pods stop); the status follows from the server."""
        client, _ = self._client(record)
        with contextlib.closing(client):
            self._call(
                "terminating the run",
                _api().RunServiceApi(client).run_service_terminate_run,
                record.external["run_id"],
            )
            run = self._get(client, record)
            record.error = "cancelled"
            self._apply(record, run)
            if record.status not in FINISHED:
                set_status(self.store, record, "Cancelled", "cancelled")
            self._give_back_notebook(client, record, run)
        return record

    def _give_back_notebook(self, client: Any, record: RunRecord, run: Any) -> None:
        """The executed notebook of a run that ended, from its steps' report pages where the
        KFP API offers them; where it cannot be written, the run says why (NOTEBOOK_NOTE)."""
        run_dir = Path(record.outputs)
        bundle = read_bundle(run_dir)
        note: str | None
        if bundle is None:
            note = "the run was submitted without its bundle, so no notebook can be assembled"
        else:
            found = cluster_reports(
                self._call, client, run, record, bundle, self.settings.ssl_ca_cert
            )
            if not found.reports:
                note = why_no_notebook(found, record.links.get("kfp_ui"))
            else:
                outcomes = [
                    StepOutcome(s.task, s.name, s.status, False, found.reports.get(s.task))
                    for s in record.steps.values()
                ]
                try:
                    written = write_notebook(run_dir, bundle, record, outcomes)
                except (OSError, ValueError) as exc:
                    written, problem = None, str(exc)
                else:
                    problem = "the notebook as it was submitted was not kept"
                note = (
                    missing_note(found)
                    if written
                    else f"the executed notebook could not be written: {problem}"
                )
        if record.external.get(NOTEBOOK_NOTE) != note:
            if note is None:
                record.external.pop(NOTEBOOK_NOTE, None)
            else:
                record.external[NOTEBOOK_NOTE] = note
            self.store.update_run(record)

    def delete(self, record: RunRecord) -> list[str]:
        """Delete the run in KFP (a run already gone is fine); what was deleted."""
        if not record.external.get("run_id"):
            return []
        client, _ = self._client(record)
        with contextlib.closing(client):
            try:
                self._call(
                    "deleting the run in Kubeflow Pipelines",
                    _api().RunServiceApi(client).run_service_delete_run,
                    record.external["run_id"],
                )
            except ClusterError as exc:
                if exc.status != 404:
                    raise
                return []
        return [f"Kubeflow Pipelines run {record.external['run_id']}"]

    # -- logs -----------------------------------------------------------------------------
    def logs(self, record: RunRecord, step: str | None, follow: bool) -> Iterator[str]:
        """What the step pods printed, read through the Kubernetes API."""
        if record.status not in FINISHED:
            with contextlib.suppress(ClusterError):
                self.refresh(record)
        pods: dict[str, list[str]] = record.external.get("pods") or {}
        tasks = [s.task for s in record.steps.values()]
        if step is not None:
            tasks = [s.task for s in record.steps.values() if step in (s.name, s.task)]
        link = record.links.get("kfp_ui")
        where = f"; see the run in the KFP UI: {link}" if link else ""
        wanted = [(t, p) for t in tasks for p in pods.get(t, [])]
        if not wanted:
            yield f"no step pods are known for this run yet{where}\n"
            return
        namespace = record.external.get("namespace") or KFP_SYSTEM_NAMESPACE
        try:
            connection = connect(self.settings.kube)
        except ClusterError as exc:
            yield f"cannot read the step pods' logs ({exc}){where}\n"
            return
        from kubernetes import client

        core = client.CoreV1Api(connection.api_client)
        for task, pod in wanted:
            if len(wanted) > 1:
                yield f"==> {task} ({pod}) <==\n"
            try:
                yield from pod_log(core, pod, namespace, STEP_CONTAINER, follow)
            except ClusterError as exc:
                yield f"cannot read the log of pod {pod}: {exc}{where}\n"


__all__ = ["KfpEngine", "KfpSettings", "api_client", "content_hash", "run_link"]
