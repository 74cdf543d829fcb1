"""Image builds through the API, with the real `append` builder against a real registry and
base image (tests/containers.py): POST answers at once, GET follows the build to its end."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.containers import BaseImage, Registry
from tests.notebooks import notebook, write

from .conftest import API, Api

# No imports: the image needs only the runtime's own requirements.
COUNTER = notebook(
    (["parameters"], "start = 1"),
    (["step:count"], "total = start + 41\nprint('counted', total)"),
    (["metrics"], "total"),
)
SECRET = "registry-pa55word-never-shown"


async def wait_for_build(api: Api, build_id: str, timeout: float = 500.0) -> dict[str, Any]:
    """Poll GET /builds/ID until it has ended."""
    deadline = time.monotonic() + timeout
    while True:
        code, build = await api("GET", "builds", build_id)
        assert code == 200, build
        if build["status"] in ("Succeeded", "Failed"):
            return dict(build)
        assert time.monotonic() < deadline, f"build {build_id} still {build['status']}: {build}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(600)
async def test_a_build_followed_to_success_then_found_built(
    api: Api,
    root: Any,
    jp_fetch: Any,
    registry: Registry,
    base_image: BaseImage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given credentials for registries in the environment (this registry does not ask)
    monkeypatch.setenv("CELLPIPE_REGISTRY_HOST", registry.host)
    monkeypatch.setenv("CELLPIPE_REGISTRY_USERNAME", "someone")
    monkeypatch.setenv("CELLPIPE_REGISTRY_PASSWORD", SECRET)
    write(root / "counter.ipynb", COUNTER)
    request = {
        "path": "counter.ipynb",
        "registry": f"{registry.host}/server-ext",
        "builder": "append",
        "base": base_image.ref,
    }

    # When the notebook's image is built through the API
    started = time.monotonic()
    code, build = await api("POST", "builds", body=request)

    # Then the answer comes at once, with the build's id
    assert code == 202, build
    assert time.monotonic() - started < 10
    assert build["status"] in ("Pending", "Running")
    assert (build["path"], build["builder"], build["base"]) == (
        "counter.ipynb",
        "append",
        base_image.ref,
    )
    # And GET follows it to success, with `cellpipe build --format json`'s shape
    done = await wait_for_build(api, build["build_id"])
    assert done["status"] == "Succeeded", done
    assert done["error"] is None and done["finished"] >= done["started"]
    result = done["result"]
    assert result["image"].startswith(f"{registry.host}/server-ext/counter:")
    assert (result["builder"], result["cached"], result["base"]) == (
        "append",
        False,
        base_image.ref,
    )
    assert result["pushed_bytes"] > 0 and result["steps"] == ["count"]
    assert [i["image"] for i in result["images"]] == [result["image"]]
    assert any("pushing the manifest" in message for message in done["progress"])
    tag = result["image"].rsplit(":", 1)[1]
    assert tag in registry.tags("server-ext/counter")

    # When it is built again, nothing changed: found built, nothing pushed
    code, again = await api("POST", "builds", body=request)
    assert code == 202, again
    chunks: list[bytes] = []
    await jp_fetch(API, "builds", again["build_id"], "events", streaming_callback=chunks.append)
    events = [
        (lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: ")))
        for block in b"".join(chunks).decode().split("\n\n")
        if (lines := block.splitlines()) and lines[0].startswith("event: ")
    ]
    assert events[-1] == ("end", {"build_id": again["build_id"], "status": "Succeeded"})
    cached = (await api("GET", "builds", again["build_id"]))[1]
    assert (cached["result"]["cached"], cached["result"]["pushed_bytes"]) == (True, 0)
    assert cached["result"]["image"] == result["image"]

    # Both are listed, newest first; the credentials were never answered nor logged
    _, listed = await api("GET", "builds")
    assert [b["build_id"] for b in listed["builds"]] == [again["build_id"], build["build_id"]]
    assert SECRET not in json.dumps([build, done, again, cached, listed])
    assert SECRET not in caplog.text


async def test_a_missing_base_image_fails_the_build_with_the_cli_words(
    api: Api, root: Any, registry: Registry
) -> None:
    write(root / "counter.ipynb", COUNTER)
    missing = f"{registry.host}/nothing/here:1"

    code, build = await api(
        "POST",
        "builds",
        body={"path": "counter.ipynb", "registry": registry.host, "base": missing},
    )

    assert code == 202, build
    done = await wait_for_build(api, build["build_id"], timeout=60)
    assert done["status"] == "Failed" and done["result"] is None
    assert done["error"] == (
        f"counter.ipynb: the base image {missing} does not exist; push it to the registry, or "
        "choose another with --base or metadata.cellpipe.base_image"
    )


async def test_bad_build_requests_are_refused_at_once(api: Api, root: Any) -> None:
    write(root / "counter.ipynb", COUNTER)
    no_steps = {"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}

    builder = await api("POST", "builds", body={"path": "counter.ipynb", "builder": "docker"})
    no_registry = await api("POST", "builds", body={"path": "counter.ipynb"})
    no_path = await api("POST", "builds", body={"registry": "r.example.com/x"})
    bad_notebook = await api(
        "POST",
        "builds",
        body={"path": "counter.ipynb", "content": no_steps, "registry": "r.example.com/x"},
    )
    outside = await api(
        "POST", "builds", body={"path": "../../etc/passwd", "registry": "r.example.com/x"}
    )
    unknown = await api("GET", "builds", "build-20260101-000000-deadbeef")

    assert builder == (
        400,
        {
            "message": "unknown builder 'docker': use one of append, engine, kaniko",
            "reason": "unknown_builder",
        },
    )
    assert no_registry[0] == 400 and no_registry[1]["reason"] == "no_registry"
    assert no_registry[1]["message"] == (
        "counter.ipynb: no registry to push to: give 'registry', metadata.cellpipe.registry "
        "or c.CellPipe.registry"
    )
    assert no_path[0] == 400 and no_path[1]["reason"] == "bad_path"
    assert bad_notebook[0] == 400 and bad_notebook[1]["reason"] == "notebook_errors"
    assert outside[0] == 403
    assert unknown[0] == 404
    assert (await api("GET", "builds"))[1] == {"builds": []}
