"""Fixtures for the cluster tests: the fakes, or a real cluster when asked.

    CELLPIPE_TEST_KUBECONFIG=~/.kube/config [CELLPIPE_TEST_NAMESPACE=me]
    CELLPIPE_TEST_KFP_HOST=https://kubeflow.example.com/pipeline [CELLPIPE_TEST_KFP_TOKEN=...]
    [CELLPIPE_TEST_IMAGE=registry.example.com/team/img:tag]

run the same tests against that cluster. Tests that drive what a fake reports (a job's
status, an injected 401) cannot run there: they are deselected at collection (pytest's summary
counts them), never silently passed.
"""

from __future__ import annotations

import inspect
import io
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.kfp import FakeKfp
from tests.fakes.kube import FakeKubernetes

IMAGE = os.environ.get(
    "CELLPIPE_TEST_IMAGE", "registry.example.com/team/cellpipe-test:0123456789abcdef"
)


@dataclass
class Kube:
    kubeconfig: Path
    namespace: str
    fake: FakeKubernetes | None

    def fake_only(self) -> FakeKubernetes:
        # Tests that call this are deselected against a real cluster (pytest_collection_modifyitems)
        assert self.fake is not None, "drives what the fake cluster reports"
        return self.fake


@dataclass
class Kfp:
    host: str
    fake: FakeKfp | None

    def fake_only(self) -> FakeKfp:
        assert self.fake is not None, "drives what the fake KFP reports"
        return self.fake


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a real cluster, leave out the tests that drive a fake's state (`.fake_only()`)."""
    real = {
        "kube": bool(os.environ.get("CELLPIPE_TEST_KUBECONFIG")),
        "kfp": bool(os.environ.get("CELLPIPE_TEST_KFP_HOST")),
    }
    if not any(real.values()):
        return
    kept, left_out = [], []
    for item in items:
        source = inspect.getsource(item.function) if isinstance(item, pytest.Function) else ""
        drives_fake = any(f"{name}.fake_only()" in source for name, on in real.items() if on)
        (left_out if drives_fake else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean user: own CELLPIPE_HOME, HOME, Jupyter config folder; no cluster settings."""
    monkeypatch.setenv("CELLPIPE_HOME", str(tmp_path / "cellpipe-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "")
    (tmp_path / "user").mkdir()
    (tmp_path / "jupyter").mkdir()
    for name in (
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KF_PIPELINES_ENDPOINT",
        "CELLPIPE_KFP_COOKIE",
        "CELLPIPE_KFP_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    if os.environ.get("CELLPIPE_TEST_KFP_TOKEN"):
        monkeypatch.setenv("CELLPIPE_KFP_TOKEN", os.environ["CELLPIPE_TEST_KFP_TOKEN"])
    return tmp_path / "cellpipe-home"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    real = os.environ.get("CELLPIPE_TEST_KUBECONFIG")
    if real:
        yield Kube(Path(real), os.environ.get("CELLPIPE_TEST_NAMESPACE", "default"), None)
        return
    fake = FakeKubernetes()
    fake.start()
    try:
        yield Kube(fake.write_kubeconfig(tmp_path / "kubeconfig"), "team-a", fake)
    finally:
        fake.stop()


@pytest.fixture
def kfp(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kfp]:
    real = os.environ.get("CELLPIPE_TEST_KFP_HOST")
    if real:
        yield Kfp(real, None)
        return
    fake = FakeKfp(token="kfp-token")
    monkeypatch.setenv("CELLPIPE_KFP_TOKEN", "kfp-token")
    fake.start()
    try:
        yield Kfp(fake.url, fake)
    finally:
        fake.stop()


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cellpipe(home: Path) -> Cli:
    """`cellpipe ARGS` in this process: (exit status, stdout, stderr)."""
    from cellpipe.cli import main

    def run(*args: str | Path) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = [str(a) for a in args]
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own errors
                code = int(exc.code or 0)
        print(f"$ cellpipe {shlex.join(argv)}\n{out.getvalue()}{err.getvalue()}")
        return code, out.getvalue(), err.getvalue()

    return run
