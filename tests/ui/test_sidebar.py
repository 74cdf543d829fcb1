"""The sidebar in a real browser (Debian's Chromium, Playwright) against a real JupyterLab.

The story is in ui-tests/tests/sidebar.spec.ts: open the example notebook, tag a cell as a new
step with a GPU, see the DAG change, run it locally, watch it succeed, see the metrics.
Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import ARTIFACTS, ROOT, Lab

PLAYWRIGHT = ROOT / "node_modules" / ".bin" / "playwright"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.timeout(480)
def test_tag_a_gpu_step_see_the_dag_run_it_and_read_the_metrics(jupyter_lab: Lab) -> None:
    # Given a browser and the suite (`make labextension` installs both)
    assert PLAYWRIGHT.is_file(), "node_modules is missing: run `make labextension` first"
    assert Path(CHROMIUM).is_file(), "Debian's chromium is missing: apt-get install chromium"
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)

    # When the browser story runs against the server
    result = subprocess.run(
        [str(PLAYWRIGHT), "test", "--config", "ui-tests/playwright.config.ts"],
        cwd=ROOT,
        env={
            **os.environ,
            "CELLPIPE_LAB_URL": jupyter_lab.url,
            "CELLPIPE_LAB_TOKEN": jupyter_lab.token,
            "CELLPIPE_ARTIFACTS": str(ARTIFACTS),
            "CELLPIPE_CHROMIUM": CHROMIUM,
            "CI": "1",  # no interactive report server
        },
        capture_output=True,
        text=True,
        timeout=420,
    )

    # Then it passed, and left its screenshots
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert shots == [
        "01-sidebar-example.png",
        "02-new-step-with-error.png",
        "03-new-gpu-step.png",
        "04-run-dialog.png",
        "05-run-succeeded.png",
        "06-lab-with-log.png",
        "07-sidebar-dark.png",
        "08-lab-dark.png",
    ]

    # And the server's run store says what the browser showed: the new GPU step ran too
    answer: Any = jupyter_lab.api("cellpipe/api/runs?notebook=iris_cellpipe.ipynb")
    (run,) = answer["runs"]
    assert run["status"] == "Succeeded"
    assert run["engine"] == "local"
    assert run["parameters"]["epochs"] == 30
    assert set(run["steps"]) == {"load data", "split", "train", "report", "evaluate"}
    assert {s["status"] for s in run["steps"].values()} == {"Succeeded"}
    assert run["metrics"]["n_test"] == 50
    assert 0.0 <= run["metrics"]["accuracy"] <= 1.0
    # the tags were edited in the browser, not saved: the notebook on disk is as it was
    saved = (jupyter_lab.root / "iris_cellpipe.ipynb").read_text()
    assert "step:report" not in saved
