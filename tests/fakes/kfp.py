"""FakeKfp: an in-process fake of the Kubeflow Pipelines v2beta1 REST API, over real HTTP.

What it is: a small HTTP server on 127.0.0.1 answering the calls cellpipe makes through
`kfp_server_api` (the generated client `kfp.Client` wraps), in KFP's own JSON shapes:

- healthz; pipelines: list (with KFP's JSON filter, EQUALS on `display_name`/`name`),
  upload (multipart, as the API takes it: the pipeline and its first version, named like the
  pipeline, 409 when the name is taken), upload a version, list versions (newest first
  with `sort_by=created_at desc`); experiments: list (filtered), create; runs: create, get,
  terminate, delete;
- an uploaded pipeline is parsed as KFP's own protobuf messages (PipelineSpec and
  PlatformSpec from kfp-pipeline-spec, unknown fields refused): an invalid one is 400;
  a run's parameters must be inputs of its pipeline, of their type (400 otherwise);
- `token` and/or `cookie` are required when set (401 as KFP's auth answers); in multi-user
  mode (`multi_user=True`) experiments need a namespace, and `allowed_namespaces` limits
  them (403 as KFP's authorizer answers); `fail(...)` injects any answer; `stop()` makes it
  unreachable.

- artifacts, as KFP 2.1 on gives them: a task's output artifacts listed by id in the run's
  details (`task_details[].outputs`: {name: {"artifact_ids": ["17"]}}), and the
  ArtifactService's `GET /apis/v2beta1/artifacts/{id}` (KFP's Artifact message: `artifact_id`,
  `storage_provider`, `storage_path`, `uri`, `namespace`, `artifact_type`, `artifact_size` as
  an int64 string, times; `download_url` only with `view=DOWNLOAD`). The download URL is a
  presigned URL of a fake object store, a server of its own (another address, as MinIO or S3
  is): it answers the artifact's bytes to the signed query and refuses a request that also
  carries an Authorization header (S3's "only one auth mechanism"). `artifacts_api=False`
  is a KFP before 2.1: no ArtifactService (404) and no artifacts in the run's details.

What it is not: nothing runs. A run stays PENDING until the test says what happened
(`set_run`: its state, its tasks with their pod names and output artifacts, an error);
terminating makes it CANCELED at once (KFP passes through CANCELING); no Argo, no ML
Metadata (the artifacts are what the test gives; no metrics), no recurring runs, no
archiving, no pagination beyond `page_size`; signed URLs do not expire.
"""

from __future__ import annotations

import email.parser
import hashlib
import itertools
import json
import time
import urllib.parse
import uuid
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from .server import FakeHttpServer, HttpError, Request, Response

API = "/apis/v2beta1"
_TYPES = {
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": (int, float),
    "STRING": str,
    "BOOLEAN": bool,
    "LIST": list,
    "STRUCT": dict,
}


def error(code: int, grpc_code: int, message: str) -> dict[str, Any]:
    """KFP's error body (grpc-gateway's: error, code, message, details)."""
    return {"error": message, "code": grpc_code, "message": message, "details": []}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeKfp(FakeHttpServer):
    """See the module's docstring: a fake, and what it does and does not do."""

    def __init__(
        self,
        token: str | None = None,
        cookie: str | None = None,
        multi_user: bool = False,
        allowed_namespaces: set[str] | None = None,
        artifacts_api: bool = True,
    ) -> None:
        super().__init__()
        self.artifacts_api = artifacts_api
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.object_store = FakeObjectStore()
        self._artifact_ids = itertools.count(17)
        self.token = token
        self.cookie = cookie
        self.multi_user = multi_user
        self.allowed_namespaces = allowed_namespaces
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self._clock = itertools.count(1)
        self.route("GET", f"{API}/healthz", self._healthz)
        self.route("GET", f"{API}/pipelines", self._list_pipelines)
        self.route("POST", f"{API}/pipelines/upload", self._upload)
        self.route("POST", f"{API}/pipelines/upload_version", self._upload_version)
        self.route("GET", f"{API}/pipelines/(?P<pid>[^/]+)/versions", self._list_versions)
        self.route("GET", f"{API}/experiments", self._list_experiments)
        self.route("POST", f"{API}/experiments", self._create_experiment)
        self.route("POST", f"{API}/runs", self._create_run)
        self.route("GET", f"{API}/runs/(?P<rid>[^/:]+)", self._get_run)
        self.route("POST", f"{API}/runs/(?P<rid>[^/:]+):terminate", self._terminate)
        self.route("DELETE", f"{API}/runs/(?P<rid>[^/:]+)", self._delete_run)
        self.route("GET", f"{API}/artifacts/(?P<aid>[^/]+)", self._get_artifact)

    def start(self) -> FakeKfp:
        self.object_store.start()
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        self.object_store.stop()

    # -- what the test drives -------------------------------------------------------------
    def set_run(
        self,
        run_id: str,
        state: str,
        tasks: dict[str, tuple[str, str | None]] | None = None,
        message: str | None = None,
        outputs: dict[str, dict[str, tuple[str, bytes]]] | None = None,
    ) -> None:
        """What KFP would report: the run's state, each task's (display name -> (state,
        pod name)), an error message for a failed run, and the output artifacts each task
        stored (display name -> {output name: (artifact type, content)})."""
        with self.lock:
            run = self.runs[run_id]
            run["state"] = state
            if message:
                run["error"] = {"code": 2, "message": message}
            if tasks is not None:
                run["run_details"] = {
                    "task_details": [
                        {
                            "run_id": run_id,
                            "task_id": str(uuid.uuid4()),
                            "display_name": name,
                            "state": task_state,
                            "pod_name": pod,
                            "start_time": "2025-01-01T00:00:00Z",
                            "end_time": "2025-01-01T00:00:07Z",
                        }
                        for name, (task_state, pod) in tasks.items()
                    ]
                }
                for task in run["run_details"]["task_details"]:
                    stored = (outputs or {}).get(task["display_name"], {})
                    if stored and self.artifacts_api:
                        task["outputs"] = {
                            key: {"artifact_ids": [self._store(run, task, key, kind, data)]}
                            for key, (kind, data) in stored.items()
                        }

    def _store(
        self, run: dict[str, Any], task: dict[str, Any], key: str, kind: str, data: bytes
    ) -> str:
        """An artifact in the object store, where KFP's launcher puts it, and its record."""
        artifact_id = str(next(self._artifact_ids))
        path = f"v2/artifacts/{run['run_id']}/{task['display_name']}/{task['task_id']}/{key}"
        self.object_store.put(path, data)
        self.artifacts[artifact_id] = {
            "artifact_id": artifact_id,
            "storage_provider": "minio",
            "storage_path": path,
            "uri": f"minio://mlpipeline/{path}",
            "namespace": run.get("namespace") or "",
            "artifact_type": kind,
            "artifact_size": str(len(data)),  # int64: a string in KFP's JSON
            "created_at": _now(),
            "last_updated_at": _now(),
        }
        return artifact_id

    # -- serving --------------------------------------------------------------------------
    def authorize(self, request: Request) -> Response | None:
        if request.path == f"{API}/healthz":
            return None
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, error(401, 16, "Unauthenticated: no valid token"))
        if self.cookie and self.cookie not in request.headers.get("cookie", ""):
            return Response(401, error(401, 16, "Unauthenticated: log in first"))
        return None

    def _namespace_allowed(self, namespace: str | None) -> None:
        if self.multi_user and not namespace:
            raise HttpError(400, error(400, 3, "Invalid input error: a namespace is required"))
        if self.allowed_namespaces is not None and namespace not in self.allowed_namespaces:
            raise HttpError(
                403,
                error(
                    403,
                    7,
                    f"PermissionDenied: user is not authorized to access namespace {namespace}",
                ),
            )

    def _healthz(self, request: Request, match: Any) -> Response:
        return Response(200, {"multi_user": self.multi_user})

    def _list_pipelines(self, request: Request, match: Any) -> Response:
        wanted = _filter(request.query.get("filter"))
        with self.lock:
            found = [
                p
                for p in self.pipelines.values()
                if all(p.get(k) == v for k, v in wanted.items())
                and (
                    not request.query.get("namespace")
                    or p.get("namespace") in (None, "", request.query["namespace"])
                )
            ]
        return Response(200, {"pipelines": found, "total_size": len(found)})

    def _uploaded(self, request: Request) -> dict[str, Any]:
        head = f"Content-Type: {request.headers.get('content-type')}\r\n\r\n".encode()
        message = email.parser.BytesParser().parsebytes(head + request.body)
        for part in message.walk():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                text = part.get_payload(decode=True)
                return self._parse(text)
        raise HttpError(400, error(400, 3, "Invalid input error: no uploadfile"))

    def _parse(self, text: bytes) -> dict[str, Any]:
        try:
            documents = [d for d in yaml.safe_load_all(text) if d]
            json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
            if len(documents) > 1:
                json_format.ParseDict(documents[1], pipeline_spec_pb2.PlatformSpec())
        except (yaml.YAMLError, json_format.ParseError, IndexError) as exc:
            raise HttpError(
                400, error(400, 3, f"Invalid input error: not a pipeline spec: {exc}")
            ) from None
        if len(documents) > 1:
            return {"pipeline_spec": documents[0], "platform_spec": documents[1]}
        spec: dict[str, Any] = documents[0]
        return spec

    def _version(self, pipeline_id: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": str(uuid.uuid4()),
            "display_name": name,
            "name": name,
            "created_at": _now(),
            "pipeline_spec": spec,
            "_order": next(self._clock),
        }
        self.versions.setdefault(pipeline_id, []).append(version)
        return version

    def _upload(self, request: Request, match: Any) -> Response:
        name = request.query.get("name") or request.query.get("display_name")
        spec = self._uploaded(request)
        namespace = request.query.get("namespace")
        with self.lock:
            if any(p["display_name"] == name for p in self.pipelines.values()):
                raise HttpError(
                    409,
                    error(409, 6, f"Already exist error: pipeline {name} already exists"),
                )
            pipeline = {
                "pipeline_id": str(uuid.uuid4()),
                "display_name": name,
                "name": name,
                "description": request.query.get("description"),
                "namespace": namespace,
                "created_at": _now(),
            }
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self._version(pipeline["pipeline_id"], str(name), spec)
        return Response(200, pipeline)

    def _upload_version(self, request: Request, match: Any) -> Response:
        pipeline_id = request.query.get("pipelineid", "")
        spec = self._uploaded(request)
        with self.lock:
            if pipeline_id not in self.pipelines:
                raise HttpError(404, error(404, 5, f"pipeline {pipeline_id} not found"))
            version = self._version(pipeline_id, request.query.get("name", ""), spec)
        return Response(200, _public(version))

    def _list_versions(self, request: Request, match: Any) -> Response:
        with self.lock:
            if match["pid"] not in self.pipelines:
                raise HttpError(404, error(404, 5, f"pipeline {match['pid']} not found"))
            versions = list(self.versions.get(match["pid"], []))
        versions.sort(key=lambda v: v["_order"], reverse="desc" in request.query.get("sort_by", ""))
        size = int(request.query.get("page_size") or 100)
        shown = [_public(v) for v in versions[:size]]
        return Response(200, {"pipeline_versions": shown, "total_size": len(versions)})

    def _list_experiments(self, request: Request, match: Any) -> Response:
        namespace = request.query.get("namespace")
        if self.multi_user:
            self._namespace_allowed(namespace)
        wanted = _filter(request.query.get("filter"))
        with self.lock:
            found = [
                e
                for e in self.experiments.values()
                if all(e.get(k) == v for k, v in wanted.items())
                and (not namespace or e.get("namespace") == namespace)
            ]
        return Response(200, {"experiments": found, "total_size": len(found)})

    def _create_experiment(self, request: Request, match: Any) -> Response:
        body = request.json()
        namespace = body.get("namespace")
        if self.multi_user or self.allowed_namespaces is not None:
            self._namespace_allowed(namespace)
        with self.lock:
            if any(
                e["display_name"] == body.get("display_name") and e.get("namespace") == namespace
                for e in self.experiments.values()
            ):
                raise HttpError(409, error(409, 6, "Already exist error: experiment exists"))
            experiment = {
                "experiment_id": str(uuid.uuid4()),
                "display_name": body.get("display_name"),
                "namespace": namespace,
                "created_at": _now(),
                "storage_state": "AVAILABLE",
            }
            self.experiments[experiment["experiment_id"]] = experiment
        return Response(200, experiment)

    def _create_run(self, request: Request, match: Any) -> Response:
        body = request.json()
        reference = body.get("pipeline_version_reference") or {}
        with self.lock:
            if body.get("experiment_id") not in self.experiments:
                raise HttpError(404, error(404, 5, "experiment not found"))
            versions = self.versions.get(reference.get("pipeline_id"), [])
            version = next(
                (
                    v
                    for v in versions
                    if v["pipeline_version_id"] == reference.get("pipeline_version_id")
                ),
                None,
            )
            if version is None:
                raise HttpError(404, error(404, 5, "pipeline version not found"))
            _check_parameters(version["pipeline_spec"], (body.get("runtime_config") or {}))
            run = {
                "run_id": str(uuid.uuid4()),
                "display_name": body.get("display_name"),
                "description": body.get("description"),
                "experiment_id": body["experiment_id"],
                "pipeline_version_reference": reference,
                "runtime_config": body.get("runtime_config"),
                "service_account": body.get("service_account"),
                "state": "PENDING",
                "created_at": _now(),
                "storage_state": "AVAILABLE",
            }
            self.runs[run["run_id"]] = run
        return Response(200, run)

    def _run(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None:
            raise HttpError(404, error(404, 5, f"run {run_id} not found"))
        return run

    def _get_run(self, request: Request, match: Any) -> Response:
        with self.lock:
            return Response(200, dict(self._run(match["rid"])))

    def _terminate(self, request: Request, match: Any) -> Response:
        with self.lock:
            run = self._run(match["rid"])
            if run["state"] in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                raise HttpError(400, error(400, 9, f"run {match['rid']} has ended: {run['state']}"))
            run["state"] = "CANCELED"
        return Response(200, {})

    def _get_artifact(self, request: Request, match: Any) -> Response:
        if not self.artifacts_api:  # grpc-gateway's answer to a route it does not have
            return Response(404, {"code": 5, "message": "Not Found", "details": []})
        with self.lock:
            artifact = self.artifacts.get(match["aid"])
        if artifact is None:
            raise HttpError(404, error(404, 5, f"artifact {match['aid']} not found"))
        answer = dict(artifact)
        if request.query.get("view") == "DOWNLOAD":
            answer["download_url"] = self.object_store.signed_url(artifact["storage_path"])
        return Response(200, answer)

    def _delete_run(self, request: Request, match: Any) -> Response:
        with self.lock:
            self._run(match["rid"])
            del self.runs[match["rid"]]
        return Response(200, {})


class FakeObjectStore(FakeHttpServer):
    """The object store an artifact's presigned URL points at (MinIO, S3): it answers the
    object to the signed query, and only to a request that carries no other credentials."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, bytes] = {}
        self.route("GET", "/mlpipeline/(?P<key>.+)", self._get)

    def put(self, key: str, data: bytes) -> None:
        with self.lock:
            self.objects[key] = data

    def signed_url(self, key: str) -> str:
        path = urllib.parse.quote(key)  # percent-encoded, as a presigned URL's path is
        return f"{self.url}/mlpipeline/{path}?{_SIGNED_QUERY}&X-Amz-Signature={_signature(key)}"

    def _get(self, request: Request, match: Any) -> Response:
        key = urllib.parse.unquote(match["key"])
        if "authorization" in request.headers:
            return Response(
                400,
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; "
                "only the X-Amz-Algorithm query parameter, Signature query string parameter or "
                "the Authorization header should be specified</Message></Error>",
                "application/xml",
            )
        if request.query.get("X-Amz-Signature") != _signature(key):
            return Response(
                403,
                "<Error><Code>SignatureDoesNotMatch</Code></Error>",
                "application/xml",
            )
        with self.lock:
            data = self.objects.get(key)
        if data is None:
            return Response(404, "<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        return Response(200, data, "application/octet-stream")


_SIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=minio%2F20250101%2Fus-east-1%2Fs3%2F"
    "aws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=15&X-Amz-SignedHeaders=host"
)


def _signature(key: str) -> str:
    return hashlib.sha256(f"fake-minio-secret:{key}".encode()).hexdigest()


def _public(version: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in version.items() if not k.startswith("_")}


def _filter(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    predicates = json.loads(text).get("predicates") or []
    wanted = {}
    for predicate in predicates:
        if predicate.get("operation") not in ("EQUALS", 1):
            raise HttpError(400, error(400, 3, "the fake supports EQUALS filters only"))
        value = predicate.get("stringValue", predicate.get("string_value"))
        wanted[predicate["key"]] = value
    return wanted


def _check_parameters(spec: dict[str, Any], runtime_config: dict[str, Any]) -> None:
    pipeline = spec.get("pipeline_spec", spec)
    inputs = ((pipeline.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    for name, value in (runtime_config.get("parameters") or {}).items():
        if name not in inputs:
            raise HttpError(
                400, error(400, 3, f"Invalid input error: unrecognized input parameter {name}")
            )
        wanted = _TYPES.get(inputs[name].get("parameterType", ""), object)
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise HttpError(
                400,
                error(
                    400, 3, f"Invalid input error: parameter {name}: {value!r} has the wrong type"
                ),
            )
