"""Every option and argument of every command says what it does in `--help` (issue 20), for
the `cellpipe` program and for the `%cellpipe` magic: the parser is walked, not a list kept."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cellpipe.commands.arguments import build_parser


def actions(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from actions(sub, f"{path} {name}")
        else:
            yield path, action


@pytest.mark.parametrize("for_magic", [False, True], ids=["cli", "magic"])
def test_every_option_has_help(for_magic: bool) -> None:
    walked = list(actions(build_parser(for_magic=for_magic), "cellpipe"))
    assert len({path for path, _ in walked}) > 10  # every command was reached
    unexplained = [
        f"{path} {'/'.join(action.option_strings) or action.dest}"
        for path, action in walked
        if not (action.help and action.help.strip()) or action.help == argparse.SUPPRESS
    ]
    assert unexplained == []


def test_the_logs_help_says_what_it_prints() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "logs", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "100", "PATH": ""},
    )
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "each step's output in order under a header" in text
    assert "RUN the run's id, or the start of it" in text
