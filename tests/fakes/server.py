"""A tiny real HTTP server on 127.0.0.1 for the fakes: routes, auth, injected faults, a log.

Not a framework: just enough that the official clients (kubernetes, kfp_server_api) speak to
the fakes over real sockets, exactly as they would to a real server.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: Any  # dict/list (sent as JSON), str or bytes
    content_type: str = "application/json"


class HttpError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    response: Response
    times: int


Handler = Callable[[Request, re.Match[str]], Response]


class FakeHttpServer:
    """Routes requests to handlers; every request is kept in `requests`."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def fail(self, method: str, pattern: str, status: int, body: Any, times: int = 1) -> None:
        """The next `times` requests matching answer `status` with `body` (a fault)."""
        with self.lock:
            self.faults.append(Fault(method, re.compile(pattern), Response(status, body), times))

    def authorize(self, request: Request) -> Response | None:
        """None when the request may go on; else the refusal. Subclasses decide."""
        return None

    # -- lifetime -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "the fake server is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHttpServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                request = Request(
                    self.command,
                    parts.path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                response = fake.dispatch(request)
                data = response.body
                if isinstance(data, (dict, list)):
                    data = json.dumps(data).encode()
                elif isinstance(data, str):
                    data = data.encode()
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
            for fault in self.faults:
                if fault.method == request.method and fault.pattern.search(request.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault.response
            refused = self.authorize(request)
            if refused is not None:
                return refused
            for method, pattern, handler in self.routes:
                match = pattern.fullmatch(request.path)
                if match and method == request.method:
                    try:
                        return handler(request, match)
                    except HttpError as exc:
                        return Response(exc.status, exc.body)
            return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": f"the fake has no {request.method} {request.path}"})

    def sent(self, method: str | None = None) -> list[Request]:
        """The requests received (of one method), in order."""
        with self.lock:
            return [r for r in self.requests if method is None or r.method == method]
