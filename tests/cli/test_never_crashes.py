"""What a user error looks like (README, "The CLI"): the notebook, the cell, the tag or the line,
and what to write; exit 2; strict JSON on stdout; never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.notebooks import notebook, write


def refuse_constants(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def test_errors_name_the_cell_and_the_tag_or_line_and_say_what_to_write(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "train.ipynb",
        notebook(
            (["parameters"], "rate = 0.5\nf = 1e999\nd = {1: 2}"),
            (["step:train", "memory:1.5", "gpu:99999999999999999999"], "x = rate"),
            (["step:evaluate"], "y = " + " + ".join(["x"] * 300)),
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "compile", str(nb), "--format", "json"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cellpipe: error:")]
    assert errors == [
        f"cellpipe: error: {nb}: cell 2 (step 'train'): tag 'memory:1.5': '1.5' is not a whole "
        "number of bytes (e.g. memory:512Mi or memory:4Gi)",
        f"cellpipe: error: {nb}: cell 2 (step 'train'): tag 'gpu:99999999999999999999': the GPU "
        "count must be a whole number of at least 1 and at most 64 (gpu:1 or gpu:2:A100)",
        f"cellpipe: error: {nb}: cell 3 (step 'evaluate'): line 1 nests an expression or "
        "statement more than 200 levels deep (a long chain like a + b + c + ... is one level "
        "per term), more than cellpipe analyses; split it into smaller statements (sum a list, "
        "build a string with join)",
        f"cellpipe: error: {nb}: cell 1: parameters cell, line 2: f = inf is not a finite "
        "number, which neither JSON nor Kubeflow Pipelines carries; give a finite number",
        f"cellpipe: error: {nb}: cell 1: parameters cell, line 3: d has the key 1, which is not "
        "a string (JSON's keys are strings): write '1'",
    ]
    data = json.loads(result.stdout, parse_constant=refuse_constants)
    assert len(data["errors"]) == 5
    assert data["parameters"] == {"rate": 0.5}
    assert not (tmp_path / "train.yaml").exists()
