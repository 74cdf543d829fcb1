"""The sidebar ships prebuilt: in the wheel, and linked into the development venv.

The wheel carries share/jupyter/labextensions/cellpipe (package.json, install.json, the
static bundle, the settings schema); installed into a fresh prefix with no node on PATH,
JupyterLab lists it enabled and OK, and jupyter-server finds the server extension too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from .conftest import PREBUILT, ROOT

LABEXT = "share/jupyter/labextensions/cellpipe"


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_the_development_venv_has_the_sidebar_linked_and_enabled() -> None:
    assert PREBUILT.is_file(), "the sidebar is not built: run `make labextension` first"
    linked = Path(sys.prefix) / LABEXT
    assert linked.resolve() == PREBUILT.parent.resolve()
    listed = _plain(_run([sys.executable, "-m", "jupyterlab.labextensions", "list"]))
    assert re.search(r"cellpipe v0\.1\.0 enabled\s+OK", listed), listed


@pytest.mark.timeout(300)
def test_the_wheel_ships_the_prebuilt_sidebar_and_installs_without_node(tmp_path: Path) -> None:
    # Given the wheel, built from this checkout
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."])
    (wheel,) = wheels.glob("cellpipe-*.whl")
    data = "cellpipe-0.1.0.data/data/"
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        f"{LABEXT}/package.json",
        f"{LABEXT}/install.json",
        f"{LABEXT}/static/style.js",
        f"{LABEXT}/schemas/cellpipe/plugin.json",
        "etc/jupyter/jupyter_server_config.d/cellpipe.json",
    ):
        assert data + name in names, f"{name} is not in {wheel.name}"
    assert any(re.fullmatch(rf"{data}{LABEXT}/static/remoteEntry\.\w+\.js", n) for n in names)

    # When it is installed into a fresh environment by that environment's own pip (never this
    # venv's pip with --prefix: that uninstalls this venv's editable cellpipe), with no node
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    python = str(fresh / "bin" / "python")
    quiet = {"PATH": str(fresh / "bin"), "HOME": str(tmp_path / "home"), "PIP_NO_INPUT": "1"}
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], quiet)
    # (its dependencies, JupyterLab included, are then borrowed from this venv rather than
    # downloaded again: a path entry after the fresh environment's own site-packages, added
    # only once the install is done)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(fresh), "platbase": str(fresh)}))
    (purelib / "borrowed-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {
        "PATH": str(fresh / "bin"),
        "HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    where = _run([python, "-c", "import cellpipe, sys; print(cellpipe.__file__, sys.prefix)"], env)
    assert where.split()[0].startswith(str(purelib)), where  # the wheel's copy, not this checkout's
    assert os.path.realpath(where.split()[1]) == os.path.realpath(fresh)

    # Then JupyterLab lists the sidebar from the fresh prefix, enabled and OK, as installed
    # by the Python package, and jupyter-server finds the server extension enabled
    listed = _plain(_run([python, "-m", "jupyterlab.labextensions", "list"], env))
    assert str(fresh / "share" / "jupyter" / "labextensions") in listed, listed
    assert re.search(r"cellpipe v0\.1\.0 enabled\s+OK \(python, cellpipe\)", listed), listed
    servers = _plain(_run([python, "-m", "jupyter_server.extension.serverextension", "list"], env))
    assert re.search(r"cellpipe\s+enabled", servers), servers
    assert re.search(r"cellpipe 0\.1\.0\s+OK", servers), servers
    # and this venv's own (editable) cellpipe is untouched
    _run([sys.executable, "-c", "import importlib.metadata as m; m.distribution('cellpipe')"])
