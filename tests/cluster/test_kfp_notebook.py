"""A run on Kubeflow Pipelines gives back its executed notebook, assembled from the steps'
`cellpipe_report` HTML artifacts as the KFP API offers them (the run's details list each
task's output artifacts; the ArtifactService gives a signed URL of the object store), against
the fake KFP API and its fake object store; where the API offers none (a KFP before 2.1),
`cellpipe status` says why and the run keeps no notebook."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cellpipe.runtime.report_html import REPORT_OUTPUT, REPORT_TYPE, render, step_sources
from tests.cluster.conftest import IMAGE, Cli, Kfp
from tests.fakes.kfp import FakeKfp
from tests.notebooks import notebook, write

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n pixels").decode()
HTML_TYPE = REPORT_TYPE.split("@")[0]  # system.HTML, as KFP names the artifact's type


def plot_notebook(path: Path) -> Path:
    return write(
        path / "plots.ipynb",
        notebook(
            (["imports"], "import json"),
            (["step:load data", "report:enabled"], "data = list(range(4))\ndisplay(data)"),
            (["step:plot", "report:enabled"], "print('drawing')\nshape = len(data)"),
        ),
    )


def submitted(cellpipe: Cli, nb: Path, host: str) -> dict[str, Any]:
    code, out, err = cellpipe(
        "submit", nb, "--engine", "kfp", "--host", host, "--image", IMAGE, "--format", "json"
    )
    assert code == 0, err
    run: dict[str, Any] = json.loads(out)
    return run


def page(home: Path, run: dict[str, Any], task: str, outputs: list[dict[str, Any]]) -> bytes:
    """The page the step's component writes (runtime/report_html.py), for its own cells."""
    bundle = json.loads((home / "runs" / run["run_id"] / "bundle.json").read_text())
    cells = bundle["steps"][task]["cells"]
    report = {
        "printed": "",
        "seconds": 0.5,
        "status": "Succeeded",
        "error": None,
        "prelude": [{"index": 0, "id": "cell-0", "outputs": [], "seconds": 0.1, "failed": False}],
        "cells": [
            {"index": cells[0]["index"], "id": cells[0]["id"], "outputs": outputs,
             "seconds": 0.2, "failed": False}
        ],
    }  # fmt: skip
    name = bundle["steps"][task]["name"]
    return render(report, name, step_sources(bundle, task), "plots.ipynb").encode()


TABLE = {
    "output_type": "display_data",
    "data": {"text/html": "<table><tr><td>0</td></tr></table>", "text/plain": "[0, 1, 2, 3]"},
    "metadata": {},
}
FIGURE = {"output_type": "display_data", "data": {"image/png": PNG}, "metadata": {}}
PRINTED = {"output_type": "stream", "name": "stdout", "text": "drawing\n"}


def status(cellpipe: Cli, run: dict[str, Any], host: str) -> tuple[dict[str, Any], str]:
    code, out, err = cellpipe("status", run["run_id"], "--format", "json", "--host", host)
    assert code == 0, err
    shown: dict[str, Any] = json.loads(out)
    return shown, err


def test_the_notebook_is_assembled_from_the_runs_html_artifacts(
    tmp_path: Path, home: Path, cellpipe: Cli, kfp: Kfp
) -> None:
    fake = kfp.fake_only()
    run = submitted(cellpipe, plot_notebook(tmp_path), kfp.host)
    # Given KFP ran both steps and stored each one's page as its HTML artifact
    fake.set_run(
        run["external"]["run_id"],
        "SUCCEEDED",
        {"load data": ("SUCCEEDED", "p-1"), "plot": ("SUCCEEDED", "p-2")},
        outputs={
            "load data": {REPORT_OUTPUT: (HTML_TYPE, page(home, run, "load-data", [TABLE]))},
            "plot": {REPORT_OUTPUT: (HTML_TYPE, page(home, run, "plot", [PRINTED, FIGURE]))},
        },
    )
    # When the run is looked at
    shown, err = status(cellpipe, run, kfp.host)
    # Then it has its executed notebook, with each step's outputs
    assert shown["status"] == "Succeeded"
    assert shown["executed_notebook"], err
    assert "notebook_note" not in shown["external"]
    nb = nbformat.read(shown["executed_notebook"], as_version=4)
    nbformat.validate(nb)
    _imports, load, plot = nb.cells
    assert [dict(o) for o in load.outputs] == [TABLE]
    assert [o.output_type for o in plot.outputs] == ["stream", "display_data"]
    assert plot.outputs[1].data["image/png"] == PNG
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]
    assert nb.metadata.cellpipe_run["engine"] == "kfp"
    # asked of the KFP API with its credentials; the object store got none of them
    asked = [r for r in fake.sent("GET") if r.path.startswith("/apis/v2beta1/artifacts/")]
    assert len(asked) == 2
    assert all(r.query.get("view") == "DOWNLOAD" for r in asked)
    assert all(r.headers["authorization"] == "Bearer kfp-token" for r in asked)
    downloads = fake.object_store.sent("GET")
    assert len(downloads) == 2 and not any("authorization" in r.headers for r in downloads)
    # and the text form names it
    _code, out, err = cellpipe("status", run["run_id"], "--host", kfp.host)
    assert f"executed notebook: {shown['executed_notebook']}" in out


def test_a_failed_step_has_no_artifact_and_the_notebook_says_which(
    tmp_path: Path, home: Path, cellpipe: Cli, kfp: Kfp
) -> None:
    fake = kfp.fake_only()
    run = submitted(cellpipe, plot_notebook(tmp_path), kfp.host)
    # a cluster's launcher uploads no output of a failed step
    fake.set_run(
        run["external"]["run_id"],
        "FAILED",
        {"load data": ("SUCCEEDED", "p-1"), "plot": ("FAILED", "p-2")},
        message="plot failed",
        outputs={"load data": {REPORT_OUTPUT: (HTML_TYPE, page(home, run, "load-data", [TABLE]))}},
    )
    shown, _ = status(cellpipe, run, kfp.host)
    assert shown["status"] == "Failed"
    nb = nbformat.read(shown["executed_notebook"], as_version=4)
    nbformat.validate(nb)
    assert [dict(o) for o in nb.cells[1].outputs] == [TABLE]
    assert nb.cells[2].outputs == []
    note = shown["external"]["notebook_note"]
    assert (
        note
        == "outputs not kept for step 'plot' (Kubeflow Pipelines keeps no outputs of a failed step)"
    )
    _code, out, _err = cellpipe("status", run["run_id"], "--host", kfp.host)
    assert f"executed notebook: {note}" in out


@pytest.fixture
def old_kfp(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKfp]:
    """A KFP before 2.1: no ArtifactService, no artifacts in the run's details."""
    fake = FakeKfp(token="kfp-token", artifacts_api=False)
    monkeypatch.setenv("CELLPIPE_KFP_TOKEN", "kfp-token")
    with fake:
        yield fake


def test_where_the_api_offers_no_artifacts_status_says_why(
    tmp_path: Path, home: Path, cellpipe: Cli, old_kfp: FakeKfp
) -> None:
    run = submitted(cellpipe, plot_notebook(tmp_path), old_kfp.url)
    old_kfp.set_run(
        run["external"]["run_id"],
        "SUCCEEDED",
        {"load data": ("SUCCEEDED", "p-1"), "plot": ("SUCCEEDED", "p-2")},
        outputs={"plot": {REPORT_OUTPUT: (HTML_TYPE, b"<html></html>")}},  # not kept: too old
    )
    shown, err = status(cellpipe, run, old_kfp.url)
    assert shown["status"] == "Succeeded"
    assert shown["executed_notebook"] is None
    assert "lists no output artifacts of the run's steps" in shown["external"]["notebook_note"]
    code, _out, err = cellpipe("status", run["run_id"], "--host", old_kfp.url)
    assert code == 0
    assert "cellpipe: warning: no executed notebook: this Kubeflow Pipelines API" in err
    assert "/#/runs/details/" in err  # where the outputs are: the KFP UI


def test_an_artifact_service_that_is_missing_is_the_same_warning(
    tmp_path: Path, home: Path, cellpipe: Cli, kfp: Kfp
) -> None:
    fake = kfp.fake_only()
    run = submitted(cellpipe, plot_notebook(tmp_path), kfp.host)
    fake.fail("GET", "/apis/v2beta1/artifacts/", 404, {"code": 5, "message": "Not Found"}, 2)
    fake.set_run(
        run["external"]["run_id"],
        "SUCCEEDED",
        {"load data": ("SUCCEEDED", "p-1"), "plot": ("SUCCEEDED", "p-2")},
        outputs={
            "load data": {REPORT_OUTPUT: (HTML_TYPE, page(home, run, "load-data", [TABLE]))},
            "plot": {REPORT_OUTPUT: (HTML_TYPE, page(home, run, "plot", [FIGURE]))},
        },
    )
    shown, _err = status(cellpipe, run, kfp.host)
    assert shown["executed_notebook"] is None
    assert "cannot give them for download" in shown["external"]["notebook_note"]
