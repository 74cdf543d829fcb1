"""Serving here (issue 19): a scikit-learn notebook with a `model:` tag run by the local
engine, its model kept as `model.joblib` with its versions, served by KServe's own model
server on 127.0.0.1 over real HTTP; V1 and V2 answers equal the estimator's own predict.
The model server runs in the serve environment (tests/serve_env.py: kserve pins pandas < 3)."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import nbformat
import pytest
import requests

from cellpipe.launcher.errors import NotFound, UserError
from cellpipe.launcher.service_records import READY, ServiceRecord
from cellpipe.launcher.services import Services
from cellpipe.launcher.serving import SERVE_PYTHON_ENV, ServeRequest, predict, run_models
from cellpipe.launcher.store import find_run, open_store
from tests.serve_env import serve_python

pytestmark = pytest.mark.timeout(900)  # the first test makes the serve environment

IMPORTS = (
    "import numpy as np\nimport pandas as pd\nfrom sklearn.datasets import load_iris\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.model_selection import train_test_split"
)
LOAD = (
    "iris = load_iris(as_frame=True)\n"
    "X_train, X_test, y_train, y_test = train_test_split(\n"
    "    iris.data, iris.target, test_size=0.3, random_state=0)"
)
TRAIN = (
    "clf = LogisticRegression(max_iter=300)\nclf.fit(X_train, y_train)\n"
    "score = clf.score(X_test, y_test)"
)


def notebook(path: Path, cells: list[tuple[list[str], str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    for tags, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


def run_here(home: Path, path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "run", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(home)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "Succeeded", data
    run_id: str = data["run_id"]
    return run_id


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving") / "home"


@pytest.fixture(scope="module")
def iris_run(home: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = notebook(
        tmp_path_factory.mktemp("nb") / "iris_serve.ipynb",
        [(["imports"], IMPORTS), (["step:load"], LOAD), (["step:train", "model:clf"], TRAIN)],
    )
    return run_here(home, path)


@pytest.fixture(scope="module")
def services(home: Path) -> Services:
    return Services(home)


@pytest.fixture(scope="module")
def served(services: Services, iris_run: str) -> Iterator[ServiceRecord]:
    """KServe's model server for the run's model, stopped afterwards: nothing left running."""
    os.environ[SERVE_PYTHON_ENV] = serve_python()
    try:
        service, process = services.serve_here(ServeRequest(run_id=iris_run))
    finally:
        del os.environ[SERVE_PYTHON_ENV]
    try:
        yield service
    finally:
        services.stop(service.service_id)
        assert process.wait(timeout=10) is not None
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", int(service.url.rsplit(":", 1)[1])), 1)


def test_the_model_is_kept_as_joblib_with_its_versions(services: Services, iris_run: str) -> None:
    # Given the run of a notebook whose train step is tagged model:clf
    (model,) = run_models(services.find_run(iris_run))
    # Then the model lies in the format KServe's sklearn runtime reads, with its versions
    assert (model.name, model.step, model.format) == ("clf", "train", "sklearn")
    assert (model.directory / "model.joblib").is_file()
    assert model.versions == {
        "python": platform.python_version(),
        "scikit-learn": metadata.version("scikit-learn"),
        "joblib": metadata.version("joblib"),
        "numpy": metadata.version("numpy"),
    }
    estimator = joblib.load(model.directory / "model.joblib")
    assert type(estimator).__name__ == "LogisticRegression"
    # and a few rows of the test set the step held, with its columns, prefill a request
    assert model.sample is not None
    assert model.sample["columns"] == [str(c) for c in estimator.feature_names_in_]
    assert len(model.sample["instances"]) == 3


def expected_and_rows(services: Services, run_id: str) -> tuple[list[Any], Any]:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    (model,) = run_models(services.find_run(run_id))
    estimator = joblib.load(model.directory / "model.joblib")
    iris = load_iris(as_frame=True)
    _, x_test, _, _ = train_test_split(iris.data, iris.target, test_size=0.3, random_state=0)
    return estimator.predict(x_test).tolist(), x_test


def test_v1_and_v2_answers_equal_the_estimators_predict(
    services: Services, iris_run: str, served: ServiceRecord
) -> None:
    expected, rows = expected_and_rows(services, iris_run)
    assert served.status == READY and served.url.startswith("http://127.0.0.1:")
    # V1, rows as lists of numbers
    v1 = requests.post(
        f"{served.url}/v1/models/clf:predict", json={"instances": rows.to_numpy().tolist()}
    )
    assert v1.status_code == 200, v1.text
    assert v1.json() == {"predictions": expected}
    # V1 through cellpipe.predict, the frame's rows as objects of its columns
    assert predict(served.url, rows) == expected
    # Open Inference (V2)
    v2 = requests.post(
        f"{served.url}/v2/models/clf/infer",
        json={
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.to_numpy().ravel().tolist(),
                }
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    assert output["data"] == expected and output["shape"] == [len(expected)]


def test_health_and_metadata_routes_answer(served: ServiceRecord) -> None:
    assert requests.get(f"{served.url}/v2/health/live").json() == {"live": True}
    assert requests.get(f"{served.url}/v2/health/ready").json() == {"ready": True}
    assert requests.get(f"{served.url}/v1/models/clf").json() == {"name": "clf", "ready": True}
    assert requests.get(f"{served.url}/v2/models/clf").json()["name"] == "clf"
    assert requests.get(f"{served.url}/v1/models").json() == {"models": ["clf"]}


def test_services_know_the_running_server(services: Services, served: ServiceRecord) -> None:
    (listed,) = [s for s in services.all() if s.service_id == served.service_id]
    assert listed.status == READY and listed.run_id == served.run_id
    answer = services.predict(served.service_id, [[5.1, 3.5, 1.4, 0.2]])
    assert answer == {"predictions": [0]}


def test_a_run_without_a_model_is_a_user_error(
    services: Services, home: Path, tmp_path: Path
) -> None:
    path = notebook(tmp_path / "plain.ipynb", [(["step:one"], "x = 1")])
    run_id = run_here(home, path)
    with pytest.raises(UserError, match=r"kept no model; tag the cell that fits it model:NAME"):
        services.serve_here(ServeRequest(run_id=run_id))


def test_a_model_tagged_after_a_cached_run_is_kept_by_the_next_run(
    home: Path, tmp_path: Path
) -> None:
    """The message above says: tag the cell and run again. The step's cached entry from the
    untagged run holds no model, so the tag makes the step run again (its cache key)."""
    train = TRAIN + "\n# trained here only"  # a key of its own: no other test's cached train
    cells = [(["imports"], IMPORTS), (["step:load"], LOAD), (["step:train"], train)]
    path = notebook(tmp_path / "tagged_later.ipynb", cells)
    store = open_store(home)
    assert run_models(find_run(store, run_here(home, path))) == []
    cells[-1] = (["step:train", "model:clf"], train)
    tagged = find_run(store, run_here(home, notebook(path, cells)))
    assert tagged.steps["train"].cached is False and tagged.steps["load"].cached is True
    assert [m.name for m in run_models(tagged)] == ["clf"]


def test_an_unknown_model_name_is_a_user_error(services: Services, iris_run: str) -> None:
    with pytest.raises(NotFound, match=r"has no model 'forest'; its models: clf"):
        services.serve_here(ServeRequest(run_id=iris_run, model="forest"))


def test_a_model_the_runtime_cannot_serve_is_a_user_error(
    services: Services, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step whose model is a plain dict: no predict, not callable
    path = notebook(tmp_path / "table.ipynb", [(["step:one", "model:table"], "table = {'a': 1}")])
    run_id = run_here(home, path)
    (model,) = run_models(services.find_run(run_id))
    assert model.format == "custom"
    monkeypatch.setenv(SERVE_PYTHON_ENV, serve_python())
    # Then serving it says what to mark instead, and leaves no server behind
    with pytest.raises(UserError, match=r"no predict method and is not callable; mark a fitted"):
        services.serve_here(ServeRequest(run_id=run_id))


def test_kfp_local_keeps_the_model_as_its_model_artifact(
    services: Services, home: Path, tmp_path: Path
) -> None:
    # Given the same notebook run by kfp.local (the reference engine)
    path = notebook(
        tmp_path / "iris_kfp.ipynb",
        [(["imports"], IMPORTS), (["step:load"], LOAD), (["step:train", "model:clf"], TRAIN)],
    )
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "run", str(path), "--engine", "kfp-local"],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(home)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run_id = services.runs.list()[0].run_id
    # Then the Model output of the train task holds the same artifact
    (model,) = run_models(services.find_run(run_id))
    assert (model.name, model.format) == ("clf", "sklearn")
    assert model.directory.name == "cellpipe_model_clf"
    assert model.directory.parent.name == "train"  # kfp.local's task folder
    assert joblib.load(model.directory / "model.joblib").n_features_in_ == 4
