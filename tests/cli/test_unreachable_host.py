"""A Kubeflow Pipelines API that does not answer (issue 20): the error names the address
tried and where it came from (--host, $KF_PIPELINES_ENDPOINT, c.CellPipe.kfp_host, the
kubeconfig's context). Real `cellpipe submit` processes against a port nothing listens on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notebooks import notebook, write

IMAGE = "registry.example.com/team/train:0123456789abcdef"


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def submit(tmp_path: Path, *options: str, **env: str) -> str:
    nb = write(tmp_path / "train.ipynb", notebook((["step:train"], "model = 1")))
    config = tmp_path / "jupyter"
    config.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("KF_PIPELINES_ENDPOINT", "KUBECONFIG")}
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "submit", str(nb), "--image", IMAGE, *options],
        capture_output=True,
        text=True,
        env={
            **base,
            "CELLPIPE_HOME": str(tmp_path / "home"),
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_CONFIG_PATH": "",
            "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            **env,
        },
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_the_host_option_is_named(tmp_path: Path, closed_port: int) -> None:
    err = submit(tmp_path, "--host", f"http://127.0.0.1:{closed_port}")
    assert (
        f"cannot reach the Kubeflow Pipelines API at http://127.0.0.1:{closed_port} (from --host)"
        in err
    )


def test_the_environment_variable_is_named(tmp_path: Path, closed_port: int) -> None:
    err = submit(tmp_path, KF_PIPELINES_ENDPOINT=f"http://127.0.0.1:{closed_port}")
    assert f"at http://127.0.0.1:{closed_port} (from $KF_PIPELINES_ENDPOINT)" in err


def test_the_configuration_is_named(tmp_path: Path, closed_port: int) -> None:
    (tmp_path / "jupyter").mkdir()
    (tmp_path / "jupyter" / "jupyter_server_config.py").write_text(
        f'c.CellPipe.kfp_host = "http://127.0.0.1:{closed_port}"\n'
    )
    err = submit(tmp_path)
    assert f"at http://127.0.0.1:{closed_port} (from c.CellPipe.kfp_host)" in err


def test_the_kubeconfig_and_its_context_are_named(tmp_path: Path, closed_port: int) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    server = f"http://127.0.0.1:{closed_port}"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "lab", "cluster": {"server": server}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "lab-ctx", "context": {"cluster": "lab", "user": "me"}}],
                "current-context": "lab-ctx",
            }
        )
    )
    err = submit(tmp_path, "--kubeconfig", str(kubeconfig), "--context", "lab-ctx")
    assert f"cannot reach the Kubeflow Pipelines API at {server}/api/v1/namespaces/kubeflow" in err
    assert f"(the API server's proxy, from the kubeconfig {kubeconfig} (context lab-ctx)" in err
