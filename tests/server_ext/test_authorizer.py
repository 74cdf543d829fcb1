"""Every route asks the server's authorizer about the `cellpipe` resource, and obeys it."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth import Authorizer

from cellpipe.server_ext.handlers import AUTH_RESOURCE

from .conftest import Api
from .test_security import requests


class DenyCellPipe(Authorizer):
    """Lets everything through except the `cellpipe` resource, and notes what was asked."""

    asked: list[tuple[str, str]] = []  # noqa: RUF012

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == AUTH_RESOURCE:
            self.asked.append((handler.request.method, action))
            return False
        return True


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["ServerApp"]["authorizer_class"] = DenyCellPipe
    return jp_server_config


async def test_every_route_asks_the_authorizer_and_a_refusal_is_403(api: Api) -> None:
    DenyCellPipe.asked = []
    for verb, path in requests():
        code, body = await api(verb, *path.split("/"))
        assert code == 403, (verb, path)
        assert f"not authorized to {'read' if verb == 'GET' else 'write'}" in body["message"]
    assert DenyCellPipe.asked == [
        (verb, "read" if verb == "GET" else "write") for verb, _ in requests()
    ]
