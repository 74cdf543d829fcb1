"""Secure by default: every route authenticated and authorised, tokens and XSRF enforced."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tornado import web
from tornado.routing import Router

from cellpipe.server_ext.handlers import AUTH_RESOURCE, ROUTES, CellPipeHandler

from .conftest import API

SAMPLE_ID = "20260101-000000-deadbeef"  # stands for a run's or a build's id in a route


def _made_by(function: Any, module_path: str) -> bool:
    """Whether `function` is a wrapper defined in `module_path` (a decorator's inner function)."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_filename.replace("\\", "/").endswith(module_path)


def implemented_verbs(handler: type[web.RequestHandler]) -> list[str]:
    """The HTTP verbs a handler class answers itself (CORS preflight `options` is Jupyter's)."""
    verbs = []
    for verb in handler.SUPPORTED_METHODS:
        method = getattr(handler, verb.lower())
        if method is web.RequestHandler._unimplemented_method or verb == "OPTIONS":
            continue
        verbs.append(verb)
    return verbs


def missing_decorators(handler: type[web.RequestHandler]) -> list[str]:
    """`VERB of Handler: what is missing`, for each verb without both auth decorators.

    The decorators must be stacked `@web.authenticated` over `@authorized`, as in
    jupyter_server's own handlers: authentication first, then the permission check.
    """
    problems = []
    for verb in implemented_verbs(handler):
        outer = getattr(handler, verb.lower())
        inner = getattr(outer, "__wrapped__", None)
        if not _made_by(outer, "tornado/web.py"):
            problems.append(f"{verb} of {handler.__name__}: no @web.authenticated")
        elif inner is None or not _made_by(inner, "jupyter_server/auth/decorator.py"):
            problems.append(f"{verb} of {handler.__name__}: no @authorized under it")
    return problems


def registered_routes(router: Router) -> Iterator[tuple[str, Any]]:
    for rule in getattr(router, "rules", []):
        if isinstance(rule.target, Router):
            yield from registered_routes(rule.target)
        else:
            yield getattr(rule.matcher, "regex", re.compile("")).pattern, rule.target


def sample_url(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>[^)]*\)", SAMPLE_ID, pattern).lstrip("/")


def test_every_route_in_the_table_has_both_auth_decorators() -> None:
    problems = [p for _, handler in ROUTES for p in missing_decorators(handler)]
    assert problems == []
    assert all(h.auth_resource == AUTH_RESOURCE == "cellpipe" for _, h in ROUTES)
    # 6 tune routes, 6 serving routes
    assert sum(len(implemented_verbs(h)) for _, h in ROUTES) == 15 + 6 + 6


def test_the_check_catches_a_handler_without_decorators() -> None:
    class Careless(CellPipeHandler):
        async def get(self) -> None:
            self.finish("{}")

        @web.authenticated
        async def delete(self) -> None:
            self.finish()

    assert missing_decorators(Careless) == [
        "GET of Careless: no @web.authenticated",
        "DELETE of Careless: no @authorized under it",
    ]


async def test_every_route_the_server_serves_is_in_the_table_and_guarded(
    jp_serverapp: Any,
) -> None:
    # Given the running server's own routing table
    served = [
        (pattern, handler)
        for pattern, handler in registered_routes(jp_serverapp.web_app.default_router)
        if f"/{API}/" in pattern
    ]
    # Then it serves exactly the table's routes, each handler guarded
    assert len(served) == len(ROUTES)
    assert {h for _, h in served} == {h for _, h in ROUTES}
    assert [p for _, handler in served for p in missing_decorators(handler)] == []


def requests() -> list[tuple[str, str]]:
    """(verb, path under the API) for every verb of every route."""
    return [
        (verb, sample_url(pattern))
        for pattern, handler in ROUTES
        for verb in implemented_verbs(handler)
    ]


async def test_no_token_is_refused_on_every_route(
    http_server_client: Any, jp_base_url: str
) -> None:
    for verb, path in requests():
        response = await http_server_client.fetch(
            f"{jp_base_url}{API}/{path}",
            method=verb,
            body="{}" if verb == "POST" else None,
            raise_error=False,
            follow_redirects=False,
        )
        assert response.code == 403, (verb, path, response.code)
        assert "message" in json.loads(response.body)


async def test_a_cookie_session_needs_the_xsrf_token_to_post(
    jp_fetch: Any, http_server_client: Any, jp_base_url: str
) -> None:
    # Given a browser session: a token-authenticated request leaves the login cookie
    first = await jp_fetch(API, "config")
    cookies = [c.split(";")[0] for c in first.headers.get_list("Set-Cookie")]
    login = next(c for c in cookies if c.startswith("username-"))
    url = f"{jp_base_url}{API}/compile"
    body = json.dumps({"content": {"cells": [], "nbformat": 4, "metadata": {}}})

    # When it posts with the cookie alone (what a forged cross-site form would send)
    forged = await http_server_client.fetch(
        url, method="POST", body=body, headers={"Cookie": login}, raise_error=False
    )
    # Then it is refused
    assert forged.code == 403
    assert "_xsrf" in json.loads(forged.body)["message"]

    # And with the XSRF cookie echoed in the header, as JupyterLab sends it, it is let in
    xsrf = "0123456789abcdef"
    allowed = await http_server_client.fetch(
        url,
        method="POST",
        body=body,
        headers={"Cookie": f"{login}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
        raise_error=False,
    )
    assert allowed.code == 400  # past the guards: an empty notebook has no steps
    assert json.loads(allowed.body)["reason"] == "notebook_errors"
