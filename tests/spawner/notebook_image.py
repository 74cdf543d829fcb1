"""The users' notebook image for the hub tests, made by cellpipe's own image tooling.

The `append` builder (cellpipe.launcher.build_append) adds to the mmdebstrap Python base image
(tests/containers.py) a dependencies layer, a virtual environment at /cellpipe/venv with what
`jupyterhub-singleuser` needs (jupyterhub 6.1.1 as the hub, and jupyter_server as here), and a
code layer with the cellpipe runtime (/cellpipe/lib, on PYTHONPATH). The server starts with
`python -m jupyterhub.singleuser` (the builder leaves the venv's entry scripts out).

The dependencies layer is cached under the tests' cache folder, keyed by the base's recipe and
the requirement set, so only the first session pays for the pip install.
"""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import dataclass

from cellpipe.launcher.build_append import AppendBuilder
from cellpipe.launcher.images import LIB, VENV, ImagePlan, runtime_files
from cellpipe.launcher.requirements import Requirement, Requirements
from tests.containers import BASE_RECIPE, BaseImage, Registry, cache_dir

COMMAND = ["python", "-m", "jupyterhub.singleuser"]


@dataclass(frozen=True)
class NotebookImage:
    ref: str  # in the test registry: what the spawner pulls
    digest: str
    seconds: float


def notebook_plan(base: BaseImage, registry: Registry) -> ImagePlan:
    jupyter_server = importlib.metadata.version("jupyter_server")
    requirements = Requirements(
        python="python3",
        python_version=base.python_version,
        requirements=[
            Requirement("jupyterhub", "jupyterhub==6.1.1", "the hub's version (singleuser)"),
            Requirement(
                "jupyter-server", f"jupyter_server=={jupyter_server}", "the notebook server"
            ),
        ],
    )
    plan = ImagePlan(
        pipeline_name="spawner-notebook",
        base=base.ref,
        requirements=requirements,
        code_files=runtime_files(),
        labels={"org.cellpipe.test": "spawner-notebook"},
        env={"PYTHONPATH": LIB, "VIRTUAL_ENV": VENV},
        registry=f"{registry.host}/cellpipe-test",
    )
    # the base is rebuilt (and re-digested) every session from the same recipe: key the
    # dependencies layer by the recipe, so the pip install is done once
    plan.base_digest = f"mmdebstrap:{BASE_RECIPE.key}"
    return plan


def build_notebook_image(base: BaseImage, registry: Registry) -> NotebookImage:
    started = time.monotonic()
    plan = notebook_plan(base, registry)
    digest = AppendBuilder(plan, cache_dir() / "spawner-build", lambda message: None).build().digest
    assert digest is not None
    return NotebookImage(plan.reference, digest, time.monotonic() - started)


def deps_cached(base: BaseImage | None = None) -> bool:
    """Whether the dependencies layer is already in the cache (no pip install needed)."""
    folder = cache_dir() / "spawner-build" / "deps"
    return folder.exists() and any(folder.glob("*/layer.json"))
