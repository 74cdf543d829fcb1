"""The sidebar's Tune and Serve in a real browser (Debian's Chromium, Playwright) against a real
JupyterLab with the real server extension: its /tunes and /services routes, the local tuning
engine and KServe's model server, nothing mocked.

ui-tests/tests/tune.spec.ts tunes the example notebook's epochs over a grid and writes the best
value into its parameters cell; serve.spec.ts runs a scikit-learn notebook tagged `model:clf`,
serves the model here, sends a prediction and stops it. Screenshots go to
test-artifacts/ui/tune/ and test-artifacts/ui/serve/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.notebooks import notebook, write
from tests.serve_env import serve_python

from .conftest import ARTIFACTS, Lab
from .test_sidebar import run_story

TUNE_ARTIFACTS = ARTIFACTS / "tune"
SERVE_ARTIFACTS = ARTIFACTS / "serve"


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.mark.timeout(600)
def test_tune_from_the_sidebar_and_write_the_best_value(jupyter_lab: Lab) -> None:
    # Given the example notebook in the server's root (the fixture copies it)
    artifacts = fresh(TUNE_ARTIFACTS)

    # When the browser story tunes it and writes the best value into its parameters cell
    result = run_story(jupyter_lab, "tune.spec.ts", CELLPIPE_TUNE_ARTIFACTS=str(artifacts))

    # Then it passed, and left its screenshots
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    shots = sorted(p.name for p in artifacts.glob("*.png"))
    assert shots == ["01-tune-dialog.png", "02-tune-view.png", "03-best-written.png"]

    # And the server's record says what the browser showed: a grid of three trials, the best
    # of them the best of the three values
    answer: Any = jupyter_lab.api("cellpipe/api/tunes?notebook=iris_cellpipe.ipynb")
    (tune,) = answer["tunes"]
    assert tune["status"] == "Succeeded"
    assert tune["objective"] == {"metric": "accuracy", "direction": "maximize"}
    assert tune["search"] == {"epochs": "5,20,40"}
    trials = tune["trials"]
    assert sorted(t["parameters"]["epochs"] for t in trials) == [5, 20, 40]
    assert {t["status"] for t in trials} == {"Succeeded"}
    assert tune["best"]["value"] == max(t["value"] for t in trials)
    # each trial is a run of the notebook with its value, as `cellpipe run -p` records one
    for trial in trials:
        run: Any = jupyter_lab.api(f"cellpipe/api/runs/{trial['run_id']}")
        assert run["parameters"]["epochs"] == trial["parameters"]["epochs"]
        assert run["metrics"]["accuracy"] == trial["value"]
    # the values were written in the browser, not saved: the notebook on disk is as it was
    saved = json.loads((jupyter_lab.root / "iris_cellpipe.ipynb").read_text())
    (parameters,) = [c for c in saved["cells"] if c.get("id") == "parameters"]
    assert "epochs = 20" in "".join(parameters["source"])


# A scikit-learn classifier fit in its own step and tagged as the pipeline's model; the rows
# are numpy arrays, so the sample rows and the V1 instances are plain lists of numbers.
FLOWERS = notebook(
    "# Flowers, served",
    (
        ["imports"],
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import train_test_split",
    ),
    (["parameters"], "C = 1.0"),
    (
        ["step:load"],
        "X, y = load_iris(return_X_y=True)\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)",
    ),
    (
        ["step:train", "model:clf"],
        "clf = LogisticRegression(C=C, max_iter=300).fit(X_train, y_train)\n"
        "score = clf.score(X_test, y_test)",
    ),
    (["metrics"], "score"),
    metadata={
        "cellpipe": {"pipeline": "flowers"},
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    },
)


@pytest.fixture
def lab_with_kserve(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Lab]:
    """The lab, started with KServe's model server at hand (its own environment, made once)."""
    monkeypatch.setenv("CELLPIPE_SERVE_PYTHON", serve_python())
    lab: Lab = request.getfixturevalue("jupyter_lab")
    yield lab


@pytest.mark.timeout(1200)  # the first run makes the serve environment (pip install kserve)
def test_serve_a_runs_model_from_the_sidebar_and_predict(lab_with_kserve: Lab) -> None:
    # Given a notebook whose train step is tagged model:clf, in the server's root
    lab = lab_with_kserve
    write(lab.root / "flowers.ipynb", FLOWERS)
    artifacts = fresh(SERVE_ARTIFACTS)

    # When the browser story runs it, serves its model, predicts and stops the service
    result = run_story(lab, "serve.spec.ts", CELLPIPE_SERVE_ARTIFACTS=str(artifacts))

    # Then it passed, and left its screenshots
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    shots = sorted(p.name for p in artifacts.glob("*.png"))
    assert shots == ["01-serve-dialog.png", "02-prediction.png", "03-stopped.png"]

    # And the server says what the browser showed: the run kept its model, with the rows the
    # form was prefilled with, and the stopped service is gone
    runs: Any = lab.api("cellpipe/api/runs?notebook=flowers.ipynb")
    (run,) = runs["runs"]
    models: Any = lab.api(f"cellpipe/api/runs/{run['run_id']}/models")
    (model,) = models["models"]
    assert (model["name"], model["step"], model["format"]) == ("clf", "train", "sklearn")
    assert model["sample"]["instances"] and all(len(r) == 4 for r in model["sample"]["instances"])
    services: Any = lab.api("cellpipe/api/services")
    assert services["services"] == []
