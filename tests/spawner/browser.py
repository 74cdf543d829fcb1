"""Chromium for the hub tests, driven step by step from Python.

Runs browser_driver.cjs under node with the repository's `playwright-core` (node_modules, from
package-lock.json: `make install`) and Debian's /usr/bin/chromium (Playwright cannot download
a browser here). Each call sends one command and waits for its answer; a page name is a browser
context of its own, so two users never share cookies. Screenshots are kept as test artifacts
under test-artifacts/hub/ (as the JupyterLab browser tests keep theirs under test-artifacts/ui/).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("browser_driver.cjs")
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "hub"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fresh_artifacts(folder: Path = ARTIFACTS) -> Path:
    """An artifacts folder (test-artifacts/hub/ or one below it) without its files from
    before, so that what a run leaves there is that run's alone; the folders below it are
    other modules' and stay."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    return folder


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, read from its header (IHDR, the first chunk)."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def playwright_core() -> Path:
    found = REPO / "node_modules" / "playwright-core"
    if not (found / "package.json").exists():
        pytest.fail(
            "the hub tests need playwright-core in node_modules: run `make install` "
            "(npm ci from package-lock.json)",
            pytrace=False,
        )
    return found


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, log: Path, artifacts: Path = ARTIFACTS) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail("the hub tests need node (Debian package nodejs)", pytrace=False)
        if not Path(CHROMIUM).exists():
            pytest.fail("the hub tests need Chromium: apt-get install chromium", pytrace=False)
        module = playwright_core()
        self.log_path = log
        self.artifacts = artifacts
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [node, str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PLAYWRIGHT_CORE": str(module), "CHROMIUM": CHROMIUM},
            text=True,
        )
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._answers.put(json.loads(line))
            except ValueError:
                continue
        self._answers.put(None)

    def call(self, op: str, page: str = "default", timeout: float = 90, **args: Any) -> Any:
        self._next += 1
        command = {"id": self._next, "op": op, "page": page, **args}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        while True:
            try:
                answer = self._answers.get(timeout=timeout)
            except queue.Empty:
                raise BrowserError(f"the browser did not answer {op} in {timeout} s") from None
            if answer is None:
                raise BrowserError(f"the browser driver ended; see {self.log_path}")
            if answer.get("id") == self._next:
                break
        if answer.get("error"):
            raise BrowserError(f"{op} {args}: {answer['error']}")
        return answer.get("result")

    def screenshot(self, page: str, name: str) -> Path:
        """`page` as its user sees it, kept as NAME.png in the artifacts folder, checked to
        be a PNG with an image in it."""
        path = self.artifacts / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.call("screenshot", page, path=str(path))
        width, height = png_size(path)
        assert width > 0 and height > 0, f"{path} is an empty image"
        return path

    @classmethod
    @contextlib.contextmanager
    def opened(cls, folder: Path, artifacts: Path = ARTIFACTS) -> Iterator[Browser]:
        """A browser whose driver logs into `folder` and whose screenshots go to `artifacts`
        (emptied of an earlier run's files first); closed at the end."""
        browser = cls(folder / "driver.log", fresh_artifacts(artifacts))
        try:
            yield browser
        finally:
            browser.close()

    def keep_log(self, log: Path) -> None:
        """A copy of a server's log beside the screenshots."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, self.artifacts / log.name)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"id": "close", "op": "close"}) + "\n")
                self.process.stdin.close()
                self.process.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._reader.join(10)
        self._log.close()
