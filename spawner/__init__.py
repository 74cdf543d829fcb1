"""cellpipe.spawner: JupyterHub spawners with cellpipe's GPU form.

    c.JupyterHub.spawner_class = "cellpipe.spawner.KubeGPUSpawner"    # on Kubernetes
    c.JupyterHub.spawner_class = "cellpipe.spawner.DockerGPUSpawner"  # one GPU machine

Both offer the same server-rendered form (image, CPU, memory, GPU type and count, with what
is free right now), check every choice on the server, enforce per-user and per-group limits
across a user's running servers, and give each user their own volume. The spawner classes are
imported on first use (`pip install 'cellpipe[spawner]'`): importing this package needs
neither kubespawner nor dockerspawner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .choices import Choices, FormError, GpuOffer, Limits, Offer, check_choices
from .culler import idle_culler

if TYPE_CHECKING:
    from .docker import DockerGPUSpawner
    from .kube import KubeGPUSpawner

__all__ = [
    "Choices",
    "DockerGPUSpawner",
    "FormError",
    "GpuOffer",
    "KubeGPUSpawner",
    "Limits",
    "Offer",
    "check_choices",
    "idle_culler",
]


def __getattr__(name: str) -> Any:
    if name == "KubeGPUSpawner":
        from .kube import KubeGPUSpawner

        return KubeGPUSpawner
    if name == "DockerGPUSpawner":
        from .docker import DockerGPUSpawner

        return DockerGPUSpawner
    raise AttributeError(f"module 'cellpipe.spawner' has no attribute {name!r}")
