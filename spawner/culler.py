"""Stopping idle servers: jupyterhub-idle-culler as a hub-managed service.

    from cellpipe.spawner import idle_culler
    service, role = idle_culler(timeout=3600)
    c.JupyterHub.services = [service]
    c.JupyterHub.load_roles = [role]

needs `pip install jupyterhub-idle-culler` where the hub runs. A server is idle when nothing
went through the proxy to it and it reported no activity (kernels, terminals) for `timeout`
seconds; the culler stops it, which releases its GPUs (the pod or the container goes; the
user's volume stays).
"""

from __future__ import annotations

import sys
from typing import Any

SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def idle_culler(
    timeout: int = 3600,
    *,
    cull_every: int | None = None,
    max_age: int = 0,
    cull_users: bool = False,
    python: str = sys.executable,
    name: str = "idle-culler",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(service, role) for c.JupyterHub.services and c.JupyterHub.load_roles.

    timeout: seconds of inactivity before a server is stopped; cull_every: how often to look
    (default: half the timeout, at least 10 s, at most 300 s); max_age: stop servers older
    than this even when busy (0: never); cull_users: also delete idle users (never for
    users of a real authenticator you want to keep)."""
    if timeout < 1:
        raise ValueError("timeout must be at least 1 second")
    every = cull_every if cull_every is not None else max(10, min(300, timeout // 2))
    command = [
        python,
        "-m",
        "jupyterhub_idle_culler",
        f"--timeout={timeout}",
        f"--cull-every={every}",
    ]
    if max_age:
        command.append(f"--max-age={max_age}")
    scopes = list(SCOPES)
    if cull_users:
        command.append("--cull-users")
        scopes.append("admin:users")
    service = {"name": name, "command": command}
    role = {"name": name, "scopes": scopes, "services": [name]}
    return service, role
