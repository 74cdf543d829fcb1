"""A notebook that uses the magics, executed for real (nbclient, the venv's python3 kernel),
then compiled and run with `cellpipe run`: the same metrics as the notebook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from tests.notebooks import notebook, write

MAGIC_NOTEBOOK = notebook(
    (["skip"], "%load_ext cellpipe\nimport json"),
    (["imports"], "import statistics"),
    (["parameters"], "n = 12\nscale = 1.5"),
    ([], '%%step "make data"\ndata = [i * scale for i in range(n)]'),
    ([], '%%step "sum up" --after "make data" --cpu 500m\ntotal = sum(data)'),
    ([], '%%step spread --after "make data"\nspread = statistics.pstdev(data)'),
    ([], '%%step report --after "sum up" spread\nratio = total / (spread + 1)'),
    (["metrics"], "total\nratio"),
    (["skip"], "pipeline = %cellpipe compile\npipeline"),
    (["skip"], "run = %cellpipe run\nrun"),
    (["skip"], "%cellpipe load {run.run_id} data --as data_from_run\nassert data_from_run == data"),
    (["skip"], "%cellpipe submit --form"),
    (
        ["skip"],
        'print(json.dumps({"notebook": {"total": total, "ratio": ratio}, "run": run.metrics}))',
    ),
)


def _outputs(cell: Any, kind: str) -> list[Any]:
    return [o for o in cell.outputs if o.get("output_type") == kind]


def test_the_magics_in_a_kernel_and_cellpipe_run_give_the_notebook_metrics(
    tmp_path: Path,
) -> None:
    # Given: the notebook, saved, and a kernel started for it as jupyter_server starts one
    path = write(tmp_path / "magics.ipynb", MAGIC_NOTEBOOK)
    nb = nbformat.read(str(path), as_version=4)
    env = {
        **os.environ,
        "JPY_SESSION_NAME": str(path),
        "CELLPIPE_HOME": str(tmp_path / "kernel-home"),
    }
    # When: it runs top to bottom
    client = NotebookClient(
        nb, timeout=100, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)
    # Then: the magics said which notebook, showed the DAG and the run, loaded a value back
    compile_cell, run_cell, _load, form_cell, last = nb.cells[8:]
    said = "".join(o["text"] for o in _outputs(compile_cell, "stream"))
    assert said.startswith(f"cellpipe: {path}, saved ")
    html = _outputs(compile_cell, "execute_result")[0]["data"]["text/html"]
    assert "<svg" in html and "sum up" in html
    run_html = _outputs(run_cell, "execute_result")[0]["data"]["text/html"]
    assert "Succeeded" in run_html
    assert (
        "application/vnd.jupyter.widget-view+json"
        in _outputs(form_cell, "execute_result")[0]["data"]
    )
    printed = json.loads(_outputs(last, "stream")[0]["text"])
    assert printed["run"] == printed["notebook"]
    # And `cellpipe run` on the saved notebook gives the same metrics
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "run", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(tmp_path / "cli-home")},
        stdin=subprocess.DEVNULL,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "Succeeded"
    assert run["metrics"] == printed["notebook"]
