"""Serving a run's model (issue 19): find the models a run kept, serve one here with KServe's
own model server (`local`) or on the cluster as an InferenceService (`kserve`), call it.

The model server runs in a process of its own (runtime/model_server.py), in a Python that
has `kserve` (`pip install 'cellpipe[serve]'`): this one, or CELLPIPE_SERVE_PYTHON's. KServe
pins pandas below 3, so it can live in an environment of its own beside cellpipe's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Conflict, NotFound, UserError
from .service_records import FAILED, PENDING, READY, STOPPED, ServiceRecord, new_service_id
from .store import RunRecord

INFO_FILE = "cellpipe-model.json"  # runtime/models.py's; the runtime is not imported here
MODEL_OUTPUT_PREFIX = "cellpipe_model_"  # converter/model.py's Model outputs
BUILT_IN_FORMATS = ("sklearn", "xgboost", "lightgbm", "pytorch")  # KServe serves these itself
SERVE_PYTHON_ENV = "CELLPIPE_SERVE_PYTHON"
LOCAL_HOST = "127.0.0.1"
READY_SECONDS = 60.0


@dataclass
class RunModel:
    """A model a run's step kept: where it lies and what its INFO_FILE says."""

    name: str
    step: str
    format: str
    versions: dict[str, str]
    directory: Path
    sample: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """As GET /runs/ID/models answers it."""
        return {
            "name": self.name,
            "step": self.step,
            "format": self.format,
            "versions": self.versions,
            "sample": self.sample or {"instances": []},
        }


def run_models(record: RunRecord) -> list[RunModel]:
    """The models the run's steps kept (each step's MODEL_OUTPUT_PREFIX folders), in step
    order; none for a run on a cluster engine, whose artifacts are not on this machine."""
    found = []
    for step in record.steps.values():
        if not step.outputs or not Path(step.outputs).is_dir():
            continue
        for folder in sorted(Path(step.outputs).glob(f"{MODEL_OUTPUT_PREFIX}*")):
            try:
                info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a step that failed while saving it: no model
            found.append(
                RunModel(
                    name=info["name"],
                    step=step.name,
                    format=info["format"],
                    versions=info.get("versions") or {},
                    directory=folder,
                    sample=info.get("sample"),
                )
            )
    return found


def choose_model(record: RunRecord, name: str | None) -> RunModel:
    """The run's model NAME, or its only one; user errors that say what to do otherwise."""
    models = run_models(record)
    if not models:
        where = (
            f" (it ran on {record.engine}: its artifacts are in the cluster's artifact store)"
            if record.engine not in ("local", "kfp-local")
            else ""
        )
        raise UserError(
            f"run {record.run_id} kept no model{where}; tag the cell that fits it model:NAME "
            "(or write `%%step NAME --model NAME`), run the notebook again, and serve that run",
            reason="no_model",
        )
    if name is None and len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise UserError(
            f"run {record.run_id} kept {len(models)} models ({names}); choose one with --model",
            reason="no_model",
        )
    for model in models:
        if name is None or model.name == name:
            return model
    names = ", ".join(m.name for m in models)
    raise NotFound(f"run {record.run_id} has no model {name!r}; its models: {names}")


# --- local: KServe's model server on 127.0.0.1 -------------------------------------------------


def serve_python() -> str:
    """The Python that runs the model server: CELLPIPE_SERVE_PYTHON, else this one."""
    return os.environ.get(SERVE_PYTHON_ENV) or sys.executable


def check_serve_python(python: str) -> None:
    """A user error unless `python` can import kserve (the `serve` extra)."""
    try:
        found = subprocess.run(
            [python, "-c", "import kserve, cellpipe.runtime.models"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except OSError as exc:
        raise UserError(f"cannot start {python} to serve the model ({exc})") from None
    if found.returncode != 0:
        last = (found.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"serving needs KServe's model server in {python} ({last}): run "
            f"`pip install 'cellpipe[serve]'` there, or point {SERVE_PYTHON_ENV} at a Python "
            "that has kserve and cellpipe",
            reason="serve_unavailable",
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def start_model_server(
    model: RunModel, name: str, port: int, log: Path, python: str | None = None
) -> subprocess.Popen[bytes]:
    """KServe's model server for `model` on 127.0.0.1:port (V1 and V2), its output in `log`.
    A process group of its own: stopping it stops it alone."""
    python = python or serve_python()
    check_serve_python(python)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                python,
                "-m",
                "cellpipe.runtime.model_server",
                "--model_dir",
                str(model.directory),
                "--model_name",
                name,
                "--http_port",
                str(port),
                "--host",
                LOCAL_HOST,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_ready(
    url: str, name: str, process: subprocess.Popen[bytes], log: Path, seconds: float = READY_SECONDS
) -> None:
    """Until the model answers ready (V2's /v2/models/NAME/ready); a user error with the
    server's last lines when it exits or does not answer in time."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(
                f"the model server exited ({process.returncode}) before it was ready:\n"
                + _tail(log),
                reason="serve_failed",
            )
        try:
            if requests.get(f"{url}/v2/models/{name}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_process(process.pid)
    raise UserError(
        f"the model server was not ready within {seconds:.0f} s:\n" + _tail(log),
        reason="serve_failed",
    )


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(pid: int, seconds: float = 10.0) -> None:
    """Stop the model server's process group (SIGTERM, then SIGKILL)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _alive(pid)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it once it exits
        if waited == pid:
            return False
    except ChildProcessError:
        pass  # another process's child (a server the CLI started): only ask whether it lives
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def service_name(record: RunRecord, model: RunModel, name: str | None) -> str:
    """The model's name in its URLs: --name, else the model's variable name."""
    return name or model.name


# --- requests and the one place a service starts -----------------------------------------------


@dataclass
class ServeRequest:
    run_id: str
    model: str | None = None
    engine: str = "local"  # "local" | "kserve"
    name: str | None = None
    port: int | None = None
    # kserve
    gpus: int = 0
    gpu_type: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    image: str | None = None
    storage_uri: str | None = None
    service_account: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def start_local(
    record: RunRecord, request: ServeRequest, home: Path, service_id: str | None = None
) -> tuple[ServiceRecord, subprocess.Popen[bytes]]:
    """Start KServe's model server for the run's model and wait until it is ready."""
    model = choose_model(record, request.model)
    name = service_name(record, model, request.name)
    port = request.port or free_port()
    service = ServiceRecord(
        service_id=service_id or new_service_id(),
        run_id=record.run_id,
        model=model.name,
        engine="local",
        name=name,
        url=f"http://{LOCAL_HOST}:{port}",
    )
    log = home / "services" / f"{service.service_id}.log"
    process = start_model_server(model, name, port, log)
    service.pid = process.pid
    try:
        wait_ready(service.url, name, process, log)
    except UserError:
        service.status = FAILED
        raise
    service.status = READY
    return service, process


def local_status(service: ServiceRecord) -> str:
    """Ready while its process lives and answers, else Stopped."""
    if service.engine != "local" or service.status in (STOPPED, FAILED):
        return service.status
    if service.pid is None:  # still starting (POST /services' thread)
        return service.status
    if not _alive(service.pid):
        return STOPPED
    import requests

    try:
        answer = requests.get(f"{service.url}/v2/models/{service.name}/ready", timeout=2)
    except requests.RequestException:
        return PENDING
    return READY if answer.status_code == 200 else PENDING


# --- calling a model ------------------------------------------------------------------------------


def predict_url(url: str, model: str | None = None) -> str:
    """The V1 predict URL for a service URL (http://HOST:PORT), or `url` when it is one."""
    if url.endswith(":predict"):
        return url
    base = url.rstrip("/")
    if model is None:
        model = only_model(base)
    return f"{base}/v1/models/{model}:predict"


def only_model(base: str) -> str:
    """The one model a server serves (V1 GET /v1/models)."""
    import requests

    try:
        answer = requests.get(f"{base}/v1/models", timeout=10)
        names = answer.json().get("models") or []
    except (requests.RequestException, ValueError) as exc:
        raise UserError(f"cannot ask {base} for its models: {exc}") from None
    if len(names) != 1:
        raise UserError(f"{base} serves {names}; name the model to call")
    return str(names[0])


def as_instances(rows: Any) -> list[Any]:
    """Rows as V1 instances: a frame's rows as objects of its columns, an array's as lists."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        records: list[Any] = json.loads(json.dumps(rows.to_dict(orient="records"), default=_plain))
        return records
    if hasattr(rows, "tolist"):
        listed: list[Any] = rows.tolist()
        return listed
    return list(rows)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def predict(url: str, rows: Any, model: str | None = None, timeout: float = 60.0) -> list[Any]:
    """The model's predictions for `rows` (V1 protocol); a user error with the server's own
    message when it refuses them."""
    import requests

    target = predict_url(url, model)
    try:
        answer = requests.post(target, json={"instances": as_instances(rows)}, timeout=timeout)
    except requests.RequestException as exc:
        raise UserError(f"cannot reach the model at {target}: {exc}") from None
    try:
        body = answer.json()
    except ValueError:
        body = {"error": answer.text[:300]}
    if answer.status_code != 200:
        raise UserError(
            f"the model at {target} answered {answer.status_code}: "
            f"{body.get('error') or body.get('detail') or body}",
            reason="bad_request" if answer.status_code < 500 else "model_error",
        )
    predictions: list[Any] = body["predictions"]
    return predictions


def refuse_unless_ready(service: ServiceRecord) -> None:
    if service.status != READY:
        raise Conflict(f"service {service.service_id} is {service.status}, not Ready")
