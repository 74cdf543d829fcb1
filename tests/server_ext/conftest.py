"""A real Jupyter server with cellpipe enabled, tokens required, runs under tmp_path."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures and hooks (jp_fetch, jp_serverapp, async tests), for this folder
# only: a non-root conftest may not name pytest_plugins.
from pytest_jupyter.jupyter_server import *  # noqa: F403

API = "cellpipe/api"
Api = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
def cellpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cellpipe-home"
    monkeypatch.setenv("CELLPIPE_HOME", str(home))
    return home


@pytest.fixture
def cellpipe_config() -> dict[str, Any]:
    """c.CellPipe.* for the server under test; a test module overrides this fixture."""
    return {}


@pytest.fixture
def jp_server_config(cellpipe_home: Path, cellpipe_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {
            # terminals (which pytest-jupyter adds unless told) would trip the server's own
            # check for unauthenticated endpoints, which these tests keep as an error
            "jpserver_extensions": {"cellpipe": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
            "reraise_server_extension_failures": True,
        },
        "CellPipe": cellpipe_config,
    }


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    """The server's root folder (where notebooks are named from)."""
    return Path(jp_root_dir)


@pytest.fixture
def api(jp_fetch: Any) -> Api:
    """`await api("POST", "runs", body={...})` -> (status, JSON body or None); never raises."""

    async def call(
        method: str,
        *path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = {}
        response = await jp_fetch(
            API,
            *path,
            method=method,
            body=None if body is None else json.dumps(body),
            params=params,
            headers=headers,
            raise_error=False,
        )
        text = response.body.decode() if response.body else ""
        return response.code, (json.loads(text) if text else None)

    return call


async def wait_for_run(
    api: Api, run_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """Poll GET /runs/ID (the fallback to the event stream) until `done(run)`."""
    deadline = time.monotonic() + timeout
    while True:
        code, run = await api("GET", "runs", run_id)
        assert code == 200, run
        if done(run):
            return dict(run)
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}: {run}"
        await asyncio.sleep(0.05)


def finished(run: dict[str, Any]) -> bool:
    return run["status"] in ("Succeeded", "Failed", "Cancelled")
