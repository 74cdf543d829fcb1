"""`%load_ext cellpipe` in a bare IPython shell: `%%step`, `%cellpipe`, `%cellpipe load`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import cellpipe
from cellpipe.converter import load_pipeline
from cellpipe.magics import CellPipeCommand, FormCommand, LoadCommand, parse_magic
from cellpipe.views import PipelineView, RunView, dag_svg
from tests.notebooks import notebook, write


def run(shell: InteractiveShell, source: str) -> Any:
    return shell.run_cell(source, store_history=True)


# --- %%step ---------------------------------------------------------------------------------------


def test_a_step_cell_runs_as_usual(shell: InteractiveShell) -> None:
    result = run(shell, '%%step "Load data!" --after prep --gpu 1:A100 --cpu 2\nx = 20\nx + 1')
    assert result.success
    assert result.result == 21
    assert shell.user_ns["x"] == 20


def test_an_error_in_a_step_cell_fails_the_cell_at_its_own_line(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(shell, "%%step divide\nrows = [1]\nratio = rows[0] / 0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert "----> 3 ratio = rows[0] / 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("%%step train --gpus 2", "unknown option '--gpus'"),
        ("%%step --after prep", "names no step"),
        ("%%step train --gpu many", "the GPU count must be a whole number"),
        ("%%step train --cpu lots", "'lots' is not a Kubernetes quantity"),
        ("%%step train --memory", "--memory needs a value"),
        ("%%step Load data", "unexpected 'data' after the step name (quote a name with spaces)"),
        ('%%step "unclosed', "cannot read the %%step line"),
    ],
)
def test_a_bad_step_line_is_a_clear_error_and_the_cell_does_not_run(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, said: str
) -> None:
    # Given
    shell.user_ns["ran"] = False
    # When
    result = run(shell, f"{line}\nran = True")
    # Then
    assert isinstance(result.error_before_exec, UsageError)
    assert said in str(result.error_before_exec)
    assert shell.user_ns["ran"] is False
    err = capsys.readouterr().err
    assert err.startswith("UsageError: %%step: ")
    assert "Traceback" not in err


def test_the_magic_and_the_converter_read_a_step_line_alike(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    line = '%%step "Train it" --after "Load data!" --gpu 2:A100 --cpu 500m --memory 4Gi'
    path = write(
        tmp_path / "one.ipynb",
        notebook(([], '%%step "Load data!"\nx = 1'), ([], f"{line}\ny = x + 1")),
    )
    assert run(shell, '%%step "Load data!"\nx = 1').success
    assert run(shell, f"{line}\ny = x + 1").success
    step = load_pipeline(path).steps[1]
    assert (step.name, step.after) == ("Train it", ["Load data!"])
    assert step.resources.to_json()["gpu"] == {
        "count": 2,
        "type": "A100",
        "resource": "nvidia.com/gpu",
    }
    magic = cellpipe.magics.parse_step_magic(line)
    assert (magic.name, magic.after, magic.gpu_count, magic.gpu_type) == (
        "Train it",
        ("Load data!",),
        2,
        "A100",
    )
    assert (magic.cpu, magic.memory) == ("500m", "4Gi")


def test_a_step_line_before_another_cell_magic(shell: InteractiveShell) -> None:
    result = run(shell, "%%step timed\n%%capture captured\nprint('hidden')\nz = 3")
    assert result.success
    assert shell.user_ns["z"] == 3
    assert shell.user_ns["captured"].stdout == "hidden\n"


def test_loading_twice_registers_once_and_unloading_removes_it(shell: InteractiveShell) -> None:
    shell.run_line_magic("reload_ext", "cellpipe")
    transformers = [t for t in shell.input_transformers_cleanup if "StepLine" in repr(t)]
    assert len(transformers) == 1
    assert shell.find_cell_magic("step") and shell.find_line_magic("cellpipe")
    shell.run_line_magic("unload_ext", "cellpipe")
    assert shell.find_cell_magic("step") is None and shell.find_line_magic("cellpipe") is None
    assert not [t for t in shell.input_transformers_cleanup if "StepLine" in repr(t)]
    shell.run_line_magic("load_ext", "cellpipe")  # for the fixture's own unload


# --- %cellpipe: parsing ---------------------------------------------------------------------------


def test_magic_lines_parse_into_typed_commands() -> None:
    command = parse_magic("run -p epochs=3 --no-cache")
    assert isinstance(command, CellPipeCommand)
    assert (command.command, command.takes_notebook, command.notebook, command.rich) == (
        "run",
        True,
        None,
        True,
    )
    assert command.args.parameter == ["epochs=3"]
    assert command.args.no_cache and command.args.format == "json"
    named = parse_magic("compile --notebook other.ipynb --format text")
    assert isinstance(named, CellPipeCommand)
    assert (named.notebook, named.rich) == ("other.ipynb", False)
    positional = parse_magic("compile other.ipynb")
    assert isinstance(positional, CellPipeCommand) and positional.notebook == "other.ipynb"
    status = parse_magic("status 2025-abc")
    assert isinstance(status, CellPipeCommand) and not status.takes_notebook
    assert parse_magic("load 2025-abc model --step train --as m") == LoadCommand(
        "2025-abc", "model", "train", "m"
    )
    assert parse_magic("submit --form --engine local -p n=3") == FormCommand(
        None, "local", ("n=3",)
    )


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("bogus", "invalid choice: 'bogus'"),
        ("run --engine nowhere", "argument --engine: invalid choice: 'nowhere'"),
        ("run --no-such-flag", "unrecognized arguments: --no-such-flag"),
        ("compile a.ipynb --notebook b.ipynb", "name the notebook once"),
        ("load RUN", "the following arguments are required: NAME"),
        ("load RUN my-model", "'my-model' is not a variable name"),
        ("run 'unclosed", "cannot read the line"),
    ],
)
def test_bad_options_are_usage_errors_and_nothing_runs(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, said: str
) -> None:
    result = run(shell, f"%cellpipe {line}")
    assert isinstance(result.error_in_exec, UsageError)
    assert said in str(result.error_in_exec)
    assert "Traceback" not in capsys.readouterr().err
    assert not (Path.cwd() / "cellpipe-home" / "runs").exists()


def test_help_lists_every_command_and_the_magic_own(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(shell, "%cellpipe").success
    usage = capsys.readouterr().out
    for command in ("compile", "run", "build", "requirements", "load"):
        assert command in usage
    assert run(shell, "%cellpipe run -h").success
    assert "--notebook PATH" in capsys.readouterr().out
    if "submit" in usage:
        assert run(shell, "%cellpipe submit -h").success
        assert "--form" in capsys.readouterr().out


def test_without_a_session_it_asks_for_the_notebook(shell: InteractiveShell) -> None:
    result = run(shell, "%cellpipe compile")
    assert isinstance(result.error_in_exec, UsageError)
    assert "name it: --notebook PATH" in str(result.error_in_exec)


# --- %cellpipe compile / run / load ---------------------------------------------------------


def test_compile_finds_the_kernel_notebook_says_when_saved_and_shows_the_dag(
    shell: InteractiveShell,
    steps_notebook: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given: a kernel started by jupyter_server for the notebook
    monkeypatch.setenv("JPY_SESSION_NAME", str(steps_notebook))
    # When
    result = run(shell, "%cellpipe compile")
    # Then
    assert result.success, result.error_in_exec
    said = capsys.readouterr().out
    assert said.startswith(f"cellpipe: {steps_notebook}, saved 20")
    view = result.result
    assert isinstance(view, PipelineView)
    assert [s["name"] for s in view.steps] == ["make data", "sum up", "spread", "report"]
    html = view._repr_html_()
    svg = ET.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])
    assert [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")] == [
        "make data",
        "sum up",
        "spread",
        "report",
    ]
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}path"))) == 1 + 4  # marker + edges
    assert "cpu 500m" in html and "<td" in html
    assert repr(view).startswith("pipeline 'steps': 4 steps -> ")
    assert steps_notebook.with_suffix(".yaml").is_file()


def test_compile_errors_are_shown_and_stop_the_cell(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "broken.ipynb", notebook(([], "%%step a --after nowhere\nx = 1")))
    result = run(shell, f"%cellpipe compile --notebook {path}")
    assert isinstance(result.error_in_exec, UsageError)
    assert "the notebook has 1 error (above)" in str(result.error_in_exec)
    assert "nowhere" in capsys.readouterr().out  # the view, with the error, was displayed


def test_run_shows_steps_and_metrics_and_load_brings_values_back(
    shell: InteractiveShell, steps_notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When
    result = run(shell, f"%cellpipe run --notebook {steps_notebook} -p n=4")
    # Then
    assert result.success, result.error_in_exec
    view = result.result
    assert isinstance(view, RunView)
    assert view.status == "Succeeded"
    data = [i * 1.5 for i in range(4)]
    assert view.metrics["total"] == sum(data)
    printed = capsys.readouterr().out
    assert "  Succeeded  make data" in printed  # the steps as they ran (a terminal: plain lines)
    html = view._repr_html_()
    assert "<svg" in html and "#16a34a" in html  # the DAG, coloured by status
    assert "ratio" in html and "Succeeded" in html
    # And the values it kept come back into the kernel
    assert run(shell, f"%cellpipe load {view.run_id} data").success
    assert shell.user_ns["data"] == data
    assert run(shell, f"%cellpipe load {view.run_id[:17]} total --as t --step 'sum up'").success
    assert shell.user_ns["t"] == sum(data)
    assert "cellpipe: t = 'total' from run" in capsys.readouterr().out
    assert cellpipe.load(view.run_id, "ratio") == view.metrics["ratio"]
    missing = run(shell, f"%cellpipe load {view.run_id} nothing")
    assert "did not hand on 'nothing'" in str(missing.error_in_exec)
    assert "what it kept: data (make data)" in str(missing.error_in_exec)
    wrong_step = run(shell, f"%cellpipe load {view.run_id} total --step nope")
    assert "has no step 'nope'" in str(wrong_step.error_in_exec)
    no_run = run(shell, "%cellpipe load 1999 total")
    assert "no run '1999'" in str(no_run.error_in_exec)


def test_a_failing_run_is_shown_and_fails_the_cell(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "failing.ipynb",
        notebook(([], "%%step prepare\nrows = [1]"), ([], "%%step divide\nr = rows[0] / 0")),
    )
    result = run(shell, f"%cellpipe run --notebook {path}")
    assert isinstance(result.error_in_exec, UsageError)
    assert " Failed: step 'divide' failed" in str(result.error_in_exec)
    assert "ZeroDivisionError: division by zero" in str(result.error_in_exec)
    captured = capsys.readouterr()
    assert 'File "failing.ipynb, cell 2"' in captured.err  # the CLI's own report
    assert "Failed" in captured.out  # the run's view


def test_an_explicit_format_prints_what_the_cli_prints(
    shell: InteractiveShell, steps_notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(shell, f"%cellpipe compile {steps_notebook} -o out.yaml --format json")
    assert result.success and result.result is None
    said, _, printed = capsys.readouterr().out.partition("\n")
    assert said.startswith(f"cellpipe: {steps_notebook}, saved ")
    assert json.loads(printed)["pipeline"] == "steps"


def test_views_escape_user_text() -> None:
    hostile = '<script>alert("x")</script> & co'
    svg = dag_svg([{"name": hostile, "after": []}, {"name": "b", "after": [hostile]}])
    assert "<script>" not in svg
    ET.fromstring(svg)  # well-formed
    view = RunView(
        {"run_id": "r", "status": "Failed", "steps": {hostile: {"status": "Failed"}}}, edges=[]
    )
    assert "<script>" not in view._repr_html_()
