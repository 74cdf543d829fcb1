"""Which notebook a kernel runs: --notebook, JPY_SESSION_NAME, the servers' sessions, VS Code."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cellpipe.notebook_finder import KernelNotebook, NotebookNotFound, ago, find_notebook

KERNEL_ID = "5f0c2a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"
TOKEN = "secret-token"


class FakeJupyterServer(BaseHTTPRequestHandler):
    """Just `GET /api/sessions` of a Jupyter server, with its token check."""

    sessions: ClassVar[list[dict[str, object]]] = []

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"token {TOKEN}":
            self.send_response(403)
            self.end_headers()
            return
        body = json.dumps(self.sessions if self.path == "/api/sessions" else {}).encode()
        self.send_response(200 if self.path == "/api/sessions" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A running fake server whose root holds work/renamed.ipynb; (runtime dir, root)."""
    root = tmp_path / "root"
    (root / "work").mkdir(parents=True)
    (root / "work" / "renamed.ipynb").write_text("{}")
    FakeJupyterServer.sessions = [
        {"path": "work/other.ipynb", "kernel": {"id": "another-kernel"}},
        {"path": "work/renamed.ipynb", "kernel": {"id": KERNEL_ID}},
    ]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeJupyterServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "jpserver-1.json").write_text(
        json.dumps(
            {
                "url": f"http://127.0.0.1:{httpd.server_address[1]}/",
                "token": TOKEN,
                "root_dir": str(root),
            }
        )
    )
    yield runtime, root
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_jpy_session_name_names_the_notebook(tmp_path: Path) -> None:
    path = tmp_path / "iris.ipynb"
    path.write_text("{}")
    found = find_notebook(environ={"JPY_SESSION_NAME": str(path)}, runtime_dir=str(tmp_path))
    assert (found.path, found.found_by) == (path, "JPY_SESSION_NAME")


def test_after_a_rename_the_server_session_of_this_kernel_names_it(
    server: tuple[Path, Path], tmp_path: Path
) -> None:
    # Given: the kernel was started for a notebook since renamed
    runtime, root = server
    connection = tmp_path / f"kernel-{KERNEL_ID}.json"
    connection.write_text(json.dumps({"jupyter_session": str(root / "work" / "old.ipynb")}))
    # When
    found = find_notebook(
        environ={"JPY_SESSION_NAME": str(root / "work" / "old.ipynb")},
        connection_file=str(connection),
        runtime_dir=str(runtime),
    )
    # Then
    assert found.path == root / "work" / "renamed.ipynb"
    assert found.found_by.startswith("the Jupyter server at http://127.0.0.1:")


def test_a_server_that_refuses_the_token_is_passed_over(
    server: tuple[Path, Path], tmp_path: Path
) -> None:
    runtime, _root = server
    server_file = runtime / "jpserver-1.json"
    server_file.write_text(json.dumps({**json.loads(server_file.read_text()), "token": "wrong"}))
    with pytest.raises(NotebookNotFound, match="name it: --notebook PATH"):
        find_notebook(
            environ={},
            connection_file=str(tmp_path / f"kernel-{KERNEL_ID}.json"),
            runtime_dir=str(runtime),
        )


def test_vscode_and_explicit_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vs.ipynb"
    path.write_text("{}")
    found = find_notebook(
        namespace={"__vsc_ipynb_file__": str(path)}, environ={}, runtime_dir=str(tmp_path)
    )
    assert found.found_by == "VS Code"
    monkeypatch.chdir(tmp_path)
    assert find_notebook("vs.ipynb").path == path
    with pytest.raises(NotebookNotFound, match=r"--notebook gone\.ipynb: no such file"):
        find_notebook("gone.ipynb")


def test_a_stale_session_name_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotebookNotFound, match="no longer there"):
        find_notebook(
            environ={"JPY_SESSION_NAME": str(tmp_path / "gone.ipynb")}, runtime_dir=str(tmp_path)
        )


def test_it_says_when_the_notebook_was_saved() -> None:
    notebook = KernelNotebook(Path("/work/iris.ipynb"), "JPY_SESSION_NAME", 1_700_000_000.0)
    assert notebook.describe(now=1_700_000_000.0 + 150).endswith("(2 minutes ago)")
    assert notebook.describe().startswith("/work/iris.ipynb, saved 2023-11-")
    assert [ago(s) for s in (0, 30, 60, 7200, 90000)] == [
        "just now",
        "30 seconds ago",
        "1 minute ago",
        "2 hours ago",
        "1 day ago",
    ]
