"""The build step that puts the JupyterLab sidebar into the wheel (the rest is in pyproject.toml).

As for every JupyterLab extension installed from source: a wheel built from a checkout builds
the sidebar first (node and npm needed) when labextension/prebuilt is missing or older than its
sources, and fails with one clear message when node is not there, never silently without it.
The sdist carries the sources and the prebuilt extension (MANIFEST.in), so a wheel built from
the sdist (`python -m build`, `pip install cellpipe-*.tar.gz`) needs no node.

The prebuilt files become data files (share/jupyter/labextensions/cellpipe) only here, once
built: pyproject's data-files globs are expanded before any build step runs.

Editable installs (`pip install -e .`) skip the sidebar: no node needed, and no copy of it in
the venv; `make labextension` builds it and links it there, as `jupyter labextension develop`
does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.command.sdist import sdist
from setuptools.errors import ExecError, SetupError

ROOT = Path(__file__).resolve().parent
# what the Makefile's labextension rule depends on too, less the jest tests (tsconfig leaves
# them out of the build)
SOURCE_FILES = ("package.json", "package-lock.json", "tsconfig.json")
SOURCE_DIRS = ("labextension/src", "labextension/style", "labextension/schema")
NOT_BUILT = "labextension/src/__tests__"
LABEXT = "share/jupyter/labextensions/cellpipe"


class NoNodeError(SetupError):
    """The sidebar needs building and node or npm is not on PATH."""


def sidebar_sources(root: Path = ROOT) -> list[Path]:
    sources = [root / name for name in SOURCE_FILES]
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and not path.is_relative_to(root / NOT_BUILT):
                sources.append(path)
    return sources


def why_build(root: Path = ROOT) -> str | None:
    """Why labextension/prebuilt must be built first, or None when it is up to date."""
    built = root / "labextension" / "prebuilt" / "package.json"
    if not built.is_file():
        return "labextension/prebuilt is missing"
    newer = [p for p in sidebar_sources(root) if p.stat().st_mtime > built.stat().st_mtime]
    if newer:
        return f"labextension/prebuilt is older than {newer[0].relative_to(root).as_posix()}"
    return None


def build_sidebar(root: Path = ROOT) -> None:
    """Build labextension/prebuilt with npm (as `make labextension` does) if it is not current."""
    reason = why_build(root)
    if reason is None:
        return
    path = os.environ.get("PATH", os.defpath)
    node, npm = shutil.which("node", path=path), shutil.which("npm", path=path)
    if node is None or npm is None:
        raise NoNodeError(
            f"cellpipe's JupyterLab sidebar must be built into the wheel and {reason}; building "
            "it needs Node.js 20+ and npm on PATH, which are not there. Install them (Debian: "
            "`apt-get install nodejs npm`) and build again, or install a built wheel or sdist of "
            "cellpipe instead (they carry the sidebar prebuilt: no node needed). "
            "`pip install -e .` needs no node either (`make labextension` builds the sidebar)."
        )
    # `npm run build:prod` calls `jupyter labextension build`: JupyterLab from the build
    # environment ([build-system] requires it), else from this interpreter's scripts folder
    if shutil.which("jupyter", path=path) is None:
        path = os.pathsep.join([sysconfig.get_path("scripts"), path])
    env = {**os.environ, "PATH": path}
    try:
        # only where there is none: an existing node_modules (a developer's) is never emptied
        if not (root / "node_modules").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=root, env=env, check=True)
            (root / "node_modules" / ".installed").touch()  # the Makefile's stamp
        subprocess.run([npm, "run", "build:prod"], cwd=root, env=env, check=True)
    except subprocess.CalledProcessError as error:
        raise ExecError(f"building cellpipe's JupyterLab sidebar failed: {error}") from error
    still = why_build(root)
    if still is not None:
        raise ExecError(f"`npm run build:prod` ran, yet {still}")


def sidebar_data_files(root: Path = ROOT) -> list[tuple[str, list[str]]]:
    """labextension/prebuilt and install.json as data files under PREFIX/share/jupyter."""
    prebuilt = root / "labextension" / "prebuilt"
    folders: dict[str, list[str]] = {LABEXT: ["labextension/install.json"]}
    for path in sorted(prebuilt.rglob("*")):
        if path.is_file():
            under = path.parent.relative_to(prebuilt).as_posix()
            target = LABEXT if under == "." else f"{LABEXT}/{under}"
            folders.setdefault(target, []).append(path.relative_to(root).as_posix())
    return sorted(folders.items())


class build_labextension(Command):
    """Builds the sidebar if need be and adds it to the data files (skipped when editable)."""

    description = "build the JupyterLab sidebar into labextension/prebuilt"
    user_options: list[tuple[str, str | None, str]] = []  # noqa: RUF012 (distutils' API)

    def initialize_options(self) -> None:
        self.editable_mode = False  # setuptools sets it for `pip install -e`

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        if self.editable_mode:
            return
        build_sidebar()
        kept = [
            entry
            for entry in self.distribution.data_files or []
            if not (isinstance(entry, tuple) and entry[0].startswith(LABEXT))
        ]
        self.distribution.data_files = kept + sidebar_data_files()


class build_with_sidebar(build):
    sub_commands = [("build_labextension", None), *build.sub_commands]  # noqa: RUF012


class sdist_with_sidebar(sdist):
    """The sdist carries labextension/prebuilt (MANIFEST.in): build it before listing files."""

    def run(self) -> None:
        self.run_command("build_labextension")
        super().run()


if __name__ == "__main__":
    setup(
        cmdclass={
            "build_labextension": build_labextension,
            "build": build_with_sidebar,
            "sdist": sdist_with_sidebar,
        }
    )
