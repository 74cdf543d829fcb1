"""`%cellpipe tune` in a shell, and its trials table widget following a real tune."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from cellpipe.launcher.config import load_config
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.tuning import TuneRequest, plan_tune, tune_here
from cellpipe.widgets import TuneTable
from tests.notebooks import notebook, write

CHOICES = notebook(
    (["parameters"], "x = 1\nlabel = 'a'"),
    (["step:score"], "score = x * 2 + (label == '<b>b</b>')"),
    (["metrics"], "score"),
)


def test_the_magic_tunes_the_notebook_and_prints_each_trial(
    shell: InteractiveShell, steps_notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_line_magic(
        "cellpipe",
        f"tune {steps_notebook} --objective ratio --maximize --search n=4..6 --algorithm grid "
        "--parallel 1",
    )
    out = capsys.readouterr().out
    assert out.count("  trial ") == 3
    assert "trial 1 Succeeded: n=4" in out and "ran: make data, sum up, spread, report" in out
    assert "best ratio =" in out and "n = 6" in out


def test_a_user_error_is_a_usage_error(shell: InteractiveShell, steps_notebook: Path) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="no parameter 'm'"):
        shell.run_line_magic(
            "cellpipe", f"tune {steps_notebook} --objective ratio --maximize --search m=1..3"
        )


def test_the_table_follows_the_trials_and_escapes_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLPIPE_HOME", str(tmp_path / "home"))
    path = write(tmp_path / "choices.ipynb", CHOICES)
    config = load_config()
    request = TuneRequest(
        "score", "maximize", ["x=1,2", "label=a,<b>b</b>"], algorithm="grid", parallel=1
    )
    plan = plan_tune(prepare_file(path, config, local_only=True), request)
    table = TuneTable("score", "maximize")
    seen: list[int] = []

    def listener(event: str, tune: object, trial: object) -> None:
        table(event, tune, trial)
        seen.append(table.table.value.count("<tr>"))

    tune = tune_here(plan, config, home=tmp_path / "home", listener=listener)
    assert tune.status == "Succeeded"
    html = table.table.value
    assert html.count("<tr>") == 5  # the header and 4 trials
    assert seen == sorted(seen)  # the rows came as the trials did
    assert "&lt;b&gt;b&lt;/b&gt;" in html and "<b>b</b>" not in html
    assert (
        "best score = 5" in table.best.value
        and "&#x27;&lt;b&gt;b&lt;/b&gt;&#x27;" in table.best.value
    )
