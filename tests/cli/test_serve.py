"""`cellpipe serve RUN` as a user runs it (issue 19): it prints the URL once the model answers,
`cellpipe runs`/`status` show the service, `cellpipe.predict` calls it, Ctrl-C stops it and
nothing is left listening; `%cellpipe serve` leaves it running for the kernel and
`%cellpipe delete SERVICE` stops it; mistakes are one line and exit status 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import cellpipe
from cellpipe.launcher.services import Services
from cellpipe.launcher.serving import SERVE_PYTHON_ENV, run_models
from tests.notebooks import notebook, write
from tests.serve_env import serve_python

pytestmark = pytest.mark.timeout(900)  # the first test may make the serve environment

WINE = notebook(
    (
        ["imports"],
        "from sklearn.datasets import load_wine\n"
        "from sklearn.ensemble import RandomForestClassifier",
    ),
    (["step:load"], "wine = load_wine(as_frame=True)\nX, y = wine.data, wine.target"),
    (
        ["step:fit", "model:forest"],
        "forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)",
    ),
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CELLPIPE_HOME": str(tmp_path / "home"),
        SERVE_PYTHON_ENV: serve_python(),
    }


def cellpipe_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def wine_run(env: dict[str, str], tmp_path: Path) -> str:
    done = cellpipe_cli(env, "run", str(write(tmp_path / "wine.ipynb", WINE)), "--format", "json")
    assert done.returncode == 0, done.stderr
    run_id: str = json.loads(done.stdout)["run_id"]
    return run_id


def test_serve_prints_its_url_and_ctrl_c_stops_it(
    env: dict[str, str], wine_run: str, tmp_path: Path
) -> None:
    # Given `cellpipe serve RUN --format json` in a terminal
    server = subprocess.Popen(
        [sys.executable, "-m", "cellpipe.cli", "serve", wine_run, "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        # Then it printed its URL once ready, and the model answers as the estimator does
        assert ready["model"] == "forest" and ready["protocols"] == ["v1", "v2"]
        (model,) = run_models(Services(tmp_path / "home").find_run(wine_run))
        estimator = joblib.load(model.directory / "model.joblib")
        from sklearn.datasets import load_wine

        rows = load_wine(as_frame=True).data.iloc[::20]
        assert cellpipe.predict(ready["url"], rows) == estimator.predict(rows).tolist()
        # and `cellpipe runs` and `status` know the service
        listed = json.loads(cellpipe_cli(env, "runs", "--format", "json").stdout)
        assert [(s["model"], s["status"]) for s in listed["services"]] == [("forest", "Ready")]
        status = cellpipe_cli(env, "status", wine_run)
        assert f"service {ready['service_id']}: Ready (local) model forest" in status.stdout
        # When Ctrl-C
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()
    # Then nothing is left listening, and the service is forgotten
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(ready["url"].rsplit(":", 1)[1])), 1)
    assert json.loads(cellpipe_cli(env, "runs", "--format", "json").stdout)["services"] == []


def test_an_unknown_model_is_one_line_and_status_2(env: dict[str, str], wine_run: str) -> None:
    done = cellpipe_cli(env, "serve", wine_run, "--model", "tree")
    assert done.returncode == 2
    assert done.stderr == (
        f"cellpipe: error: run {wine_run} has no model 'tree'; its models: forest\n"
    )


def test_the_magic_serves_in_the_background_and_delete_stops_it(
    env: dict[str, str], wine_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CELLPIPE_HOME", SERVE_PYTHON_ENV):
        monkeypatch.setenv(name, env[name])
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "cellpipe")
        with capture_output() as shown:
            shell.run_line_magic("cellpipe", f"serve {wine_run}")
        assert "serving model 'forest' (sklearn)" in shown.stdout
        (service,) = Services().all(wine_run)
        assert service.status == "Ready"  # the kernel went on; the model server runs
        assert cellpipe.predict(service.url, [[13.0] * 13]) in ([0], [1], [2])
        with capture_output() as shown:
            shell.run_line_magic("cellpipe", f"delete {service.service_id}")
        assert f"deleted service {service.service_id}" in shown.stdout
        assert Services().all(wine_run) == []
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", int(service.url.rsplit(":", 1)[1])), 1)
    finally:
        for leftover in Services().all():
            Services().stop(leftover.service_id)
        shell.run_line_magic("unload_ext", "cellpipe")
        InteractiveShell.clear_instance()
