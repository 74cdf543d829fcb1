"""A real JupyterLab with the real cellpipe server extension, for the browser tests.

The server is started and stopped by the `jupyter_lab` fixture: bound to 127.0.0.1 on a free
port, with a token, its root, CELLPIPE_HOME and every Jupyter folder under tmp_path, so nothing
of the machine's own configuration or run store is read or written, and nothing is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
PREBUILT = ROOT / "labextension" / "prebuilt" / "package.json"
START_SECONDS = 90.0


@dataclass(frozen=True)
class Lab:
    url: str  # ends with '/'
    token: str
    root: Path
    home: Path
    log: Path

    def api(self, path: str) -> object:
        """GET a JSON resource of the server, with the token."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(lab: Lab, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"jupyter lab exited with {process.returncode}:\n{lab.log.read_text()[-4000:]}"
            )
        try:
            lab.api("cellpipe/api/config")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    raise AssertionError(f"jupyter lab did not answer in time:\n{lab.log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (jupyter-server shuts its kernels down), then the process group if need be."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # kernels and step processes it started live in its process group: none may outlive it
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[Lab]:
    assert PREBUILT.is_file(), "the sidebar is not built: run `make labextension` first"
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(ROOT / "examples" / "iris_cellpipe.ipynb", root)
    config = tmp_path / "jupyter-config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {
                        "cellpipe": True,
                        "jupyterlab": True,
                        # not needed here, and their sockets lack auth decorators
                        "jupyter_server_terminals": False,
                        "jupyter_lsp": False,
                    },
                    "allow_unauthenticated_access": False,
                    "reraise_server_extension_failures": True,
                }
            }
        )
    )
    # no "get notified about Jupyter news?" toast over the notebook, no update checks
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = _free_port()
    token = secrets.token_hex(16)
    lab = Lab(
        url=f"http://127.0.0.1:{port}/",
        token=token,
        root=root,
        home=tmp_path / "cellpipe-home",
        log=tmp_path / "jupyter-lab.log",
    )
    env = {
        **os.environ,
        "CELLPIPE_HOME": str(lab.home),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # CI runs as root
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={tmp_path / 'lab-settings'}",
        f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
    ]
    with open(lab.log, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_until_up(lab, process)
        yield lab
    finally:
        _stop(process)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(lab.log, ARTIFACTS / "jupyter-lab.log")
