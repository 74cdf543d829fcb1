"""What a notebook wrote reaches a terminal without control sequences (issue 16): step names,
messages and what its steps printed cannot move the cursor, clear the screen, set the title
or write the clipboard (OSC 52)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellpipe.commands.terminal import safe_stream, terminal_safe, unfiltered
from tests.notebooks import notebook, write

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "plain text, é 日本\tand tabs\n": "plain text, é 日本\tand tabs\n",
    "red \x1b[31mtext\x1b[0m": "red text",
    "clear\x1b[2J\x1b[H": "clear",
    "title \x1b]0;pwned\x07done": "title done",
    "clipboard \x1b]52;c;ZXZpbA==\x1b\\done": "clipboard done",
    "c1 \x9b2Jcsi": "c1 csi",
    "over\rwrite": "overwrite",
    "bell\x07 nul\x00 del\x7f": "bell nul del",
    "bidi \u202egnp.exe\u202c": "bidi gnp.exe",
    "lone escape \x1b": "lone escape ",
    "keypad \x1b=mode": "keypad mode",
}


@pytest.mark.parametrize("text", list(CASES))
def test_control_sequences_are_stripped_and_text_kept(text: str) -> None:
    assert terminal_safe(text) == CASES[text]


def test_a_safe_stream_filters_every_write_and_keeps_the_rest_of_the_stream() -> None:
    raw = io.StringIO()
    out = safe_stream(raw)
    print("a\x1b]0;x\x07b", file=out)
    out.write("\x1b")  # a sequence split across writes leaves no escape behind
    out.write("[2Jc\n")
    unfiltered(out).write("\x1b[1F")  # cellpipe's own cursor move
    assert raw.getvalue() == "ab\n[2Jc\n\x1b[1F"
    assert out.isatty() is False and unfiltered(raw) is raw


EVIL_NAME = "evil\x1b]0;pwned\x07 step"
EVIL = notebook(
    ([f"step:{EVIL_NAME}"], "print('\\x1b]52;c;ZXZpbA==\\x07hello\\x1b[2J')\nx = 1"),
    (["step:b"], "y = x\nraise ValueError('\\x1b]0;title\\x07bad')"),
)


def cellpipe(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CELLPIPE_HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "jc")}
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_the_cli_prints_a_notebooks_text_without_control_sequences(tmp_path: Path) -> None:
    path = write(tmp_path / "evil.ipynb", EVIL)
    home = tmp_path / "home"

    ran = cellpipe("run", str(path), home=home)
    listed = cellpipe("runs", "--format", "json", home=home).stdout
    run_id = json.loads(listed)["runs"][0]["run_id"]
    status = json.loads(cellpipe("status", run_id, "--format", "json", home=home).stdout)
    task_of_evil = status["steps"][EVIL_NAME]["task"]
    shown = [
        ran,
        cellpipe("status", run_id, home=home),
        cellpipe("logs", run_id, "--step", task_of_evil, home=home),
        cellpipe("logs", run_id, "--step", "b", home=home),
        cellpipe("runs", home=home),
        cellpipe("compile", str(path), home=home),
    ]
    for result in shown:
        text = result.stdout + result.stderr
        assert "\x1b" not in text and "\x07" not in text, (result.args, text)
    assert "evil step" in ran.stdout
    assert "hello" in shown[2].stdout
    assert "ValueError: bad" in shown[3].stdout + shown[3].stderr
