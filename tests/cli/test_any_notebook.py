"""`cellpipe compile` and `cellpipe run` on notebooks as people write them (issue 14): untagged
notebooks run as one step and give the values the notebook gives top to bottom; papermill's
optional parameters take `-p`; a notebook papermill produced runs with the values papermill
injected; Kale's own test notebook runs where kubeflow-kale is installed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from tests.notebooks import Cell, notebook, write

KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


def untagged(parameters_tag: str, metrics_tag: str) -> dict[str, Any]:
    """A notebook as papermill users write it: no step tags; markdown, an install line, a
    parameters cell with comments and `name = None`, a scratch cell tagged skip."""
    cells: list[Cell] = [
        "# Weekly numbers\nParameterised with papermill.",
        ([], "%pip install --quiet numpy"),
        ([], "import math\nimport statistics\nfrom typing import Optional"),
        (
            [parameters_tag],
            "# how many weeks\nweeks = 6\n\nname = None  # who asked\nscale: float = 2\n"
            "limit: Optional[int] = None",
        ),
        ([], "values = [math.sin(w) * scale for w in range(weeks)]"),
        "## The numbers",
        ([], "mean = statistics.mean(values)\ncapped = min(len(values), limit or 100)"),
        (["skip"], "mean = -1"),
        ([], "named = float(name is not None)\nlength = float(len(name or ''))"),
        ([metrics_tag], "print(mean)\nprint(capped)\nprint(named)\nprint(length)\nprint(weeks)"),
    ]
    return notebook(*cells, metadata=KERNEL)


METRICS = ["mean", "capped", "named", "length", "weeks"]


def cellpipe(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def run_json(home: Path, *args: str) -> dict[str, Any]:
    result = cellpipe(home, "run", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def notebook_metrics(
    path: Path, metrics: list[str], drop_tags: tuple[str, ...]
) -> dict[str, float]:
    """Run the notebook top to bottom in a real kernel, without the cells tagged `drop_tags`."""
    nb = nbformat.read(str(path), as_version=4)
    nb.cells = [
        c
        for c in nb.cells
        if not set(drop_tags) & set(c.get("metadata", {}).get("tags", []))
        and not c.source.startswith("%pip")  # the environment has what it installs
    ]
    nb.cells.append(
        nbformat.v4.new_code_cell(
            f"import json; print(json.dumps({{m: float(globals()[m]) for m in {metrics!r}}}))"
        )
    )
    NotebookClient(nb, timeout=60, resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    result: dict[str, float] = json.loads(text.strip().splitlines()[-1])
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "cellpipe-home"


def test_compile_says_an_untagged_notebook_is_one_step_in_a_note(tmp_path: Path) -> None:
    nb = write(tmp_path / "weekly.ipynb", untagged("parameters", "metrics"))
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "compile", str(nb), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (note,) = [line for line in result.stderr.splitlines() if line.startswith("cellpipe: note:")]
    assert "no cell is tagged as a step, so the notebook runs as one step" in note
    assert not [line for line in result.stderr.splitlines() if "error" in line]
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["steps"]] == ["weekly"]
    assert len(data["notes"]) == 1 and data["notes"][0]["step"] == "weekly"
    assert data["optional_parameters"] == ["name", "limit"]
    assert data["parameters"]["name"] is None
    ir = next(yaml.safe_load_all((tmp_path / "weekly.yaml").read_text()))
    assert ir["root"]["inputDefinitions"]["parameters"]["name"]["isOptional"] is True


@pytest.mark.parametrize(
    ("parameters_tag", "metrics_tag"),
    [("parameters", "metrics"), ("pipeline-parameters", "pipeline-metrics")],
)
def test_an_untagged_notebook_runs_as_the_notebook_runs_top_to_bottom(
    parameters_tag: str, metrics_tag: str, home: Path, tmp_path: Path
) -> None:
    path = write(tmp_path / "weekly.ipynb", untagged(parameters_tag, metrics_tag))
    data = run_json(home, str(path))
    assert data["status"] == "Succeeded"
    assert list(data["steps"]) == ["weekly"]
    expected = notebook_metrics(path, METRICS, drop_tags=("skip", metrics_tag))
    assert data["metrics"] == pytest.approx(expected)


@pytest.mark.parametrize("engine", ["local", "kfp-local"])
def test_p_on_an_optional_parameter(engine: str, home: Path, tmp_path: Path) -> None:
    """Unset (None: kfp.local takes no None, so the engine leaves it out), given as text, and
    `None` as papermill's -p writes it. The local engine's unset run is the test above."""
    path = write(tmp_path / "weekly.ipynb", untagged("parameters", "metrics"))
    if engine == "kfp-local":
        unset = run_json(home, str(path), "--engine", engine)
        assert (unset["metrics"]["named"], unset["metrics"]["capped"]) == (0.0, 6.0)
    given = run_json(home, str(path), "--engine", engine, "-p", "name=text", "-p", "limit=3")
    assert given["metrics"]["named"] == 1.0
    assert given["metrics"]["length"] == 4.0  # "text", a str
    assert given["metrics"]["capped"] == 3.0
    if engine == "local":
        none = run_json(home, str(path), "--engine", engine, "-p", "name=None", "-p", "limit=2")
        assert (none["metrics"]["named"], none["metrics"]["capped"]) == (0.0, 2.0)


def test_a_bad_value_for_an_optional_parameter_is_a_user_error(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "weekly.ipynb", untagged("parameters", "metrics"))
    result = cellpipe(home, "run", str(path), "-p", "limit=lots")
    assert result.returncode == 2
    assert "parameter 'limit' is an int or None" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("papermill") is None, reason="papermill (the test extra) is absent"
)
def test_a_notebook_papermill_produced_runs_with_the_values_papermill_injected(
    home: Path, tmp_path: Path
) -> None:
    import papermill

    source = write(tmp_path / "source.ipynb", untagged("parameters", "metrics"))
    produced = tmp_path / "produced.ipynb"
    papermill.execute_notebook(
        str(source),
        str(produced),
        parameters={"weeks": 9, "name": "ada", "scale": 3},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    tags = [c.get("metadata", {}).get("tags", []) for c in nbformat.read(produced, 4).cells]
    assert ["injected-parameters"] in tags
    data = run_json(home, str(produced))
    assert data["metrics"]["weeks"] == 9.0 and data["metrics"]["named"] == 1.0
    expected = notebook_metrics(produced, METRICS, drop_tags=("skip", "metrics"))
    assert data["metrics"] == pytest.approx(expected)
    again = run_json(home, str(produced), "-p", "weeks=2", "-p", "name=None")
    assert (again["metrics"]["weeks"], again["metrics"]["named"]) == (2.0, 0.0)


@pytest.mark.parametrize(
    "tags",
    [
        ("block", "prev", "pipeline-parameters", "pipeline-metrics"),
        ("step", "after", "parameters", "metrics"),
    ],
    ids=["kale", "cellpipe"],
)
def test_hyphenated_steps_and_a_metric_naming_a_parameter_run(
    tags: tuple[str, str, str, str], home: Path, tmp_path: Path
) -> None:
    step, after, parameters, metrics = tags
    path = write(
        tmp_path / "kale.ipynb",
        notebook(
            (["imports"], "import math"),
            ([parameters], "d1 = 5\nd2 = 6"),
            (
                [f"{step}:create-matrix"],
                "matrix = [[math.sqrt(i + j) for j in range(d2)] for i in range(3)]",
            ),
            ([f"{step}:", "skip"], "matrix = None"),
            ([f"{step}:"], "rows = len(matrix)"),
            (
                [f"{step}:sum-matrix", f"{after}:create-matrix"],
                "sum_result = sum(map(sum, matrix)) * rows",
            ),
            ([metrics], "print(d1)\nprint(d2)\nprint(sum_result)"),
            metadata=KERNEL,
        ),
    )
    data = run_json(home, str(path), "-p", "d1=3")
    assert list(data["steps"]) == ["create-matrix", "sum-matrix"]
    assert (data["metrics"]["d1"], data["metrics"]["d2"]) == (3.0, 6.0)
    expected = sum(math_sqrt_rows()) * 3
    assert data["metrics"]["sum_result"] == pytest.approx(expected)


def math_sqrt_rows() -> list[float]:
    import math

    return [sum(math.sqrt(i + j) for j in range(6)) for i in range(3)]


def kale_test_notebook() -> Path | None:
    spec = importlib.util.find_spec("kale")
    folders = [Path(spec.origin).parent / "tests/assets/notebooks"] if spec and spec.origin else []
    if os.environ.get("CELLPIPE_KALE_NOTEBOOKS"):
        folders.append(Path(os.environ["CELLPIPE_KALE_NOTEBOOKS"]))
    for folder in folders:
        for path in sorted(folder.rglob("pipeline_parameters_and_metrics.ipynb")):
            return path
    return None


@pytest.mark.skipif(
    kale_test_notebook() is None,
    reason="kubeflow-kale is not installed and CELLPIPE_KALE_NOTEBOOKS is not set",
)
def test_kales_own_parameters_and_metrics_notebook_runs(home: Path, tmp_path: Path) -> None:
    path = kale_test_notebook()
    assert path is not None
    copy = tmp_path / path.name  # runs write beside the notebook; leave the package alone
    copy.write_bytes(path.read_bytes())
    data = run_json(home, str(copy), "-p", "d1=3")
    assert data["status"] == "Succeeded"
    assert (data["metrics"]["d1"], data["metrics"]["d2"]) == (3.0, 6.0)
    assert data["metrics"]["sum_result"] > 0
