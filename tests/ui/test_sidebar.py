"""The sidebar in a real browser (Debian's Chromium, Playwright) against a real JupyterLab.

The stories are in ui-tests/tests/: sidebar.spec.ts opens the example notebook, tags a cell as
a new step with a GPU, sees the DAG change, runs it locally, watches it succeed, sees the
metrics; outputs.spec.ts runs a notebook that draws a figure, sees it in the run view, opens
the executed notebook read-only and debugs the failed step in the kernel. Screenshots go to
test-artifacts/ui/ (the second story's to test-artifacts/ui/outputs/).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.notebooks import notebook, write

from .conftest import ARTIFACTS, ROOT, Lab

PLAYWRIGHT = ROOT / "node_modules" / ".bin" / "playwright"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUTS_ARTIFACTS = ARTIFACTS / "outputs"


def run_story(lab: Lab, spec: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs one story of ui-tests/tests against the server (Playwright in Debian's Chromium)."""
    assert PLAYWRIGHT.is_file(), "node_modules is missing: run `make labextension` first"
    assert Path(CHROMIUM).is_file(), "Debian's chromium is missing: apt-get install chromium"
    return subprocess.run(
        [str(PLAYWRIGHT), "test", "--config", "ui-tests/playwright.config.ts", spec],
        cwd=ROOT,
        env={
            **os.environ,
            "CELLPIPE_LAB_URL": lab.url,
            "CELLPIPE_LAB_TOKEN": lab.token,
            "CELLPIPE_ARTIFACTS": str(ARTIFACTS),
            "CELLPIPE_CHROMIUM": CHROMIUM,
            "CI": "1",  # no interactive report server
            **env,
        },
        capture_output=True,
        text=True,
        timeout=420,
    )


@pytest.mark.timeout(480)
def test_tag_a_gpu_step_see_the_dag_run_it_and_read_the_metrics(jupyter_lab: Lab) -> None:
    # Given a browser and the suite (`make labextension` installs both)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # When the browser story runs against the server
    result = run_story(jupyter_lab, "sidebar.spec.ts")

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


# A step that displays a DataFrame and an HTML output with a script, and draws a figure
# (matplotlib's inline backend, as in the notebook); a second step that fails.
PLOTS = notebook(
    "# Squares, drawn",
    (
        ["imports"],
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nimport pandas as pd\n"
        "from IPython.display import HTML, display",
    ),
    (
        ["step:draw"],
        'table = pd.DataFrame({"x": [1, 2, 3], "squared": [1, 4, 9]})\n'
        "display(table)\n"
        'display(HTML(\'<b class="cp-test-bold">bold</b>'
        '<script>document.title = "script ran"</script>\'))\n'
        "fig, ax = plt.subplots(figsize=(4, 3))\n"
        "ax.plot(table.x, table.squared)\n"
        'ax.set_title("squares");',
    ),
    (
        ["step:check total"],
        "total = int(table.squared.sum())\n"
        'print("total:", total)\n'
        'assert total == 15, f"total is {total}, not 15"',
    ),
    metadata={
        "cellpipe": {"pipeline": "squares"},
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    },
)


@pytest.mark.timeout(480)
def test_see_a_figure_in_the_run_view_open_the_executed_notebook_debug_a_step(
    jupyter_lab: Lab,
) -> None:
    # Given a notebook that draws a figure and fails in its second step, in the server's root
    write(jupyter_lab.root / "plots.ipynb", PLOTS)
    shutil.rmtree(OUTPUTS_ARTIFACTS, ignore_errors=True)
    OUTPUTS_ARTIFACTS.mkdir(parents=True)

    # When the browser story runs it from the sidebar, opens its notebook and debugs it
    result = run_story(
        jupyter_lab, "outputs.spec.ts", CELLPIPE_OUTPUTS_ARTIFACTS=str(OUTPUTS_ARTIFACTS)
    )

    # Then it passed, and left its screenshots
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    shots = sorted(p.name for p in OUTPUTS_ARTIFACTS.glob("*.png"))
    assert shots == [
        "00-failed-cell.png",
        "01-run-outputs.png",
        "02-executed-notebook.png",
        "03-debug-in-kernel.png",
    ]

    # And the server says what the browser showed: the run failed in its second step, and
    # its executed notebook holds the figure
    answer: Any = jupyter_lab.api("cellpipe/api/runs?notebook=plots.ipynb")
    (run,) = answer["runs"]
    assert run["status"] == "Failed"
    assert {n: s["status"] for n, s in run["steps"].items()} == {
        "draw": "Succeeded",
        "check total": "Failed",
    }
    executed: Any = jupyter_lab.api(f"cellpipe/api/runs/{run['run_id']}/notebook")
    kinds = [
        mime
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
        for mime in output.get("data", {})
    ]
    assert "image/png" in kinds
    # and the notebook on disk is as it was: the run's outputs live in the run's folder
    saved = json.loads((jupyter_lab.root / "plots.ipynb").read_text())
    assert all(not cell.get("outputs") for cell in saved["cells"])
