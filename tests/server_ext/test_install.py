"""Installed, the extension is enabled and valid; importing cellpipe stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jupyter_server.extension.manager import ExtensionPackage

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "jupyter-config/jupyter_server_config.d/cellpipe.json"


def test_the_installed_config_enables_the_extension() -> None:
    assert json.loads((ROOT / CONFIG).read_text()) == {
        "ServerApp": {"jpserver_extensions": {"cellpipe": True}}
    }
    # the wheel carries it to PREFIX/etc/jupyter/jupyter_server_config.d/
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"etc/jupyter/jupyter_server_config.d" = ["{CONFIG}"]' in pyproject


def test_the_extension_validates_as_jupyter_server_extension_list_checks_it() -> None:
    package = ExtensionPackage(name="cellpipe", enabled=True)
    assert package.validate()
    assert package.version == "0.1.0"
    assert list(package.extension_points) == ["cellpipe"]


def test_importing_cellpipe_and_its_server_package_imports_nothing_heavy() -> None:
    code = (
        "import sys, cellpipe, cellpipe.server_ext, cellpipe.launcher.config\n"
        "heavy = {'jupyter_server', 'tornado', 'kfp', 'nbformat'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
