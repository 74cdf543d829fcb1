"""What `cellpipe run` shows as a user runs it (issue 20): a header, each step's output under
its line (`--quiet` hides it), the total time and what to do next; colour on a terminal and
with FORCE_COLOR, none with NO_COLOR or when piped. Real processes, and a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.notebooks import notebook, write

NOTEBOOK = notebook(
    (["step:load"], "rows = [3, 1, 2]\nprint('loaded', len(rows), 'rows')"),
    (["step:sort", "after:load"], "ordered = sorted(rows)\nprint('sorted:', ordered)"),
    (["step:check", "after:sort"], "assert ordered[0] == 3, 'smallest first'"),
    (["step:never", "after:check"], "print('not reached')"),
)
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return {**env, "CELLPIPE_HOME": str(home), "TERM": "xterm-256color", **extra}


def cellpipe(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env=environment(home, **extra),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def in_terminal(home: Path, *args: str, **extra: str) -> tuple[int, str]:
    """Run cellpipe with a pseudo-terminal as its stdout and stderr, as in a terminal."""
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "cellpipe.cli", *args],
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env=environment(home, COLUMNS="100", **extra),
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal's other end closed: the process ended
                break
            if not data:
                break
            chunks.append(data)
        os.close(leader)
        status = process.wait(timeout=120)
    return status, b"".join(chunks).decode("utf-8", errors="replace")


def test_run_shows_a_header_each_steps_output_under_its_line_and_what_next(
    tmp_path: Path,
) -> None:
    nb = write(tmp_path / "sorting.ipynb", NOTEBOOK)
    result = cellpipe(tmp_path / "home", "run", str(nb))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "pipeline sorting: 4 steps, engine local"
    finished = [line for line in lines if not line.startswith("  Running")]
    assert finished[1].startswith("  Succeeded  load   ") and finished[1].endswith(" s")
    assert finished[2] == "      loaded 3 rows"
    assert finished[3].startswith("  Succeeded  sort   ")
    assert finished[4] == "      sorted: [1, 2, 3]"
    assert finished[5].startswith("  Failed     check  ")
    assert "      AssertionError: smallest first" in finished
    assert "  Cancelled  never" in finished and "skip" not in result.stdout
    ended = next(line for line in lines if line.startswith("run "))
    run_id = ended.split()[1].rstrip(":")
    assert re.fullmatch(rf"run {run_id}: Failed in \d+\.\d s", ended)
    assert f"  cellpipe logs {run_id}" in result.stdout
    assert f"  cellpipe status {run_id}" in result.stdout
    assert "  executed notebook: " in result.stdout
    # errors on stderr, one line for the step whose traceback is shown above
    assert result.stderr.splitlines() == [
        "cellpipe: step 'check' failed: AssertionError: smallest first"
    ]
    assert COLOUR.search(result.stdout + result.stderr) is None  # piped: no colour


def test_quiet_hides_what_the_steps_printed(tmp_path: Path) -> None:
    nb = write(tmp_path / "sorting.ipynb", NOTEBOOK)
    result = cellpipe(tmp_path / "home", "run", str(nb), "--quiet")
    assert "loaded 3 rows" not in result.stdout and "sorted:" not in result.stdout
    assert "  Succeeded  load" in result.stdout
    assert "AssertionError: smallest first" in result.stderr  # the failure still said, whole
    assert "Traceback" in result.stderr


def test_colour_with_force_color_and_none_with_no_color(tmp_path: Path) -> None:
    nb = write(tmp_path / "sorting.ipynb", NOTEBOOK)
    home = tmp_path / "home"
    forced = cellpipe(home, "run", str(nb), FORCE_COLOR="1")
    assert "\x1b[32mSucceeded\x1b[0m" in forced.stdout
    assert "\x1b[1;31mFailed" in forced.stdout
    run_id = forced.stdout.split("cellpipe logs ")[1].split()[0]
    assert (
        "\x1b[1;31m==> step check: Failed" in cellpipe(home, "logs", run_id, FORCE_COLOR="1").stdout
    )
    both = cellpipe(home, "run", str(nb), FORCE_COLOR="1", NO_COLOR="1")
    assert COLOUR.search(both.stdout) is None and "Succeeded" in both.stdout
    for command in (("runs",), ("logs", run_id), ("status", run_id)):
        assert COLOUR.search(cellpipe(home, *command).stdout) is None, command


def test_a_terminal_gets_colour_and_the_live_list_and_no_color_turns_colour_off(
    tmp_path: Path,
) -> None:
    nb = write(tmp_path / "sorting.ipynb", NOTEBOOK)
    home = tmp_path / "home"
    status, shown = in_terminal(home, "run", str(nb))
    assert status == 1
    assert "\x1b[32mSucceeded\x1b[0m" in shown and "      sorted: [1, 2, 3]" in shown
    assert "Pending" in shown  # the steps not yet run, listed live (then cleared)
    status, plain = in_terminal(home, "run", str(nb), NO_COLOR="1")
    assert status == 1 and "Succeeded" in plain
    assert not [
        code for code in COLOUR.findall(plain) if code not in ("\x1b[0m", "\x1b[1m", "\x1b[2m")
    ]


def test_a_cached_step_shows_what_it_printed_when_it_ran(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "cached.ipynb",
        notebook((["step:load"], "rows = [3, 1]\nprint('loaded', len(rows), 'rows')")),
    )
    home = tmp_path / "home"
    assert cellpipe(home, "run", str(nb)).returncode == 0
    again = cellpipe(home, "run", str(nb))
    lines = again.stdout.splitlines()
    assert lines[1:3] == ["  Succeeded  load  cached", "      loaded 2 rows"]
