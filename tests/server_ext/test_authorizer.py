"""Every route asks the server's authorizer about the `cellpipe` resource, and obeys it."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth import Authorizer

from cellpipe.server_ext.handlers import AUTH_RESOURCE

from .conftest import Api
from .test_security import requests

# The routes that run notebook code (a run) or build an image (pip, the kernel's Python)
# ask for `execute`, as the kernel routes do; the others ask for read (GET) or write.
EXECUTE = {("POST", "runs"), ("POST", "builds"), ("POST", "tunes"), ("POST", "services")}


def action_of(verb: str, path: str) -> str:
    if (verb, path) in EXECUTE:
        return "execute"
    return "read" if verb == "GET" else "write"


class DenyCellPipe(Authorizer):
    """Lets everything through except the `cellpipe` resource, and notes what was asked."""

    asked: list[tuple[str, str]] = []  # noqa: RUF012

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == AUTH_RESOURCE:
            self.asked.append((handler.request.method, action))
            return False
        return True


class NoExecute(Authorizer):
    """A JupyterHub-like grant: read and write, but not execute (no running code)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action != "execute"


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], request: pytest.FixtureRequest
) -> dict[str, Any]:
    authorizer = getattr(request, "param", DenyCellPipe)
    jp_server_config["ServerApp"]["authorizer_class"] = authorizer
    return jp_server_config


async def test_every_route_asks_the_authorizer_and_a_refusal_is_403(api: Api) -> None:
    DenyCellPipe.asked = []
    for verb, path in requests():
        code, body = await api(verb, *path.split("/"))
        assert code == 403, (verb, path)
        assert f"not authorized to {action_of(verb, path)}" in body["message"]
    assert DenyCellPipe.asked == [(verb, action_of(verb, path)) for verb, path in requests()]


@pytest.mark.parametrize("jp_server_config", [NoExecute], indirect=True)
async def test_running_code_or_building_needs_execute(api: Api) -> None:
    # Given a user allowed to read and write, but not to execute
    # When they start a run or a build
    for path in ("runs", "builds", "tunes", "services"):
        code, body = await api("POST", path, body={"path": "any.ipynb"})
        # Then it is refused before anything is read
        assert code == 403, (path, body)
        assert "not authorized to execute" in body["message"]
    # And what only reads or writes records is theirs
    assert (await api("GET", "runs"))[0] == 200
    assert (await api("POST", "compile", body={"path": "missing.ipynb"}))[0] == 404
