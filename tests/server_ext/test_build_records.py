"""Builds are kept across restarts of the server, like runs (issue 16): a JSON file per build
under CELLPIPE_HOME/builds; one that was running when its server stopped is Failed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cellpipe.launcher.builders import BuildRequest, BuiltImage, Progress
from cellpipe.launcher.images import ImagePlan
from cellpipe.server_ext.builds import STOPPED, BuildManager
from tests.notebooks import notebook, write

from .conftest import Api

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = notebook((["step:a"], "x = 1"))


class BlockingBuilder:
    """A builder that says it started, then waits for a file to appear (or forever)."""

    builds_here: ClassVar[bool] = False

    def __init__(self, plan: ImagePlan, cache: Path, say: Progress, request: BuildRequest) -> None:
        self.say, self.request = say, request

    def build(self) -> BuiltImage:
        self.say("building slowly")
        release = self.request.notebook_path.parent / "release"
        while not release.exists():
            time.sleep(0.05)
        return BuiltImage(None, 0, ["built"])


BUILDERS = {"blocking": f"{__name__}.BlockingBuilder"}

SERVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cellpipe.launcher.build import BuildRequest
    from cellpipe.launcher.config import CellPipe
    from cellpipe.launcher.notebooks import prepare_file
    from cellpipe.server_ext.builds import BuildManager

    folder, notebook, builders = Path(sys.argv[1]), Path(sys.argv[2]), {sys.argv[3]: sys.argv[4]}
    prepared = prepare_file(notebook, CellPipe(), local_only=True)
    request = BuildRequest(
        prepared.pipeline, notebook, prepared.notebook, "localhost:5999/x", builder="blocking"
    )
    build = BuildManager(builders, folder=folder).submit(request, "nb.ipynb", [])
    print(build.build_id, flush=True)
    time.sleep(600)
    """
)


def wait_for(what: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_build_running_when_its_server_is_killed_is_failed_by_the_next(tmp_path: Path) -> None:
    folder = tmp_path / "home" / "builds"
    write(tmp_path / "nb.ipynb", NOTEBOOK)
    # Given a server process building an image
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVER,
            str(folder),
            str(tmp_path / "nb.ipynb"),
            "blocking",
            BUILDERS["blocking"],
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        build_id = server.stdout.readline().strip()
        record = folder / f"{build_id}.json"
        wait_for(lambda: "building slowly" in record.read_text())
        assert json.loads(record.read_text())["status"] == "Running"
    finally:
        # When the server is killed mid-build
        server.send_signal(signal.SIGKILL)
        server.wait()
        if server.stdout is not None:
            server.stdout.close()

    # Then the next server shows the build, Failed with why, and its progress so far
    builds = BuildManager(folder=folder)
    [build] = builds.list()
    assert build["build_id"] == build_id
    assert build["status"] == "Failed"
    assert build["error"] == f"nb.ipynb: {STOPPED}"
    assert build["progress"][-1] == "building slowly"
    assert build["finished"] is not None
    # and says so in the file too
    assert json.loads((folder / f"{build_id}.json").read_text())["status"] == "Failed"


def test_a_finished_build_is_read_back_as_it_ended(tmp_path: Path) -> None:
    folder = tmp_path / "builds"
    write(tmp_path / "nb.ipynb", NOTEBOOK)
    from cellpipe.launcher.config import CellPipe
    from cellpipe.launcher.notebooks import prepare_file

    prepared = prepare_file(tmp_path / "nb.ipynb", CellPipe(), local_only=True)
    request = BuildRequest(
        prepared.pipeline,
        tmp_path / "nb.ipynb",
        prepared.notebook,
        "localhost:5999/x",
        builder="blocking",
    )
    first = BuildManager(BUILDERS, folder=folder)
    build = first.submit(request, "nb.ipynb", [{"message": "a warning"}])
    (tmp_path / "release").touch()
    wait_for(lambda: (first.get(build.build_id) or {})["status"] == "Succeeded")
    first.shutdown()
    ended = first.get(build.build_id)

    again = BuildManager(folder=folder)
    assert again.get(build.build_id) == ended
    assert again.list() == [ended]
    assert os.stat(folder).st_mode & 0o077 == 0  # private to the user


@pytest.fixture
def cellpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jp_root_dir: Path) -> Path:
    """Builds an earlier server left: one ended, one it was running (its process is gone),
    one of a notebook under another root, and a file that is not a build."""
    home = tmp_path / "cellpipe-home"
    folder = home / "builds"
    folder.mkdir(parents=True)
    base = {
        "path": "nb.ipynb",
        "builder": "append",
        "registry": "localhost:5999/x",
        "base": None,
        "created": 1.0,
        "started": 2.0,
        "finished": None,
        "progress": ["finding requirements"],
        "warnings": [],
        "result": None,
        "error": None,
        "owner": "no-such-host-really:999999:1",
        "notebook": str(Path(jp_root_dir).resolve() / "nb.ipynb"),
    }
    builds = {
        "build-20260101-000000-00000001": {**base, "status": "Succeeded", "finished": 3.0},
        "build-20260101-000000-00000002": {
            **base,
            "status": "Running",
            "created": 4.0,
            "owner": f"{os.uname().nodename}:999999999:1",
        },
        "build-20260101-000000-00000003": {
            **base,
            "status": "Succeeded",
            "notebook": str(tmp_path / "elsewhere" / "nb.ipynb"),
        },
    }
    for build_id, data in builds.items():
        (folder / f"{build_id}.json").write_text(json.dumps({"build_id": build_id, **data}))
    (folder / "build-20260101-000000-0000000f.json").write_text("{not json")
    monkeypatch.setenv("CELLPIPE_HOME", str(home))
    return home


async def test_the_server_shows_the_builds_an_earlier_server_kept(
    api: Api, cellpipe_home: Path
) -> None:
    code, listed = await api("GET", "builds")
    assert code == 200
    assert [(b["build_id"][-1], b["status"]) for b in listed["builds"]] == [
        ("2", "Failed"),
        ("1", "Succeeded"),
    ]
    code, stopped = await api("GET", "builds", "build-20260101-000000-00000002")
    assert code == 200 and stopped["error"] == f"nb.ipynb: {STOPPED}"
    assert (await api("GET", "builds", "build-20260101-000000-00000003"))[0] == 404
    assert "owner" not in stopped and "notebook" not in stopped
    garbage = cellpipe_home / "builds" / "build-20260101-000000-0000000f.json"
    assert garbage.read_text() == "{not json"


async def test_a_kaniko_build_through_the_server_never_writes_outside_its_root(
    api: Api, root: Path, tmp_path: Path
) -> None:
    # Given a notebook under the root whose cellpipe-build/build.yaml links out of the root
    outside = tmp_path / "outside.yaml"
    outside.write_text("precious\n")
    (root / "cloned" / "cellpipe-build").mkdir(parents=True)
    write(root / "cloned" / "nb.ipynb", NOTEBOOK)
    (root / "cloned" / "cellpipe-build" / "build.yaml").symlink_to(outside)

    # When it is built with kaniko through the API
    code, build = await api(
        "POST",
        "builds",
        body={"path": "cloned/nb.ipynb", "builder": "kaniko", "registry": "r.example.com/t"},
    )
    assert code == 202, build
    deadline = time.monotonic() + 120
    while build["status"] not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
        build = (await api("GET", "builds", build["build_id"]))[1]

    # Then it fails, naming the link, and the file outside is as it was
    assert build["status"] == "Failed"
    assert "cellpipe-build/build.yaml is a symbolic link" in build["error"]
    assert outside.read_text() == "precious\n"
