"""`%cellpipe debug RUN STEP`: a failed step's values and parameters loaded into the kernel,
and the cell that failed named, so the user re-runs it there. In a real kernel (nbclient, the
venv's python3 kernel) after `cellpipe run`, and in a bare IPython shell."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient

from cellpipe.converter import CompileOptions, load_pipeline
from cellpipe.launcher import LocalEngine, RunRecord, RunRequest, RunStore
from cellpipe.magics import DebugCommand, parse_magic, short_repr
from tests.notebooks import notebook, write

FAILING_CELL = "big = df[df.a > threshold]\nassert big.empty, f'{len(big)} rows over {threshold}'"
PIPELINE = notebook(
    (["imports"], "import pandas as pd"),
    (["parameters"], "threshold = 2\nlabel = 'rows'"),
    (["step:load data"], "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4.0, 5.0, 6.0]})"),
    (["step:train model"], "print(df.shape, threshold)"),
    ([], FAILING_CELL),
    ([], "done = True"),
)


def cellpipe_run(home: Path, path: Path, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "run", str(path), "--format", "json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CELLPIPE_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        timeout=100,
    )
    assert result.returncode == 1, result.stderr  # the step fails
    run: dict[str, Any] = json.loads(result.stdout)
    return run


def _text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")


def test_a_failed_step_opened_in_a_kernel(tmp_path: Path) -> None:
    # Given: a run whose step "train model" failed in its second cell
    home = tmp_path / "home"
    run = cellpipe_run(home, write(tmp_path / "pipeline.ipynb", PIPELINE), "-p", "threshold=1")
    assert run["steps"]["train model"]["status"] == "Failed"
    # When: a kernel loads the step's inputs, then re-runs the failing cell
    debugging = notebook(
        ([], "%load_ext cellpipe"),
        ([], f'%cellpipe debug {run["run_id"][:15]} "train model"'),
        ([], "print(df.shape, threshold, type(threshold).__name__, df.b.dtype)"),
        ([], FAILING_CELL),
    )
    nb = nbformat.from_dict(debugging)
    client = NotebookClient(
        nb,
        timeout=100,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env={**os.environ, "CELLPIPE_HOME": str(home)})
    # Then: it said what it loaded and which cell failed, and the kernel has the values
    said = _text(nb.cells[1])
    assert f"step 'train model' of run {run['run_id']} (Failed): loaded into this kernel" in said
    rows = [line.split() for line in said.splitlines() if line.startswith("  ")]
    assert rows == [
        ["name", "type", "from", "value"],
        ["df", "DataFrame", "step", "'load", "data'", "shape", "(3,", "2)"],
        ["threshold", "int", "parameter", "1"],
    ]
    assert "cellpipe: cell 5 failed at line 2: AssertionError: 2 rows over 1" in said
    assert "then re-run cell 5" in said
    assert _text(nb.cells[2]) == "(3, 2) 1 int float64\n"
    error = [o for o in nb.cells[3].outputs if o["output_type"] == "error"]
    assert (error[0]["ename"], error[0]["evalue"]) == ("AssertionError", "2 rows over 1")


# --- in a bare shell ------------------------------------------------------------------------------


def run_here(path: Path) -> RunRecord:
    home = Path.cwd() / "cellpipe-home"  # the shell fixture's CELLPIPE_HOME
    pipeline = load_pipeline(path, CompileOptions(local_only=True))
    return LocalEngine(RunStore(home / "runs.sqlite"), home).run(RunRequest(pipeline, path, {}))


def steps_named(first: str, second: str) -> dict[str, Any]:
    return notebook(
        (["parameters"], "n = 3"),
        ([f"step:{first}"], "rows = list(range(n))\nlabel = 'x' * 500"),
        ([f"step:{second}"], "total = sum(rows) + len(label)\nraise KeyError(total)"),
    )


def test_the_line_parses_with_quoted_or_unquoted_step_names() -> None:
    assert parse_magic("debug 2026 'train model'") == DebugCommand("2026", "train model")
    assert parse_magic('debug 2026 "train model"') == DebugCommand("2026", "train model")
    assert parse_magic("debug 2026 train model") == DebugCommand("2026", "train model")
    assert parse_magic("debug 2026 train-model") == DebugCommand("2026", "train-model")
    with pytest.raises(UsageError, match="the following arguments are required: STEP"):
        parse_magic("debug 2026")


def test_a_step_name_with_quotes_and_escapes_is_found_and_shown_safely(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given: a failed step whose name holds quotes, what IPython expands, and a terminal escape
    name = 'it\'s "sum" $n {n} \x1b[2Jnow'
    record = run_here(write(tmp_path / "names.ipynb", steps_named("make", name)))
    # When: named as a shell word, IPython's `$` and braces doubled (what the sidebar sends)
    word = shlex.quote(name).replace("$", "$$").replace("{", "{{").replace("}", "}}")
    result = shell.run_cell(f"%cellpipe debug {record.run_id} {word}")
    # Then
    assert result.success, result.error_in_exec
    said = capsys.readouterr().out
    assert "\x1b" not in said
    assert "step 'it\\'s \"sum\" $n {n} \\x1b[2Jnow' of run" in said  # shown as its repr
    assert "cell 3 failed at line 2: KeyError: 503" in said
    assert "re-run cell 3" in said and "before it" not in said  # the step's first cell
    assert shell.user_ns["rows"] == [0, 1, 2] and "n" not in shell.user_ns  # make's parameter
    assert len(shell.user_ns["label"]) == 500
    label_row = next(line for line in said.splitlines() if line.startswith("  label"))
    assert "xxx...xxx" in label_row and len(label_row) < 100  # a long repr is cut


def test_a_value_that_cannot_be_read_fails_the_cell_after_loading_the_others(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = run_here(write(tmp_path / "damaged.ipynb", steps_named("make", "use")))
    value = Path(record.outputs) / "steps" / "make" / "rows"
    for part in value.iterdir():
        if part.name != "cellpipe-format.json":
            part.write_bytes(b"not a pickle")
    result = shell.run_cell(f"%cellpipe debug {record.run_id} use")
    assert isinstance(result.error_in_exec, UsageError)
    assert "'rows' (from step 'make' of run" in str(result.error_in_exec)
    assert "could not be read from" in str(result.error_in_exec)
    assert shell.user_ns["label"] == "x" * 500
    assert "rows" not in shell.user_ns


def test_errors_are_usage_errors(shell: InteractiveShell, tmp_path: Path) -> None:
    record = run_here(write(tmp_path / "errors.ipynb", steps_named("make", "use")))
    unknown = shell.run_cell(f"%cellpipe debug {record.run_id} nope")
    assert isinstance(unknown.error_in_exec, UsageError)
    assert "has no step 'nope'; its steps are 'make', 'use'" in str(unknown.error_in_exec)
    no_run = shell.run_cell("%cellpipe debug 1999 use")
    assert "no run '1999'" in str(no_run.error_in_exec)


def test_help_lists_debug(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    assert shell.run_cell("%cellpipe").success
    assert "debug" in capsys.readouterr().out
    assert shell.run_cell("%cellpipe debug -h").success
    assert "quote a name with spaces" in capsys.readouterr().out


def test_short_reprs() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    class Shaped:
        shape = (2, 3)

    assert short_repr(3) == "3"
    assert short_repr(list(range(100))) == "[0, 1, 2, 3, 4, 5, ...]"
    assert short_repr(Shaped()) == "shape (2, 3)"
    assert short_repr(Broken()).startswith("<Broken instance at 0x")
    assert short_repr("a\nb") == "'a\\nb'"
    assert len(short_repr("y" * 1000)) == 60
