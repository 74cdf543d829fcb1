"""Registry credentials go to the registry they belong to and nowhere else (issue 16): not to
another host an upload's Location or a redirect names, nor to a token realm over plain HTTP.
Two small HTTP servers on loopback addresses stand for the registry and another host."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cellpipe.launcher.registry import ImageRef, RegistryClient, RegistryError

USER, PASSWORD = "alice", "pa55word"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
DIGEST = "sha256:" + "0" * 64

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Host:
    """A loopback HTTP server: `answer(method, path, authorization)` says what it answers;
    every request's (method, path, Authorization header) is kept in `seen`."""

    address: str
    answer: Callable[[str, str, str | None], Answer] = lambda m, p, a: (200, {}, b"")
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def authorizations(self) -> list[str]:
        return [a for _, _, a in self.seen if a]


def _serve(host: Host) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            authorization = self.headers.get("Authorization")
            host.seen.append((self.command, self.path, authorization))
            status, headers, body = host.answer(self.command, self.path, authorization)
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host.address, 0), Handler)
    host.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    """The registry on 127.0.0.1 (with credentials for it) and another host on 127.0.0.2."""
    registry, other = Host("127.0.0.1"), Host("127.0.0.2")
    servers = [_serve(registry), _serve(other)]
    monkeypatch.setenv("CELLPIPE_REGISTRY_HOST", f"127.0.0.1:{registry.port}")
    monkeypatch.setenv("CELLPIPE_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("CELLPIPE_REGISTRY_PASSWORD", PASSWORD)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield registry, other
    for server in servers:
        server.shutdown()
        server.server_close()


def basic_login(then: Callable[[str, str], Answer]) -> Callable[[str, str, str | None], Answer]:
    """A registry that asks for Basic credentials, then answers `then(method, path)`."""

    def answer(method: str, path: str, authorization: str | None) -> Answer:
        if authorization != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        return then(method, path)

    return answer


def test_an_upload_location_on_another_host_gets_no_credentials(
    hosts: tuple[Host, Host],
) -> None:
    registry, other = hosts
    registry.answer = basic_login(
        lambda method, path: (202, {"Location": f"{other.url}/upload?session=1"}, b"")
    )
    # the other host asks for a login too, as if to tempt the client into sending them again
    other.answer = lambda m, p, a: (401, {"WWW-Authenticate": 'Basic realm="other"'}, b"")
    client = RegistryClient(f"127.0.0.1:{registry.port}")

    with pytest.raises(RegistryError):
        client.upload_blob("team/app", DIGEST, b"layer")

    assert BASIC in registry.authorizations  # the registry had them
    assert other.seen and other.authorizations == []  # the other host never did


def test_an_upload_location_on_another_host_works_without_them(
    hosts: tuple[Host, Host],
) -> None:
    registry, other = hosts
    registry.answer = basic_login(
        lambda method, path: (202, {"Location": f"{other.url}/upload?session=1"}, b"")
    )
    other.answer = lambda m, p, a: (201, {}, b"")  # storage with a signed URL: no login
    RegistryClient(f"127.0.0.1:{registry.port}").upload_blob("team/app", DIGEST, b"layer")
    assert [(m, a) for m, _, a in other.seen] == [("PUT", None)]


def test_a_redirect_to_another_host_gets_no_credentials(hosts: tuple[Host, Host]) -> None:
    registry, other = hosts
    registry.answer = basic_login(
        lambda method, path: (307, {"Location": f"{other.url}/blob"}, b"")
    )
    other.answer = lambda m, p, a: (404, {}, b"")
    client = RegistryClient(f"127.0.0.1:{registry.port}")
    with pytest.raises(RegistryError):
        client.blob("team/app", DIGEST)
    assert other.seen and other.authorizations == []


def test_a_token_realm_over_plain_http_on_another_host_gets_no_credentials(
    hosts: tuple[Host, Host],
) -> None:
    registry, other = hosts
    registry.answer = lambda m, p, a: (
        401,
        {"WWW-Authenticate": f'Bearer realm="{other.url}/token",service="registry"'},
        b"",
    )
    other.answer = lambda m, p, a: (200, {"Content-Type": "application/json"}, b'{"token":"t"}')
    client = RegistryClient(f"127.0.0.1:{registry.port}")

    with pytest.raises(RegistryError, match="does not send its credentials"):
        client.manifest_exists(ImageRef.parse(f"127.0.0.1:{registry.port}/team/app:1"))
    assert other.seen == []


def test_the_registrys_own_token_realm_gets_them_and_the_token_goes_to_the_registry(
    hosts: tuple[Host, Host],
) -> None:
    registry, _ = hosts
    realm = f"{registry.url}/token"

    def answer(method: str, path: str, authorization: str | None) -> Answer:
        if path.startswith("/token"):
            if authorization != BASIC:
                return 401, {}, b""
            return 200, {"Content-Type": "application/json"}, b'{"token":"tok"}'
        if authorization != "Bearer tok":
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="r"'}, b""
        return 200, {"Docker-Content-Digest": DIGEST}, b""

    registry.answer = answer
    client = RegistryClient(f"127.0.0.1:{registry.port}")
    found = client.manifest_exists(ImageRef.parse(f"127.0.0.1:{registry.port}/team/app:1"))
    assert found == DIGEST
    assert [a for m, p, a in registry.seen if p.startswith("/token")] == [BASIC]
