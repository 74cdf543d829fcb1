"""The serving routes (issue 19), as the sidebar calls them: a run's models with a sample
of the data its step saw, a local service started (KServe's model server on 127.0.0.1 in the
serve environment), one prediction made by the Jupyter server, the service stopped."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher.serving import SERVE_PYTHON_ENV
from tests.notebooks import notebook, write
from tests.serve_env import serve_python

from .conftest import Api, finished, wait_for_run
from .test_confinement import record_a_run_of

pytestmark = pytest.mark.timeout(900)  # the first test may make the serve environment

IRIS = notebook(
    (
        ["imports"],
        "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier",
    ),
    (["step:load"], "X, y = load_iris(return_X_y=True)"),
    (["step:train", "model:tree"], "tree = DecisionTreeClassifier(random_state=0).fit(X, y)"),
)


@pytest.fixture
def serve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVE_PYTHON_ENV, serve_python())


async def finished_run(api: Api, root: Path, name: str, nb: dict[str, Any]) -> str:
    write(root / name, nb)
    code, run = await api("POST", "runs", body={"path": name})
    assert code == 202, run
    done = await wait_for_run(api, run["run_id"], finished, timeout=120)
    assert done["status"] == "Succeeded", done
    run_id: str = run["run_id"]
    return run_id


async def wait_for_service(api: Api, service_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, service = await api("GET", "services", service_id)
        assert code == 200, service
        if service["status"] != "Pending":
            return dict(service)
        assert time.monotonic() < deadline, service
        await asyncio.sleep(0.2)


async def test_a_runs_model_is_served_called_and_stopped(
    api: Api, root: Path, serve_env: None
) -> None:
    # Given a finished run whose train step kept a model
    run_id = await finished_run(api, root, "iris.ipynb", IRIS)
    code, models = await api("GET", "runs", run_id, "models")
    assert code == 200, models
    (model,) = models["models"]
    assert (model["name"], model["step"], model["format"]) == ("tree", "train", "sklearn")
    assert "scikit-learn" in model["versions"]
    rows = model["sample"]["instances"]
    assert len(rows) == 3 and len(rows[0]) == 4  # a few rows of X, for the form

    # When it is served here
    code, service = await api("POST", "services", body={"run_id": run_id, "engine": "local"})
    assert code == 202, service
    assert service["status"] == "Pending" and service["model"] == "tree"
    service = await wait_for_service(api, service["service_id"])
    assert service["status"] == "Ready", service
    assert service["url"].startswith("http://127.0.0.1:")
    assert service["protocols"] == ["v1", "v2"]
    code, listed = await api("GET", "services")
    assert [s["service_id"] for s in listed["services"]] == [service["service_id"]]

    # Then one prediction goes through the Jupyter server and equals the model's own
    code, answer = await api(
        "POST", "services", service["service_id"], "predict", body={"instances": rows}
    )
    assert code == 200, answer
    assert answer == {"predictions": [0, 0, 0]}  # iris' first rows are setosa
    code, refused = await api(
        "POST", "services", service["service_id"], "predict", body={"instances": [[1, 2]]}
    )
    assert code == 400 and "4 features" in refused["message"], refused

    # And DELETE stops the model server: nothing is left listening
    code, _ = await api("DELETE", "services", service["service_id"])
    assert code == 204
    port = int(service["url"].rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 1)
    code, gone = await api("GET", "services", service["service_id"])
    assert code == 404, gone


async def test_a_run_without_a_model_is_refused_at_once(api: Api, root: Path) -> None:
    run_id = await finished_run(api, root, "plain.ipynb", notebook((["step:one"], "x = 1")))
    code, models = await api("GET", "runs", run_id, "models")
    assert (code, models) == (200, {"models": []})
    code, refused = await api("POST", "services", body={"run_id": run_id})
    assert code == 400 and refused["reason"] == "no_model", refused
    assert "tag the cell that fits it model:NAME" in refused["message"]


async def test_bodies_that_are_off_are_400(api: Api) -> None:
    for body, field in (
        ({}, "'run_id' is required"),
        ({"run_id": 3}, "'run_id' must be text"),
        ({"run_id": "r", "engine": "docker"}, "'engine' must be one of local, kserve"),
        ({"run_id": "r", "port": 80}, "'port' must be from 1024 to 65535"),
    ):
        code, refused = await api("POST", "services", body=body)
        assert code == 400 and field in refused["message"], (body, refused)


async def test_models_of_runs_outside_the_root_are_not_found(
    api: Api, tmp_path: Path, cellpipe_home: Path
) -> None:
    outside = tmp_path / "elsewhere" / "secret.ipynb"
    outside.parent.mkdir()
    run_id = record_a_run_of(outside, cellpipe_home)
    code, _ = await api("GET", "runs", run_id, "models")
    assert code == 404
    code, _ = await api("POST", "services", body={"run_id": run_id})
    assert code == 404
    code, _ = await api("GET", "services", "svc-none")
    assert code == 404
