"""Running the pipeline here, once for every front door: the engine by name from the
registry (c.CellPipe.engines), optionally inside a built image (kfp.local's DockerRunner),
with a listener that hears each step start and end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .build import BuildRequest, describe_difference
from .config import CellPipe
from .errors import UserError
from .images import code_labels
from .local_engine import RunRequest
from .notebooks import Prepared
from .registry import checked_reference
from .store import RunRecord, RunStore, StepRecord, cellpipe_home, open_store
from .submitting import Say, build
from .vocabulary import KFP_LOCAL_ENGINE, LOCAL_ENGINE

StepListener = Callable[[str, StepRecord], None]


class EngineHere(Protocol):
    """An engine that runs the pipeline on this machine (LocalEngine is the model)."""

    name: str

    def run(self, request: RunRequest, listener: StepListener | None = None) -> RunRecord: ...


def engine_here(
    name: str | None,
    config: CellPipe,
    *,
    home: Path | None = None,
    store: RunStore | None = None,
    image: str | None = None,
) -> EngineHere:
    """The engine `name` (default c.CellPipe.default_engine) that runs here. With `image`,
    the steps run inside it: kfp.local's DockerRunner (kfp-local) is the engine that can."""
    home = home or cellpipe_home()
    store = store or open_store(home)
    if image is not None:
        checked_reference(image, "--image")
        if name == LOCAL_ENGINE:
            raise UserError(
                "a built image runs its steps through kfp.local's DockerRunner: choose the "
                f"{KFP_LOCAL_ENGINE} engine (or none), not {LOCAL_ENGINE}"
            )
        name = KFP_LOCAL_ENGINE
    name = name or config.default_engine
    offered = config.engines_here()
    if name not in offered:
        raise UserError(
            f"no engine {name!r} runs here; the engines here are {', '.join(offered)}",
            reason="unknown_engine",
        )
    engine_class: Any = config.engine_class(name)
    engine: EngineHere = (
        engine_class(store=store, home=home, image=image)
        if image is not None
        else engine_class(store=store, home=home)
    )
    return engine


def run_here(
    prepared: Prepared,
    parameters: dict[str, Any],
    config: CellPipe,
    *,
    engine: str | None = None,
    image: str | None = None,
    use_cache: bool = True,
    listener: StepListener | None = None,
    home: Path | None = None,
) -> tuple[RunRecord, list[str]]:
    """Run the prepared pipeline here, to its end: the run's record, and what the engine
    warned about on the way."""
    prepared.raise_for_errors()
    if prepared.path is None:
        raise UserError("a run needs the notebook's path", reason="bad_path")
    chosen = engine_here(engine, config, home=home, image=image)
    request = RunRequest(
        prepared.pipeline,
        prepared.path,
        parameters,
        use_cache=use_cache,
        source=prepared.notebook,
    )
    record = chosen.run(request, listener)
    return record, list(request.warnings)


def image_for_run(
    prepared: Prepared,
    config: CellPipe,
    say: Say,
    *,
    registry: str | None = None,
    builder: str | None = None,
) -> str:
    """Build the image the steps run in (or find it built); its reference."""
    assert prepared.path is not None
    results = build(
        BuildRequest(
            prepared.pipeline,
            prepared.path,
            prepared.notebook,
            registry=registry or prepared.pipeline.settings.registry,
            builder=config.builder_for(builder),
        ),
        config,
        say,
        name=prepared.name,
    )
    if len(results) > 1:
        raise UserError(
            f"{prepared.name}: steps use {len(results)} base images; a run here runs one image: "
            "build with `cellpipe build` and submit to a cluster instead"
        )
    return results[0].image


def check_image(prepared: Prepared, image: str, *, force: bool = False) -> str | None:
    """Whether `image` holds this notebook's code (its labels say): a UserError naming what
    differs, or with `force` a warning."""
    difference = describe_difference(image_labels(image), code_labels(prepared.pipeline))
    if not difference:
        return None
    if not force:
        raise UserError(
            f"{prepared.name}: the image {image} does not hold this notebook's code: "
            f"{difference}. Build it again (--build), or run it anyway (--force)"
        )
    return f"running {image} anyway: {difference}"


def image_labels(image: str) -> dict[str, str]:
    """The image's labels, through the Docker Engine API (pulled when it is not here)."""
    import docker
    from docker.errors import DockerException, ImageNotFound

    try:
        client = docker.from_env()
        try:
            found = client.images.get(image)
        except ImageNotFound:
            found = client.images.pull(image)
    except DockerException as exc:
        raise UserError(
            f"cannot read the image {image} through the Docker Engine API ({exc}); set "
            "DOCKER_HOST to a running Docker or podman service"
        ) from None
    labels: dict[str, str] = found.labels or {}
    return labels
