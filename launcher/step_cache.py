"""The step cache (`$CELLPIPE_HOME/cache/KEY/`) and the privacy of cellpipe's home.

A run never writes into the cache. Its steps write into the run's own folders
(`runs/RUN_ID/steps/TASK/`); a step that succeeded is then published: its folder is copied
(hard links, so no data is copied) to a fresh folder beside the entries and renamed to its key
in one step. An entry is therefore whole or absent, and two runs of one notebook at once never
see each other's partial outputs. The first run to publish a key keeps it (same key, same
outputs); an entry that turns out damaged (its result or a value cannot be read) is dropped,
so the next run makes it again.

What the cache and `%cellpipe load` read is unpickled, so cellpipe's home is private: its
folders are made 0700, and a folder (or file) that another user could write is refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from cellpipe.runtime.local import RESULT_FILE
from cellpipe.runtime.values import FORMAT_FILE

from .errors import UserError

_SCRATCH_PREFIX = "."  # entries being published or dropped: never looked up
_SCRATCH_MAX_AGE = 3600.0  # seconds; older ones were left by a process that died


class UnsafeFolder(UserError):
    """A folder cellpipe would read pickled values from can be written by another user."""

    reason = "unsafe_folder"


def make_private(path: Path) -> Path:
    """`path` and any missing parents made as folders only this user can use (0700)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(mode=0o700)
    return path


def unsafe_reason(path: Path, reachable: bool = True) -> str | None:
    """Why another user could change `path` (a folder or file), or None: it belongs to
    someone else, or (where others can reach it) its group or others may write it."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if info.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to another user (uid {info.st_uid})"
    if stat.S_ISLNK(info.st_mode):
        return None  # a link's own mode means nothing; where it leads is checked on its own
    if reachable and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} can be written by other users (mode {oct(stat.S_IMODE(info.st_mode))})"
    return None


def _closed(path: Path) -> bool:
    """Whether no other user can reach what is inside the folder (they cannot enter it)."""
    try:
        info = path.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IXGRP | stat.S_IXOTH)


def private_problem(path: Path, home: Path, *, contents: bool = True) -> str | None:
    """Why values under `path` must not be unpickled, or None. From cellpipe's `home` down
    to `path`, and inside it, nothing may be writable by another user; below a folder other
    users cannot enter (cellpipe makes its home 0700), nothing can be. `contents`: look
    inside `path` too."""
    resolved = path.resolve()
    home = home.resolve()
    if resolved.is_relative_to(home):
        parts = resolved.relative_to(home).parts
        chain = [home, *(home.joinpath(*parts[: i + 1]) for i in range(len(parts)))]
    else:
        chain = [resolved.parent, resolved]
    reachable = True
    for folder in chain:
        problem = unsafe_reason(folder, reachable)
        if problem:
            return _refusal(problem, folder)
        reachable = reachable and not _closed(folder)
    if contents and reachable and resolved.is_dir():
        for parent, folders, files in os.walk(resolved):
            for name in [*folders, *files]:
                problem = unsafe_reason(Path(parent) / name)
                if problem:
                    return _refusal(problem, Path(parent) / name)
    return None


def _refusal(problem: str, path: Path) -> str:
    return (
        f"cellpipe does not read values from {path}: {problem}, and values are unpickled "
        f"(they can run code). Make it private (chmod go-w {path}, or chmod 700 for a "
        "folder), or set CELLPIPE_HOME to a folder of your own"
    )


def private_home(home: Path) -> None:
    """Make cellpipe's home and its `runs/` and `cache/` folders (0700 where new) and
    refuse, as UnsafeFolder, one that another user could write."""
    for folder in (home, home / "runs", home / "cache"):
        make_private(folder)
    problem = private_problem(home / "cache", home, contents=False) or private_problem(
        home / "runs", home, contents=False
    )
    if problem:
        raise UnsafeFolder(problem)


class StepCache:
    """The entries of `home/cache`, by key: looked up, published whole, dropped."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "cache"

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str, hands_on: list[str]) -> dict[str, Any] | None:
        """The result of a usable entry (it succeeded; its result and the format of each
        value it hands on can be read), or None. A damaged entry is dropped; one that other
        users could have written is refused (UnsafeFolder)."""
        entry = self.entry(key)
        if not (entry / RESULT_FILE).exists():
            return None
        problem = private_problem(entry, self.home)
        if problem:
            raise UnsafeFolder(problem)
        result = _read_json(entry / RESULT_FILE)
        usable = (
            isinstance(result, dict)
            and result.get("status") == "Succeeded"
            and all(_readable_format(entry / name) for name in hands_on)
        )
        if not usable:
            self.drop(key)
            return None
        assert isinstance(result, dict)
        return result

    def publish(self, key: str, source: Path) -> bool:
        """Put a copy of `source` (a step's finished folder) in the cache under `key`, whole
        or not at all; False when an entry was already there (it is kept)."""
        final = self.entry(key)
        if final.exists():
            return False
        make_private(self.root)
        staging = self.root / f"{_SCRATCH_PREFIX}publishing-{key}-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(source, staging, symlinks=True, copy_function=_link_or_copy)
            os.chmod(staging, 0o700)
            os.rename(staging, final)  # refused when another run published `key` first
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) or final.exists():
                return False
            raise
        return True

    def drop(self, key: str) -> None:
        """Take the entry out of the cache (renamed aside first, so no run sees it half
        deleted)."""
        aside = self.root / f"{_SCRATCH_PREFIX}dropped-{key}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.entry(key), aside)
        except OSError:
            return  # gone already
        shutil.rmtree(aside, ignore_errors=True)

    def owning_key(self, path: Path) -> str | None:
        """The key of the entry `path` lies in, or None when it is not in the cache."""
        try:
            relative = Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return None
        key = relative.parts[0] if relative.parts else None
        return key if key and not key.startswith(_SCRATCH_PREFIX) else None

    def clear_leftovers(self) -> None:
        """Remove what a publisher or dropper that died long ago left half done."""
        try:
            children = list(os.scandir(self.root))
        except OSError:
            return
        now = time.time()
        for child in children:
            if child.name.startswith(_SCRATCH_PREFIX):
                with contextlib.suppress(OSError):
                    if now - child.stat(follow_symlinks=False).st_mtime > _SCRATCH_MAX_AGE:
                        shutil.rmtree(child.path, ignore_errors=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _readable_format(value_dir: Path) -> bool:
    recorded = _read_json(value_dir / FORMAT_FILE)
    return isinstance(recorded, dict) and isinstance(recorded.get("format"), str)


def _link_or_copy(source: str, target: str) -> str:
    """A hard link (the data is not copied; nobody writes a finished step's files), or a
    copy where links cannot be made."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target
