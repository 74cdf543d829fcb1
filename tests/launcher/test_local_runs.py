"""`cellpipe run` on both local engines gives the values the notebook gives top to bottom."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from cellpipe.runtime import values
from tests.notebooks import notebook, write

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ["local", "kfp-local"]

BRANCHES = notebook(
    (["imports"], "import statistics"),
    (["parameters"], "n = 20\nscale = 1.5"),
    (["step:make data"], "data = [i * scale for i in range(n)]\nlog = ['made']"),
    (["step:left", "after:make data"], "top = sorted(data, reverse=True)[:5]"),
    (["step:right", "after:make data"], "data.append(100.0)\ndata[0] = -1.0\nlog.append('right')"),
    (
        ["step:join", "after:left", "after:right"],
        "total = sum(data) + sum(top)\nmean = statistics.mean(data)\nentries = len(log)",
    ),
    (["skip"], "total = 0"),
    (["metrics"], "total\nmean\nentries"),
)

# Frames changed through a loop variable, a list of them bound to a name, a function of the
# notebook that changes its argument in place and another name for a frame, the way Kale's
# titanic example and the notebooks like it are written. Each step reads what the step before
# changed that way: handed the frames as they were loaded, it fails with a KeyError.
TITANIC = notebook(
    (["imports"], "import pandas as pd"),
    (
        ["functions"],
        "def drop_unused(df):\n    df.drop(columns=['Ticket', 'Cabin'], inplace=True)",
    ),
    (
        ["step:load data"],
        "train_df = pd.DataFrame({\n"
        "    'Name': ['Braund, Mr. Owen', 'Cumings, Mrs. John', 'Heikkinen, Miss. Laina',\n"
        "             'Allen, Mr. William', 'Moran, Dr. James'],\n"
        "    'Sex': ['male', 'female', 'female', 'male', 'male'],\n"
        "    'SibSp': [1, 1, 0, 0, 0], 'Parch': [0, 0, 0, 0, 2],\n"
        "    'Ticket': ['A/5', 'PC', 'STON', '373', '330'],\n"
        "    'Cabin': [None, 'C85', None, 'E4', None],\n"
        "    'Survived': [0, 1, 1, 0, 0],\n"
        "})\n"
        "test_df = pd.DataFrame({\n"
        "    'Name': ['Kelly, Mr. James', 'Wilkes, Mrs. James', 'Rice, Master. Eugene'],\n"
        "    'Sex': ['male', 'female', 'male'],\n"
        "    'SibSp': [0, 1, 4], 'Parch': [0, 0, 1],\n"
        "    'Ticket': ['330911', '363272', '382652'], 'Cabin': [None, None, 'B4'],\n"
        "})",
    ),
    (
        ["step:features"],
        "for dataset in [train_df, test_df]:\n"
        "    dataset['Title'] = dataset['Name'].str.extract(r' ([A-Za-z]+)\\.', expand=False)\n"
        "combine = [train_df, test_df]\n"
        "for dataset in combine:\n"
        "    dataset['FamilySize'] = dataset['SibSp'] + dataset['Parch'] + 1\n"
        "    drop_unused(dataset)",
    ),
    (
        ["step:encode"],
        "titles = {'Mr': 1, 'Miss': 2, 'Mrs': 3, 'Master': 4}\n"
        "for i, dataset in enumerate((train_df, test_df)):\n"
        "    dataset['Title'] = dataset['Title'].map(titles).fillna(5).astype(int)\n"
        "    dataset['Sex'] = dataset['Sex'].map({'female': 1, 'male': 0})\n"
        "    dataset['Split'] = i\n"
        "frame = test_df\n"
        "frame['IsAlone'] = (frame['FamilySize'] == 1).astype(int)",
    ),
    (
        ["step:report"],
        "train_titles = int(train_df['Title'].sum())\n"
        "test_titles = int(test_df['Title'].sum())\n"
        "family = float(test_df['FamilySize'].mean())\n"
        "alone = int(test_df['IsAlone'].sum())\n"
        "split = int(test_df['Split'].sum() + train_df['Sex'].sum())\n"
        "columns = len(train_df.columns) + len(test_df.columns)",
    ),
    (["metrics"], "train_titles\ntest_titles\nfamily\nalone\nsplit\ncolumns"),
)
NOTEBOOKS = {"branches": BRANCHES, "titanic": TITANIC}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "cellpipe-home"


def cellpipe(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CELLPIPE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def run_json(home: Path, *args: str) -> dict[str, Any]:
    result = cellpipe(home, "run", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def notebook_metrics(path: Path, metrics: list[str]) -> dict[str, float]:
    """Run the notebook top to bottom in a real kernel (skip cells left out)."""
    nb = nbformat.read(str(path), as_version=4)
    nb.cells = [c for c in nb.cells if "skip" not in c.get("metadata", {}).get("tags", [])]
    nb.cells.append(
        nbformat.v4.new_code_cell(
            f"import json; print(json.dumps({{m: float(globals()[m]) for m in {metrics!r}}}))"
        )
    )
    NotebookClient(nb, timeout=60, resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    result: dict[str, float] = json.loads(text.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "name", [*sorted(p.stem for p in (ROOT / "examples").glob("*.ipynb")), *NOTEBOOKS]
)
def test_metrics_equal_the_notebook_run_top_to_bottom(
    name: str, engine: str, home: Path, tmp_path: Path
) -> None:
    if name in NOTEBOOKS:
        path = write(tmp_path / f"{name}.ipynb", NOTEBOOKS[name])
    else:
        path = Path(shutil.copy(ROOT / "examples" / f"{name}.ipynb", tmp_path))
    run = run_json(home, str(path), "--engine", engine)
    assert run["status"] == "Succeeded"
    expected = notebook_metrics(path, sorted(run["metrics"]))
    assert run["metrics"] == expected
    assert all(step["status"] == "Succeeded" for step in run["steps"].values())


HOSTILE = "it's \"quoted\" '''triple''' {braces} {{double}} back\\slash\n$(id) `id` ; rm -rf /"

TYPES = notebook(
    (["parameters"], "note = 'plain'\ncount = 1\nrate = 0.5\nflag = False\nsizes = [1]"),
    (
        ["step:Load Data!"],
        "echo = note\nkinds = [type(v).__name__ for v in (count, rate, flag, sizes)]",
    ),
    (["step:use"], "combined = (echo, kinds, count + 1, sizes + [2])"),
)


def step_output(run: dict[str, Any], task: str, name: str) -> Any:
    return values.load(Path(run["outputs"]) / "steps" / task / name)


def test_hostile_parameters_arrive_byte_for_byte_and_are_typed(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "types.ipynb", TYPES)
    run = run_json(
        home,
        str(path),
        "-p",
        f"note={HOSTILE}",
        "-p",
        "count=41",
        "-p",
        "rate=2",
        "-p",
        "flag=true",
        "-p",
        "sizes=[7, 8]",
    )
    assert run["steps"]["Load Data!"] == {
        "task": "load-data",
        "status": "Succeeded",
        "cached": False,
        "seconds": run["steps"]["Load Data!"]["seconds"],
        "error": None,
    }
    assert step_output(run, "load-data", "echo") == HOSTILE
    assert step_output(run, "load-data", "kinds") == ["int", "float", "bool", "list"]
    assert run["metrics"] == {}


def test_a_bad_parameter_value_is_a_user_error(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "types.ipynb", TYPES)
    result = cellpipe(home, "run", str(path), "-p", "count=many")
    assert result.returncode == 2
    assert result.stderr == (
        f"cellpipe: error: {path}: parameter 'count' is an int (its default is 1); "
        "'many' is not one\n"
    )
    unknown = cellpipe(home, "run", str(path), "-p", "nope=1")
    assert "no such parameter; the parameters are note, count, rate, flag, sizes" in unknown.stderr


FAILING = notebook(
    (["step:prepare"], "rows = [1, 2, 3]"),
    (["step:divide"], "ratio = 1\n\nratio = rows[0] / 0"),
    (["step:report"], "print(ratio)"),
)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_failing_step_names_the_cell_and_keeps_earlier_outputs(
    engine: str, home: Path, tmp_path: Path
) -> None:
    path = write(tmp_path / "failing.ipynb", FAILING)
    result = cellpipe(home, "run", str(path), "--engine", engine, "--format", "json")
    assert result.returncode == 1
    run = json.loads(result.stdout)
    assert run["status"] == "Failed"
    statuses = {name: step["status"] for name, step in run["steps"].items()}
    assert statuses == {"prepare": "Succeeded", "divide": "Failed", "report": "Cancelled"}
    if engine == "local":
        assert 'File "failing.ipynb, cell 2", line 3, in <module>' in result.stderr
        assert "ratio = rows[0] / 0" in result.stderr
        assert "ZeroDivisionError: division by zero" in result.stderr
        assert "runtime/" not in result.stderr  # the runtime's own frames are left out
        assert step_output(run, "prepare", "rows") == [1, 2, 3]


def test_a_rerun_reuses_unchanged_steps_and_an_edit_reruns_from_there(
    home: Path, tmp_path: Path
) -> None:
    path = write(tmp_path / "branches.ipynb", BRANCHES)
    first = run_json(home, str(path))
    assert not any(step["cached"] for step in first["steps"].values())
    again = run_json(home, str(path))
    assert all(step["cached"] for step in again["steps"].values())
    assert again["metrics"] == first["metrics"]
    # When the last step is edited, only it runs again
    nb = nbformat.read(str(path), as_version=4)
    join = next(c for c in nb.cells if "step:join" in c.metadata.get("tags", []))
    join.source += "\nextra = 1"
    nbformat.write(nb, str(path))
    edited = run_json(home, str(path))
    cached = {name: step["cached"] for name, step in edited["steps"].items()}
    assert cached == {"make data": True, "left": True, "right": True, "join": False}
    # And a parameter change runs what reads it, and what comes after
    changed = run_json(home, str(path), "-p", "scale=2.0")
    assert not any(step["cached"] for step in changed["steps"].values())
    no_cache = run_json(home, str(path), "--no-cache")
    assert not any(step["cached"] for step in no_cache["steps"].values())


def test_a_value_that_cannot_be_handed_on_names_the_variable_and_step(
    home: Path, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "gen.ipynb",
        notebook(
            (["step:make"], "rows = (i for i in range(3))"), (["step:use"], "print(list(rows))")
        ),
    )
    result = cellpipe(home, "run", str(path))
    assert result.returncode == 1
    assert "step 'make' cannot hand on 'rows': a generator cannot be saved" in result.stderr
    assert "turn it into a list" in result.stderr


def test_steps_run_in_a_fresh_process_where_forking_is_unsafe(home: Path, tmp_path: Path) -> None:
    # Given an imports cell that leaves a thread running (as numeric libraries' pools do)
    path = write(
        tmp_path / "threads.ipynb",
        notebook(
            (
                ["imports"],
                "import threading, time\n"
                "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
            ),
            (["step:a"], "x = threading.active_count()"),
            (["step:b"], "y = x * 2"),
            (["metrics"], "y"),
        ),
    )
    run = run_json(home, str(path))
    assert run["status"] == "Succeeded"
    assert run["metrics"] == {"y": 4.0}  # each fresh step process has its own second thread


def test_gpu_steps_run_on_the_cpu_with_a_warning_or_refuse(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "gpu.ipynb", notebook((["step:train", "gpu:2:A100"], "x = 1")))
    warned = cellpipe(home, "run", str(path))
    assert warned.returncode == 0
    assert "steps 'train' (2) ask for GPUs; this machine has none, so they run on the CPU" in (
        warned.stderr
    )
    refused = cellpipe(home, "run", str(path), "--require-gpus")
    assert refused.returncode == 2
    assert "ask for GPUs and this machine has none" in refused.stderr


def test_working_directory_is_the_notebooks_folder(home: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n3,4\n")
    path = write(
        tmp_path / "files.ipynb",
        notebook(
            (["step:read"], "lines = open('data/train.csv').read().splitlines()"),
            (["step:count"], "n_rows = len(lines) - 1"),
            (["metrics"], "n_rows"),
        ),
    )
    assert run_json(home, str(path))["metrics"] == {"n_rows": 2.0}
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    rerun = run_json(home, str(path))
    assert rerun["metrics"] == {"n_rows": 1.0}  # a changed file named by a step reruns it
    assert not rerun["steps"]["read"]["cached"]


def test_a_broken_display_does_not_stop_the_run(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cellpipe.converter import CompileOptions, load_pipeline
    from cellpipe.launcher import LocalEngine, RunRequest, RunStore, StepRecord

    path = write(tmp_path / "branches.ipynb", BRANCHES)
    seen: list[str] = []

    def closed_pipe(event: str, step: StepRecord) -> None:
        seen.append(event)
        raise BrokenPipeError(32, "Broken pipe")

    pipeline = load_pipeline(path, CompileOptions(local_only=True))
    engine = LocalEngine(RunStore(home / "runs.sqlite"), home)
    record = engine.run(RunRequest(pipeline, path, {}), closed_pipe)
    assert seen == ["started"]  # the display is dropped after it breaks, once
    assert "progress display stopped, the run goes on" in caplog.text
    assert record.status == "Succeeded"
    stored = engine.store.get(record.run_id)
    assert stored is not None and stored.status == "Succeeded"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_step_that_hands_nothing_on_succeeds(engine: str, home: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path / "quiet.ipynb", notebook((["step:a"], "x = 1"), (["step:b"], "print(x + 1)"))
    )
    run = run_json(home, str(path), "--engine", engine)
    assert {name: step["status"] for name, step in run["steps"].items()} == {
        "a": "Succeeded",
        "b": "Succeeded",
    }
