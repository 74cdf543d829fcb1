"""Which notebook this kernel runs: the saved file the magics act on.

A kernel does not know its notebook; the server that started it does. In this order:

1. `--notebook PATH`, when given;
2. `JPY_SESSION_NAME`, the path jupyter_server puts into the environment of the kernels it
   starts (and into their connection file, `jupyter_session`). It is the path when the kernel
   started, so it counts only while that file exists (a rename leaves it stale);
3. the running Jupyter servers' sessions (`GET /api/sessions` with the token from each
   server's runtime file), matched by this kernel's id, read from its connection file name:
   right after a rename too;
4. VS Code's `__vsc_ipynb_file__` in the kernel's namespace.

Imports nothing beyond the standard library and jupyter_core.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_KERNEL_FILE = re.compile(r"^kernel-(?P<id>[0-9a-fA-F-]{8,})\.json$")


class NotebookNotFound(Exception):
    """This kernel's notebook cannot be told; the message says how to name it."""


@dataclass(frozen=True)
class KernelNotebook:
    """A notebook file, how it was found, and when it was last saved."""

    path: Path  # absolute
    found_by: str
    saved: float  # the file's modification time

    def describe(self, now: float | None = None) -> str:
        """`/home/me/iris.ipynb, saved 14:03:12 (2 minutes ago)`, for the line the magics
        print before acting, so nobody runs stale content unknowingly."""
        now = time.time() if now is None else now
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.saved))
        return f"{self.path}, saved {stamp} ({ago(now - self.saved)})"


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "just now" if seconds < 2 else f"{int(seconds)} seconds ago"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"  # unreachable: minutes cover the rest


def _existing(path: Path, found_by: str) -> KernelNotebook | None:
    try:
        resolved = path.expanduser().resolve()
        stat = resolved.stat()
    except OSError:
        return None
    if not resolved.is_file():
        return None
    return KernelNotebook(resolved, found_by, stat.st_mtime)


def find_notebook(
    explicit: str | os.PathLike[str] | None = None,
    *,
    namespace: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    connection_file: str | None = None,
    runtime_dir: str | None = None,
    timeout: float = 2.0,
) -> KernelNotebook:
    """The notebook the magics act on (see the module's docstring for the order).

    Args:
        explicit: `--notebook PATH`, relative to the kernel's working directory.
        namespace: the kernel's user namespace (VS Code leaves the path there).
        environ: the environment (default: this process's).
        connection_file: this kernel's connection file (default: ipykernel's, if running).
        runtime_dir: where Jupyter servers leave their runtime files (default: Jupyter's).
        timeout: seconds to wait for each server's answer.
    """
    if explicit is not None:
        found = _existing(Path(explicit), "--notebook")
        if found is None:
            raise NotebookNotFound(f"--notebook {explicit}: no such file")
        return found
    environ = os.environ if environ is None else environ
    session = environ.get("JPY_SESSION_NAME")
    if session and (found := _existing(Path(session), "JPY_SESSION_NAME")):
        return found
    connection_file = connection_file or _kernel_connection_file()
    kernel_id = None
    if connection_file:
        match = _KERNEL_FILE.match(Path(connection_file).name)
        kernel_id = match.group("id") if match else None
        recorded = _read_json(Path(connection_file)).get("jupyter_session")
        if recorded and (found := _existing(Path(recorded), "the kernel's connection file")):
            return found
    if kernel_id:
        found = _from_servers(kernel_id, runtime_dir, timeout)
        if found is not None:
            return found
    vscode = (namespace or {}).get("__vsc_ipynb_file__")
    if isinstance(vscode, str) and (found := _existing(Path(vscode), "VS Code")):
        return found
    if session:
        raise NotebookNotFound(
            f"this kernel was started for {session}, which is no longer there (renamed?), and "
            "no running Jupyter server knows its notebook now; name it: --notebook PATH"
        )
    raise NotebookNotFound(
        "cannot tell which notebook this kernel runs (no Jupyter server session names it); "
        "name it: --notebook PATH"
    )


def _kernel_connection_file() -> str | None:
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None:
        return None
    app_class = kernelapp.IPKernelApp
    if not app_class.initialized():
        return None
    app = app_class.instance()
    path = getattr(app, "abs_connection_file", None) or getattr(app, "connection_file", None)
    return str(path) if path else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # cannot tell: ask it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _server_files(runtime_dir: str | None) -> list[Path]:
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = jupyter_runtime_dir()
    folder = Path(runtime_dir)
    if not folder.is_dir():
        return []
    files = [*folder.glob("jpserver-*.json"), *folder.glob("nbserver-*.json")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def _from_servers(kernel_id: str, runtime_dir: str | None, timeout: float) -> KernelNotebook | None:
    # Servers on this machine only; no proxy (a proxy setting must not send the token away).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for server_file in _server_files(runtime_dir):
        server = _read_json(server_file)
        url, root = server.get("url"), server.get("root_dir") or server.get("notebook_dir")
        if not url or not root or not _alive(server.get("pid")):
            continue
        request = urllib.request.Request(
            url.rstrip("/") + "/api/sessions",
            headers={"Authorization": f"token {server.get('token', '')}"},
        )
        try:
            with opener.open(request, timeout=timeout) as response:
                sessions = json.loads(response.read())
        except (OSError, ValueError):
            continue  # gone, refused (a password login), not JSON: try the next server
        for session in sessions if isinstance(sessions, list) else []:
            kernel = session.get("kernel") or {}
            if kernel.get("id") == kernel_id and session.get("path"):
                found = _existing(Path(root) / session["path"], f"the Jupyter server at {url}")
                if found is not None:
                    return found
    return None
