"""The pipeline view and the step editor in a real browser, with a Kale notebook of the titanic
example's shape (examples/titanic_kale.ipynb: 9 steps, 5 in parallel), at the default width.

The story is ui-tests/tests/pipeline.spec.ts; its screenshots go to test-artifacts/ui/pipeline/.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from .conftest import ARTIFACTS, ROOT, Lab
from .test_sidebar import run_story

PIPELINE_ARTIFACTS = ARTIFACTS / "pipeline"


@pytest.mark.timeout(540)
def test_pipeline_view_step_editor_run_dialog_and_logs_with_a_kale_notebook(
    jupyter_lab: Lab,
) -> None:
    # Given the 9-step Kale notebook in the server's root
    shutil.copy(ROOT / "examples" / "titanic_kale.ipynb", jupyter_lab.root)
    shutil.rmtree(PIPELINE_ARTIFACTS, ignore_errors=True)
    PIPELINE_ARTIFACTS.mkdir(parents=True)

    # When the browser story runs against the server
    result = run_story(
        jupyter_lab,
        "pipeline.spec.ts",
        CELLPIPE_PIPELINE_ARTIFACTS=str(PIPELINE_ARTIFACTS),
        # its own Playwright output folder: other stories may run at the same time
        CELLPIPE_ARTIFACTS=str(PIPELINE_ARTIFACTS),
    )

    # Then it passed, and left its screenshots
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    shots = sorted(p.name for p in PIPELINE_ARTIFACTS.glob("*.png"))
    assert shots == [
        "01-sidebar-steps.png",
        "02-pipeline-view.png",
        "03-click-to-cell.png",
        "04-errors-still-laid-out.png",
        "05-kale-apply.png",
        "06-run-dialog-unsaved.png",
        "07-run-on-the-graph.png",
        "08-run-log.png",
        "09-one-log-panel.png",
    ]

    # And the notebook was saved before the run, in Kale's dialect, with nothing left behind
    saved = json.loads((jupyter_lab.root / "titanic_kale.ipynb").read_text())
    tags = {cell["id"]: cell["metadata"].get("tags") for cell in saved["cells"]}
    assert tags["featureengineering"] == ["block:featureengineering", "prev:datapreprocessing"]
    assert tags["svm"] == ["block:svm", "prev:featureengineering", "memory:1Gi"]
    # And the server's run store says what the browser showed: every step succeeded
    answer: Any = jupyter_lab.api("cellpipe/api/runs?notebook=titanic_kale.ipynb")
    (run,) = answer["runs"]
    assert run["status"] == "Succeeded"
    assert len(run["steps"]) == 9
    assert {s["status"] for s in run["steps"].values()} == {"Succeeded"}
