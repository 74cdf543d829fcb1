"""Errors first (issue 20): a compile's errors come before its warnings, the registry warning
is said once, short, after them; in a Kale notebook the messages name Kale's tags (`prev:`,
`block:`), in a cellpipe notebook cellpipe's. Real `cellpipe` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notebooks import notebook, write

KALE = {"kubeflow_notebook": {"pipeline_name": "kale-flow"}}


def cellpipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "CELLPIPE_HOME": str(tmp_path / "home"),
            "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter"),
            "JUPYTER_CONFIG_PATH": "",
        },
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.mark.parametrize("command", ["compile", "run"])
def test_errors_come_first_and_the_registry_warning_once_short_after_them(
    tmp_path: Path, command: str
) -> None:
    nb = write(
        tmp_path / "flow.ipynb",
        notebook((["block:load"], "x = 1"), (["block:train", "prev:lod"], "y = x")),
    )
    result = cellpipe(tmp_path, command, str(nb))
    assert result.returncode == 2
    kinds = [line.split(":")[1].strip() for line in result.stderr.splitlines()]
    assert kinds[0] == "error" and "warning" not in kinds[: kinds.count("error")]
    registry = [line for line in result.stderr.splitlines() if "no registry" in line]
    assert len(registry) == (1 if command == "compile" else 0)  # run is local: no warning
    assert all(len(line[line.index("no registry") :]) < 140 for line in registry)  # was 200


def test_a_kale_notebooks_messages_name_its_own_tags(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "kale.ipynb",
        notebook(
            (["block:load"], "x = 1"),
            (["block:train", "prev:lod"], "y = x"),
            (["block:report", "prev:load"], "print(y)"),
            metadata=KALE,
        ),
    )
    err = cellpipe(tmp_path, "compile", str(nb)).stderr
    assert "prev:lod names no step; did you mean prev:load?" in err
    assert "add the tag prev:train to step 'report'" in err
    assert "after:" not in err and "step:" not in err


def test_a_kale_notebook_without_step_tags_is_told_of_block(tmp_path: Path) -> None:
    nb = write(tmp_path / "one.ipynb", notebook(([], "x = 1"), metadata=KALE))
    err = cellpipe(tmp_path, "compile", str(nb), "-o", "-").stderr
    assert "tag a cell block:NAME (or start it with %%step NAME)" in err


def test_a_cellpipe_notebook_keeps_cellpipes_words(tmp_path: Path) -> None:
    nb = write(
        tmp_path / "mine.ipynb",
        notebook((["step:load"], "x = 1"), (["step:train", "after:lod"], "y = x")),
    )
    err = cellpipe(tmp_path, "compile", str(nb)).stderr
    assert "after:lod names no step; did you mean after:load?" in err
    assert "prev:" not in err
