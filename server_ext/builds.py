"""Image builds through the API: POST /builds answers at once, the build goes on in a thread.

Builds are kept, like runs, across restarts of the server: each one is a small JSON file,
`CELLPIPE_HOME/builds/BUILD_ID.json`, written (atomically: a new file, then a rename) whenever
the build changes. A server that starts reads them back; a build that was running when its
server stopped is Failed, "the server stopped during the build" (unless the process that ran
it is still alive: another server's build is left to it). A file that cannot be read is left
as it is and skipped, with a warning in the log. The last KEEP builds are kept, the oldest
finished ones forgotten (their files removed). One build runs at a time (the launcher's
BUILD_LOCK, which cluster runs that build their image take too), so two builds never assemble
the same dependencies layer at once; the others wait, Pending.

A build's JSON: {"build_id", "path", "status" (Pending, Running, Succeeded, Failed),
"builder", "registry", "base", "created", "started", "finished", "progress" (the builder's
messages so far), "warnings" (the notebook's, as in the compile JSON), "result" (once
Succeeded: the `cellpipe build --format json` shape), "error" (once Failed: the message the CLI
prints)}. Registry credentials are read by the registry client where it needs them and never
reach a build's JSON or the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cellpipe.launcher.build import BuildError, BuildRequest, build_image
from cellpipe.launcher.errors import UserError
from cellpipe.launcher.registry import RegistryError
from cellpipe.launcher.store import owner_alive, process_owner
from cellpipe.launcher.submitting import BUILD_LOCK
from cellpipe.launcher.vocabulary import FINISHED, RunStatus

KEEP = 200  # builds remembered; the oldest finished ones are forgotten first
PROGRESS_LIMIT = 500  # messages kept per build (the last ones)
STOPPED = "the server stopped during the build"
_BUILD_ID = re.compile(r"build-\d{8}-\d{6}-[0-9a-f]{8}")


def new_build_id() -> str:
    return f"build-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def build_json(results: list[Any]) -> dict[str, Any]:
    """`cellpipe build --format json`: the first image, and every image under `images`."""
    main: dict[str, Any] = results[0].to_json()
    main["images"] = [r.to_json() for r in results]
    return main


@dataclass
class Build:
    build_id: str
    path: str  # the notebook's API path; messages name it so
    builder: str
    registry: str
    base: str | None
    warnings: list[dict[str, Any]]
    status: str = "Pending"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    owner: str | None = field(default_factory=process_owner)  # the server process building it
    notebook: str | None = None  # the notebook's file (a server sees the builds under its root)

    @classmethod
    def from_json(cls, data: Any) -> Build:
        """A build as its file holds it; ValueError when it is not one."""
        if not isinstance(data, dict) or not _BUILD_ID.fullmatch(str(data.get("build_id"))):
            raise ValueError("not a build record")
        known = {f.name for f in fields(cls)}
        build = cls(**{k: v for k, v in data.items() if k in known})
        if not isinstance(build.progress, list) or not isinstance(build.created, (int, float)):
            raise ValueError("not a build record")
        return build

    def to_json(self) -> dict[str, Any]:
        return {
            "build_id": self.build_id,
            "path": self.path,
            "status": self.status,
            "builder": self.builder,
            "registry": self.registry,
            "base": self.base,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "progress": list(self.progress),
            "warnings": self.warnings,
            "result": self.result,
            "error": self.error,
        }


class BuildManager:
    """Builds started through the API, run one at a time off the request thread."""

    def __init__(
        self,
        builders: Mapping[str, str] | None = None,
        log: logging.Logger | None = None,
        folder: Path | None = None,
        root: Path | None = None,
    ) -> None:
        self.builders = builders  # name -> builder class (c.CellPipe.builders)
        self.log = log or logging.getLogger(__name__)
        self.folder = folder  # where builds are kept (CELLPIPE_HOME/builds); None: memory only
        self.root = root.resolve() if root is not None else None  # whose builds it reads back
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cellpipe-build")
        self._lock = threading.Lock()
        self._builds: dict[str, Build] = {}
        self._watchers: dict[str, set[Callable[[], object]]] = {}
        if folder is not None:
            self._load(folder)

    # -- kept on disk -----------------------------------------------------------------------
    def _load(self, folder: Path) -> None:
        """The builds an earlier server kept; those it was running end Failed."""
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("build-*.json")):
            try:
                build = Build.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                self.log.warning(
                    "cellpipe: %s is not a build record (%s); left as it is", path, exc
                )
                continue
            if build.build_id != path.stem:
                self.log.warning("cellpipe: %s holds another build; left as it is", path)
                continue
            if self.root is not None and not (
                build.notebook and Path(os.path.normpath(build.notebook)).is_relative_to(self.root)
            ):
                continue  # a build of a notebook under another server's root: not this one's
            if build.status not in FINISHED:
                if owner_alive(build.owner):  # another server, still running, builds it
                    continue
                build.status, build.error = RunStatus.FAILED, f"{build.path}: {STOPPED}"
                build.finished = build.finished or time.time()
                self._save(build)
            self._builds[build.build_id] = build
        self._forget_old()

    def _save(self, build: Build) -> None:
        """Write the build's file (a new file renamed over the old: never half written). A
        disk that refuses is logged; the build goes on."""
        if self.folder is None:
            return
        data = {**build.to_json(), "owner": build.owner, "notebook": build.notebook}
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".build-", suffix=".tmp")
            try:
                with os.fdopen(handle, "w") as out:
                    json.dump(data, out)
                os.replace(temporary, self.folder / f"{build.build_id}.json")
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.log.warning("cellpipe: build %s could not be kept: %s", build.build_id, exc)

    def _unlink(self, build_id: str) -> None:
        if self.folder is not None:
            (self.folder / f"{build_id}.json").unlink(missing_ok=True)

    # -- builds -----------------------------------------------------------------------------

    def submit(self, request: BuildRequest, path: str, warnings: list[dict[str, Any]]) -> Build:
        """Start a build in the background; it comes back Pending at once."""
        build = Build(
            new_build_id(), path, request.builder, request.registry or "", request.base, warnings
        )
        build.notebook = str(request.notebook_path.resolve())
        with self._lock:
            self._builds[build.build_id] = build
            self._save(build)
            self._forget_old()
        self._pool.submit(self._work, build, request)
        return build

    def _forget_old(self) -> None:
        finished = sorted(
            (b for b in self._builds.values() if b.status in FINISHED), key=lambda b: b.created
        )
        for old in finished[: max(0, len(self._builds) - KEEP)]:
            self._builds.pop(old.build_id, None)
            self._unlink(old.build_id)

    def _say(self, build: Build, message: str) -> None:
        with self._lock:
            build.progress.append(message)
            del build.progress[:-PROGRESS_LIMIT]
            self._save(build)
        self._notify(build.build_id)

    def _work(self, build: Build, request: BuildRequest) -> None:
        with BUILD_LOCK:
            with self._lock:
                if build.status in FINISHED:  # the server stopped before it started
                    return
                build.status, build.started = RunStatus.RUNNING, time.time()
                self._save(build)
            self._notify(build.build_id)
            try:
                results = build_image(
                    request, lambda message: self._say(build, message), self.builders
                )
            except (BuildError, RegistryError, UserError) as exc:  # the user's: the CLI's words
                self._end(build, RunStatus.FAILED, error=f"{build.path}: {exc}")
            except BaseException as exc:  # a fault: kept with the build, traceback in the log
                self.log.exception("cellpipe: build %s failed", build.build_id)
                error = f"{build.path}: {type(exc).__name__}: {exc}"
                self._end(build, RunStatus.FAILED, error=error)
            else:
                self._end(build, RunStatus.SUCCEEDED, result=build_json(results))

    def _end(
        self,
        build: Build,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self._lock:
            build.status, build.result, build.error = status, result, error
            build.finished = time.time()
            self._save(build)
        self.log.info("cellpipe: build %s of %s: %s", build.build_id, build.path, status)
        self._notify(build.build_id)

    def get(self, build_id: str) -> dict[str, Any] | None:
        with self._lock:
            build = self._builds.get(build_id)
            return build.to_json() if build is not None else None

    def list(self) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            builds = sorted(self._builds.values(), key=lambda b: b.created, reverse=True)
            return [b.to_json() for b in builds]

    def busy(self) -> bool:
        """Whether a build is waiting or running."""
        with self._lock:
            return any(b.status not in FINISHED for b in self._builds.values())

    def watch(self, build_id: str, callback: Callable[[], object]) -> Callable[[], object]:
        """Call `callback` (from any thread) whenever the build changes; returns the unwatch."""
        with self._lock:
            self._watchers.setdefault(build_id, set()).add(callback)

        def unwatch() -> None:
            with self._lock:
                callbacks = self._watchers.get(build_id, set())
                callbacks.discard(callback)
                if not callbacks:
                    self._watchers.pop(build_id, None)

        return unwatch

    def _notify(self, build_id: str) -> None:
        with self._lock:
            callbacks = list(self._watchers.get(build_id, ()))
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a watcher gone wrong must not stop the build
                self.log.debug("cellpipe: build watcher failed", exc_info=True)

    def shutdown(self) -> None:
        """The server stops: builds not started never start (they are Failed, "the server
        stopped"); a running one is left to end, and one that does not end in time is Failed
        by the next server."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            waiting = [b for b in self._builds.values() if b.status == RunStatus.PENDING]
        for build in waiting:
            self._end(build, RunStatus.FAILED, error=f"{build.path}: {STOPPED}")
