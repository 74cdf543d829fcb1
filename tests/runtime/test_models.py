"""A step's model kept in its serving runtime's format (issue 19): scikit-learn, XGBoost and
LightGBM in their own files, anything else cloudpickled for cellpipe's predictor; the format
and versions recorded; loaded back it predicts as before; served by KServe's model server
here (the serve environment), V1 and V2 answer as the model's own predict."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cellpipe.launcher.serving import (
    RunModel,
    free_port,
    start_model_server,
    stop_process,
    wait_ready,
)
from cellpipe.runtime.models import INFO_FILE, UnsavableModel, load_model, read_info, save_model
from tests.serve_env import serve_python

pytestmark = pytest.mark.timeout(900)  # the served tests may make the serve environment


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    frame = load_breast_cancer(as_frame=True)
    return frame.data.iloc[:, :6], frame.target


def fitted(kind: str, x: pd.DataFrame, y: pd.Series) -> Any:
    if kind == "sklearn":
        return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    if kind == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(x, y)
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)


@pytest.mark.parametrize(
    ("kind", "file", "library"),
    [
        ("sklearn", "model.joblib", "scikit-learn"),
        ("xgboost", "model.json", "xgboost-cpu"),
        ("lightgbm", "model.bst", "lightgbm"),
    ],
)
def test_each_format_is_kept_in_its_runtimes_file(
    kind: str, file: str, library: str, data: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    x, y = data
    model = fitted(kind, x, y)
    x_test = x.iloc[100:120]
    saved = save_model("clf", model, tmp_path / "m", {"x_train": x, "x_test": x_test, "y": y})
    # the runtime's own file, and a record of the format and the versions
    assert (saved.format, saved.file) == (kind, file)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([file, INFO_FILE])
    assert saved.versions[library] == metadata.version(library)
    info = read_info(tmp_path / "m")
    assert info["format"] == kind and info["versions"] == saved.versions
    # three rows of the test frame the step held, with its columns
    assert info["sample"] == {
        "instances": x_test.iloc[:3].to_numpy().tolist(),
        "columns": list(x.columns),
    }
    # loaded back as the serving runtime loads it, it predicts what the model did
    loaded = load_model(tmp_path / "m")
    expected = model.predict_proba(x_test)[:, 1] if kind != "sklearn" else model.predict(x_test)
    if kind == "xgboost":
        import xgboost

        got = loaded.predict(xgboost.DMatrix(x_test))
    else:
        got = loaded.predict(x_test)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_any_other_value_is_cloudpickled_for_the_custom_predictor(tmp_path: Path) -> None:
    class Threshold:  # a notebook's own class: cloudpickled by value
        def __init__(self, limit: float) -> None:
            self.limit = limit

        def predict(self, rows: Any) -> list[int]:
            return [int(sum(row) > self.limit) for row in rows]

    saved = save_model("rule", Threshold(10), tmp_path / "m")
    assert (saved.format, saved.file) == ("custom", "model.pkl")
    assert set(saved.versions) == {"python", "cloudpickle"}
    assert load_model(tmp_path / "m").predict([[1, 2], [9, 9]]) == [0, 1]
    assert "sample" not in read_info(tmp_path / "m")  # no width known, no sample guessed


def test_a_value_nothing_can_write_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsavableModel, match="lock"):
        save_model("lock", threading.Lock(), tmp_path / "m")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Any]:
    """Serve a saved model's folder here; the server is stopped afterwards."""
    started: list[Any] = []

    def serve(directory: Path) -> str:
        info = read_info(directory)
        model = RunModel(info["name"], "fit", info["format"], info["versions"], directory)
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        process = start_model_server(model, info["name"], port, log, serve_python())
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, info["name"], process, log)
        return url

    yield serve
    for process in started:
        stop_process(process.pid)
        process.wait(timeout=30)


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_xgboost_and_lightgbm_are_served_as_their_own_predict(
    kind: str, data: tuple[pd.DataFrame, pd.Series], tmp_path: Path, served: Any
) -> None:
    x, y = data
    model = fitted(kind, x, y)
    save_model("clf", model, tmp_path / kind, {"x_test": x.iloc[:20]})
    url = served(tmp_path / kind)
    rows = x.iloc[200:210]
    expected = model.predict_proba(rows)[:, 1]  # what the runtime's Booster predicts
    v1 = requests.post(f"{url}/v1/models/clf:predict", json={"instances": rows.to_numpy().tolist()})
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(v1.json()["predictions"], expected, rtol=1e-5)
    v2 = requests.post(
        f"{url}/v2/models/clf/infer",
        data=json.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": list(rows.shape),
                        "datatype": "FP64",
                        "data": rows.to_numpy().ravel().tolist(),
                    }
                ]
            }
        ),
        headers={"Content-Type": "application/json"},
    )
    assert v2.status_code == 200, v2.text
    np.testing.assert_allclose(v2.json()["outputs"][0]["data"], expected, rtol=1e-5)
