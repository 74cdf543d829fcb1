"""`cellpipe compile` as a user runs it: a real process, its exit status and its words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.notebooks import notebook, write

ROOT = Path(__file__).resolve().parents[2]


def cellpipe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_compile_writes_yaml_beside_the_notebook(tmp_path: Path) -> None:
    nb = write(tmp_path / "train.ipynb", notebook((["step:a"], "x = 1"), (["step:b"], "y = x")))
    result = cellpipe("compile", str(nb), "--registry", "127.0.0.1:5000/ml")
    assert result.returncode == 0, result.stderr
    written = tmp_path / "train.yaml"
    assert f"pipeline 'train': 2 steps -> {written}" in result.stdout
    ir = next(yaml.safe_load_all(written.read_text()))
    assert set(ir["root"]["dag"]["tasks"]) == {"a", "b"}
    assert result.stderr == ""


def test_json_format_is_what_the_ui_reads(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "n.ipynb",
        notebook((["parameters"], "k = 2"), (["step:a", "gpu:1"], "x = k"), (["step:b"], "y = x")),
    )
    result = cellpipe("compile", str(nb), "-o", str(tmp_path / "p.yaml"), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["pipeline"] == "n"
    assert data["parameters"] == {"k": 2}
    assert data["errors"] == []
    first, second = data["steps"]
    assert (first["name"], first["task"], first["hands_on"], first["cells"]) == (
        "a",
        "a",
        ["x"],
        [1],
    )
    assert first["cell_ids"] == ["cell-1"]
    assert first["resources"]["gpu"] == {"count": 1, "type": None, "resource": "nvidia.com/gpu"}
    assert (second["after"], second["receives"]) == (["a"], ["x"])
    assert {"message", "cell_index", "cell_id", "step"} == set(data["warnings"][0])


def test_user_errors_exit_2_with_one_line_each_and_no_traceback(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "bad.ipynb",
        notebook((["step:a"], "x = 1"), (["step:b", "after:nope"], "y = ("), (["step:c"], "z=1")),
    )
    result = cellpipe("compile", str(nb), "--format", "json")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"cellpipe: error: {nb}: cell 2 (step 'b'): syntax error on line 1: '(' was never "
        "closed; fix the cell or tag it 'skip'",
        f"cellpipe: error: {nb}: cell 2 (step 'b'): after:nope names no step; "
        "the steps are a, b, c",
    ]
    data = json.loads(result.stdout)
    assert [e["cell_index"] for e in data["errors"]] == [1, 1]
    assert not (tmp_path / "bad.yaml").exists()


def test_unreadable_notebooks_are_user_errors(tmp_path: Path) -> None:
    missing = cellpipe("compile", str(tmp_path / "missing.ipynb"))
    assert missing.returncode == 2
    assert missing.stderr == f"cellpipe: error: {tmp_path / 'missing.ipynb'}: no such file\n"
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    result = cellpipe("compile", str(broken))
    assert result.returncode == 2
    assert "not a notebook: invalid JSON at line 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_to_stdout_and_an_unwritable_destination(tmp_path: Path) -> None:
    nb = write(tmp_path / "n.ipynb", notebook((["step:a"], "x = 1")))
    result = cellpipe("compile", str(nb), "-o", "-")
    assert result.returncode == 0
    assert result.stdout.startswith("# PIPELINE DEFINITION")
    bad = cellpipe("compile", str(nb), "-o", str(tmp_path / "no" / "such" / "dir.yaml"))
    assert bad.returncode == 2
    assert "cannot write" in bad.stderr and "Traceback" not in bad.stderr


def test_make_demo_example_compiles_from_the_repository() -> None:
    result = cellpipe("compile", "examples/iris_kale.ipynb", "-o", "-", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "Kale setting" not in result.stderr  # every key of Kale 2.3's own metadata is known
