"""Every command reads c.CellPipe from the Jupyter config files, in the one precedence:
an explicit option > the notebook's metadata.cellpipe > configuration > defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notebooks import notebook, write


@pytest.fixture
def configured(tmp_path: Path) -> dict[str, str]:
    """A user whose jupyter_server_config.py sets a registry, a base image and a builder."""
    folder = tmp_path / "jupyter"
    folder.mkdir()
    (folder / "jupyter_server_config.py").write_text(
        'c.CellPipe.registry = "registry.example.com/configured"\n'
        'c.CellPipe.base_image = "python:3.11-configured"\n'
        'c.CellPipe.gpu_resource = "example.com/gpu"\n'
    )
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(folder),
        "JUPYTER_CONFIG_PATH": "",
        "CELLPIPE_HOME": str(tmp_path / "home"),
    }


def compile_json(nb: Path, env: dict[str, str], *options: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "compile", str(nb), "-o", "-", *options,
         "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout[result.stdout.index("{\n") :])


def test_compile_takes_configuration_under_the_notebook_and_the_flags(
    tmp_path: Path, configured: dict[str, str]
) -> None:
    plain = write(tmp_path / "plain.ipynb", notebook((["step:a", "gpu:1"], "x = 1")))
    # configuration, where neither the notebook nor a flag says
    data = compile_json(plain, configured)
    assert data["image"].startswith("registry.example.com/configured/")
    assert data["steps"][0]["resources"]["gpu"]["resource"] == "example.com/gpu"
    # the notebook's metadata.cellpipe wins over configuration
    own = write(
        tmp_path / "own.ipynb",
        notebook((["step:a"], "x = 1"), metadata={"cellpipe": {"registry": "nb.example/own"}}),
    )
    assert compile_json(own, configured)["image"].startswith("nb.example/own/")
    # and a flag wins over both
    flagged = compile_json(own, configured, "--registry", "flag.example/team")
    assert flagged["image"].startswith("flag.example/team/")


def test_requirements_and_run_read_the_same_configuration(
    tmp_path: Path, configured: dict[str, str]
) -> None:
    nb = write(tmp_path / "nb.ipynb", notebook((["step:a"], "x = 1"), (["step:b"], "y = x")))
    broken = {**configured}
    Path(broken["JUPYTER_CONFIG_DIR"], "jupyter_server_config.py").write_text(
        'c.CellPipe.default_engine = "nowhere"\n'
    )
    for command in (["run", str(nb)], ["requirements", str(nb)], ["build", str(nb)]):
        result = subprocess.run(
            [sys.executable, "-m", "cellpipe.cli", *command],
            capture_output=True, text=True, env=broken, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        # a wrong setting is said by every command, as one line: each one read the file
        assert result.returncode == 2, (command, result.stderr)
        assert "default_engine 'nowhere' is not one of the engines" in result.stderr
        assert "Traceback" not in result.stderr
