"""The sidebar ships prebuilt: in the sdist and the wheel, and linked into the development venv.

The wheel is built the standard way, once per session: `python -m build` (the sdist, then the
wheel from the sdist, each in its own isolated build environment) on a copy of this checkout,
with no node on PATH, which works because the sdist carries labextension/prebuilt. It carries
share/jupyter/labextensions/cellpipe and the server extension's config; installed into a fresh
virtual environment with no node on PATH, that environment's own `jupyter labextension list`
and `jupyter server extension list` say cellpipe is enabled and OK. For speed, that environment
gets the wheel and the three Jupyter packages whose commands it runs with --no-deps, and
borrows every other dependency from this venv through a .pth line placed after its own
site-packages; the test checks that it imports the wheel's cellpipe, not this checkout's.

A build from a checkout whose sidebar is not built, with no node, stops with one clear message
instead of making a wheel without the sidebar; an editable build needs no node.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import PREBUILT, ROOT

LABEXT = "share/jupyter/labextensions/cellpipe"
SERVER_CONFIG = "etc/jupyter/jupyter_server_config.d/cellpipe.json"
# the packages whose `jupyter` commands the fresh environment runs from its own bin
JUPYTER_PACKAGES = ("jupyter_core", "jupyter_server", "jupyterlab")
# what a copy of the checkout leaves out: never sources, and big or machine-local
NOT_COPIED_AT_TOP = {"build", "dist", "out", "coverage", "test-artifacts", "notes"}
NOT_COPIED = {".git", ".venv", "node_modules", ".work", "__pycache__", ".mypy_cache"}
NOT_COPIED |= {".ruff_cache", ".pytest_cache", ".eslintcache", "tsconfig.tsbuildinfo"}


def _run(
    command: Sequence[str | Path],
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 240,
) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _setup_py() -> ModuleType:
    """setup.py's functions (its setup() runs only as __main__, as build backends run it)."""
    spec = importlib.util.spec_from_file_location("cellpipe_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _path_without_node() -> str:
    """This venv's scripts and the system's, less every folder that holds node or npm."""
    folders = [sysconfig.get_path("scripts"), *os.environ.get("PATH", os.defpath).split(os.pathsep)]
    kept = [
        folder
        for folder in dict.fromkeys(folders)
        if folder and not any((Path(folder) / tool).exists() for tool in ("node", "npm"))
    ]
    path = os.pathsep.join(kept)
    assert shutil.which("node", path=path) is None and shutil.which("npm", path=path) is None
    return path


def _copy_of_the_checkout(to: Path, with_prebuilt: bool = True) -> Path:
    def left_out(folder: str, names: list[str]) -> set[str]:
        here = Path(folder).resolve()
        return {
            name
            for name in names
            if name in NOT_COPIED
            or name.endswith(".egg-info")
            or (here == ROOT and name in NOT_COPIED_AT_TOP)
            or (here == ROOT / "labextension" and name == "lib")
            or (here == ROOT / "labextension" and name == "prebuilt" and not with_prebuilt)
        }

    # copy2 keeps modification times: the copied prebuilt stays as current as this checkout's
    shutil.copytree(ROOT, to, ignore=left_out, symlinks=True)
    return to


@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """`python -m build` on a copy of this checkout, with no node on PATH (slow: once a session)."""
    stale = _setup_py().why_build(ROOT)
    if stale is not None:
        pytest.fail(f"{stale}: run `make labextension` first (the wheel is built without node)")
    tree = _copy_of_the_checkout(tmp_path_factory.mktemp("checkout") / "cellpipe")
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PATH": _path_without_node()}
    _run([sys.executable, "-m", "build", "--outdir", out, tree], env, timeout=540)
    (sdist,) = out.glob("cellpipe-0.1.0.tar.gz")
    (wheel,) = out.glob("cellpipe-0.1.0-py3-none-any.whl")
    return Dist(sdist=sdist, wheel=wheel)


def test_the_development_venv_has_the_sidebar_linked_and_enabled() -> None:
    assert PREBUILT.is_file(), "the sidebar is not built: run `make labextension` first"
    linked = Path(sys.prefix) / LABEXT
    assert linked.resolve() == PREBUILT.parent.resolve()
    listed = _plain(_run([sys.executable, "-m", "jupyterlab.labextensions", "list"]))
    assert re.search(r"cellpipe v0\.1\.0 enabled\s+OK", listed), listed


@pytest.mark.timeout(600)
def test_the_sdist_carries_the_sidebar_sources_and_the_prebuilt_sidebar(dist: Dist) -> None:
    # Given the sdist that `python -m build` made (and built the wheel from, without node)
    with tarfile.open(dist.sdist) as sdist:
        names = {name.removeprefix("cellpipe-0.1.0/") for name in sdist.getnames()}

    # Then it carries what builds the sidebar and the sidebar built
    for name in (
        "setup.py",
        "MANIFEST.in",
        "pyproject.toml",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "labextension/install.json",
        "labextension/src/index.ts",
        "labextension/style/index.css",
        "labextension/schema/plugin.json",
        "labextension/prebuilt/package.json",
        "labextension/prebuilt/schemas/cellpipe/plugin.json",
        "jupyter-config/jupyter_server_config.d/cellpipe.json",
    ):
        assert name in names, f"{name} is not in {dist.sdist.name}"
    assert any(re.fullmatch(r"labextension/prebuilt/static/remoteEntry\.\w+\.js", n) for n in names)
    assert not any("node_modules" in name or "__pycache__" in name for name in names)


@pytest.mark.timeout(600)
def test_the_wheel_ships_the_prebuilt_sidebar_and_installs_without_node(
    dist: Dist, tmp_path: Path
) -> None:
    """Installed where node is absent, the wheel's sidebar and server extension are OK."""
    # Given the wheel, built from the sdist
    data = "cellpipe-0.1.0.data/data/"
    names = set(zipfile.ZipFile(dist.wheel).namelist())
    for name in (
        f"{LABEXT}/package.json",
        f"{LABEXT}/install.json",
        f"{LABEXT}/static/style.js",
        f"{LABEXT}/schemas/cellpipe/plugin.json",
        SERVER_CONFIG,
    ):
        assert data + name in names, f"{name} is not in {dist.wheel.name}"
    assert any(re.fullmatch(rf"{data}{LABEXT}/static/remoteEntry\.\w+\.js", n) for n in names)

    # When it is installed into a fresh virtual environment by that environment's own pip (never
    # this venv's pip with --prefix: that uninstalls this venv's editable cellpipe), with no node
    # on PATH. To save downloading every dependency again, the wheel goes in with --no-deps, and
    # so do the three packages whose `jupyter` commands are run (the same versions as here, for
    # their scripts in the fresh environment's bin); everything else they import is borrowed from
    # this venv: a .pth line puts its site-packages after the fresh environment's own.
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    no_node = {**os.environ, "PATH": _path_without_node(), "PIP_NO_INPUT": "1"}
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", dist.wheel], no_node)
    jupyter = [f"{n}=={importlib.metadata.version(n)}" for n in JUPYTER_PACKAGES]
    _run([python, "-m", "pip", "install", "-q", "--no-deps", *jupyter], no_node)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(fresh), "platbase": str(fresh)}))
    (purelib / "borrowed-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {
        "PATH": str(fresh / "bin"),
        "HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    code = "import cellpipe, jupyterlab; print(cellpipe.__file__, jupyterlab.__file__)"
    where = _run([python, "-c", code], env).split()
    # the wheel's cellpipe, not this checkout's (editable), and the fresh environment's JupyterLab
    assert all(path.startswith(str(purelib)) for path in where), where

    # Then that environment's JupyterLab lists the sidebar, installed there by the Python
    # package, enabled and OK, and its jupyter-server finds the server extension enabled and OK
    share = re.escape(str(fresh / "share" / "jupyter" / "labextensions"))
    listed = _plain(_run([fresh / "bin" / "jupyter", "labextension", "list"], env))
    # (the line under that folder's heading, among its indented lines)
    pattern = rf"{share}\n(?:[ \t]+.*\n)*?[ \t]+cellpipe v0\.1\.0 enabled OK \(python, cellpipe\)\n"
    assert re.search(pattern, listed), listed
    servers = _plain(_run([fresh / "bin" / "jupyter", "server", "extension", "list"], env))
    config = re.escape(str(fresh / "etc" / "jupyter"))
    pattern = (
        rf"Config dir: {config}\n(?:[ \t]+.*\n)*?[ \t]+cellpipe enabled\n"
        r"[ \t]+- Validating cellpipe\.\.\.\n[ \t]+cellpipe 0\.1\.0 OK\n"
    )
    assert re.search(pattern, servers), servers
    # and this venv's own (editable) cellpipe is untouched
    _run([sys.executable, "-c", "import importlib.metadata as m; m.distribution('cellpipe')"])


@pytest.mark.timeout(180)
# setuptools' notice on every editable build ("Please be careful with folders ...")
@pytest.mark.filterwarnings("ignore:Editable installation:UserWarning")
def test_a_build_without_node_or_the_prebuilt_sidebar_fails_clearly_but_editable_needs_none(
    tmp_path: Path,
) -> None:
    """`pip install .` (the backend's build_wheel) from a checkout that never built the sidebar,
    on a machine without node: one clear message, no wheel; `pip install -e .` needs no node."""
    # (one import: ruff's isort counts `build` as first party while a build/ folder is here)
    import build.env

    # Given a checkout without labextension/prebuilt, and no node on PATH
    tree = _copy_of_the_checkout(tmp_path / "cellpipe", with_prebuilt=False)
    outputs: list[str] = []

    # the build environment, as pip makes one: [build-system] requires, installed once here
    with build.env.DefaultIsolatedEnv() as isolated:

        def runner(
            command: Sequence[str], cwd: str | None = None, extra: Mapping[str, str] | None = None
        ) -> None:
            scripts = str(Path(isolated.python_executable).parent)
            path = os.pathsep.join([scripts, _path_without_node()])
            env = {**os.environ, **(extra or {}), "PATH": path}
            result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
            outputs.append(result.stdout + result.stderr)
            result.check_returncode()

        builder = build.ProjectBuilder.from_isolated_env(isolated, tree, runner=runner)
        isolated.install(builder.build_system_requires)
        isolated.install(builder.get_requires_for_build("wheel"))

        # When a wheel is built from it, as `pip install .` builds one
        with pytest.raises(build.BuildBackendException):
            builder.build("wheel", tmp_path / "wheel")

        # Then the build stops, saying what is missing and what to do, and makes no wheel
        said = " ".join(outputs[-1].split())
        assert "labextension/prebuilt is missing" in said, outputs[-1]
        assert "needs Node.js 20+ and npm on PATH, which are not there" in said, outputs[-1]
        assert "install a built wheel or sdist of cellpipe instead" in said, outputs[-1]
        assert not list((tmp_path / "wheel").glob("*.whl"))

        # When the editable wheel is built instead (`pip install -e .`)
        editable = Path(builder.build("editable", tmp_path / "editable"))

    # Then it is made without node and without the sidebar: an editable wheel carries no data
    # files (the Makefile puts the server extension's config in the venv, and `make labextension`
    # builds the sidebar and links it there)
    names = zipfile.ZipFile(editable).namelist()
    assert "__editable__.cellpipe-0.1.0.pth" in names
    assert not any(".data/" in name for name in names), names
    assert not (tree / "labextension" / "prebuilt").exists()
