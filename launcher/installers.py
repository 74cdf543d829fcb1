"""Which installer puts the requirements into the dependencies layer: uv when it can, else pip.

uv (a dependency of cellpipe, from PyPI) installs a scikit-learn set from its warm cache in a
few seconds, hard-linking files out of its cache instead of copying them; pip takes tens of
seconds for the same set. Both install for this interpreter (its tags and markers), which the
append builder has checked to be the base image's architecture and Python version, so the
wheels are the ones pip picks.

The same versions as pip: uv is handed pip's own configuration, as `pip config list` reads it
(pip.conf files and PIP_* variables: index-url, extra-index-url, find-links, no-index, pre,
trusted-host, cert, client-cert, proxy), with `--index-strategy unsafe-best-match` (pip takes
the best version across all its indexes; uv's default takes the first index that has the
name) and `--no-config` (uv.toml files, which pip does not read, are left out). A pip setting
that could change what is installed and has no uv counterpart (only-binary, constraint, ...)
makes the build use pip, and says so.

`CELLPIPE_INSTALLER` chooses: `auto` (the default: uv when found and pip's settings map to it,
else pip; uv failing is retried with pip), `uv` (uv or a BuildError), `pip`. Neither compiles
bytecode: pip's .pyc files record the time the files were written, so layers differed from
build to build, and the layer's fixed file times made them stale in the image anyway.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .builders import BuildError, run_command, run_pip

INSTALLERS = ("auto", "uv", "pip")
UV_LOCK = ".lock"  # uv's lock file at the top of --target: not part of what is installed

# pip settings that cannot change which files are installed (timeouts, output, caches).
_HARMLESS = frozenset(
    {
        "timeout",
        "default-timeout",
        "retries",
        "disable-pip-version-check",
        "no-cache-dir",
        "cache-dir",
        "progress-bar",
        "quiet",
        "verbose",
        "no-color",
        "no-input",
        "log",
        "log-file",
        "root-user-action",
        "break-system-packages",
        "no-warn-script-location",
        "no-warn-conflicts",
        "require-virtualenv",
        "require-venv",
        "no-python-version-warning",
        "exists-action",
        "keyring-provider",
        "config-file",  # PIP_CONFIG_FILE: the file's own settings are listed beside it
    }
)
# uv's own variables that leave what is installed alone; its others (UV_INDEX_URL, UV_CONSTRAINT,
# UV_EXCLUDE_NEWER...) are not handed to it: pip's configuration decides, as for pip.
_UV_VARIABLES = frozenset(
    {
        "UV_CACHE_DIR",
        "UV_NO_CACHE",
        "UV_LINK_MODE",
        "UV_HTTP_TIMEOUT",
        "UV_HTTP_RETRIES",
        "UV_CONCURRENT_DOWNLOADS",
        "UV_CONCURRENT_BUILDS",
        "UV_CONCURRENT_INSTALLS",
        "UV_NATIVE_TLS",
    }
)
_LISTS = frozenset({"extra-index-url", "find-links", "trusted-host"})
_TRUE = frozenset({"1", "y", "yes", "t", "true", "on"})


@dataclass(frozen=True)
class UvCommand:
    """What uv needs besides the requirements to install as pip would here."""

    arguments: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


class NotForUv(Exception):
    """pip's configuration holds a setting uv cannot honour; the message names it."""


def find_uv() -> str | None:
    """The uv binary: the `uv` package's, else one on PATH; None when there is none."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def uv_version() -> str:
    try:
        return metadata.version("uv")
    except metadata.PackageNotFoundError:
        return "(on PATH)"


def pip_settings(python: str = sys.executable) -> dict[str, str]:
    """pip's configuration for `pip install`, as pip reads it: option -> value.

    From `pip config list` (its files and PIP_* variables); for one option, a variable beats
    an [install] section, which beats [global], as pip's own option parser orders them.
    """
    listed = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise NotForUv(f"`pip config list` failed: {listed.stderr.strip()[-300:]}")
    rank = {"global": 0, "install": 1, ":env:": 2}
    found: dict[str, tuple[int, str]] = {}
    for line in listed.stdout.splitlines():
        key, _, raw = line.partition("=")
        section, _, option = key.rpartition(".")
        if section not in rank or not option:
            continue  # another command's section ([download], [list]...)
        option = option.replace("_", "-").lower()
        try:
            value = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        if option not in found or found[option][0] <= rank[section]:
            found[option] = (rank[section], value)
    return {option: value for option, (_, value) in found.items()}


def read_pip_settings(pool: Executor) -> Future[dict[str, str]]:
    """pip_settings() started in `pool`, so that the half second pip takes to start passes
    while the build does something else (reading the base image)."""
    return pool.submit(pip_settings)


def uv_command(settings: Mapping[str, str]) -> UvCommand:
    """uv's arguments and environment for pip's `settings`; NotForUv naming what cannot map."""
    command = UvCommand(["--index-strategy", "unsafe-best-match"])
    for option, value in sorted(settings.items()):
        words = value.split() if option in _LISTS else [value]
        if option in _HARMLESS:
            continue
        if option in ("index-url", "extra-index-url", "find-links"):
            for word in words:
                command.arguments.extend([f"--{option}", word])
        elif option == "trusted-host":
            for word in words:
                command.arguments.extend(["--allow-insecure-host", word])
        elif option == "no-index":
            if value.lower() in _TRUE:
                command.arguments.append("--no-index")
        elif option == "pre":
            if value.lower() in _TRUE:
                command.arguments.extend(["--prerelease", "allow"])
        elif option == "cert":
            command.env["SSL_CERT_FILE"] = value
        elif option == "client-cert":
            command.env["SSL_CLIENT_CERT"] = value
        elif option == "proxy":
            command.env.update(HTTPS_PROXY=value, HTTP_PROXY=value)
        else:
            raise NotForUv(f"pip's setting {option!r} has no uv counterpart")
    return command


def chosen_installer(env: Mapping[str, str] | None = None) -> str:
    """CELLPIPE_INSTALLER: auto (the default), uv or pip; a BuildError for anything else."""
    value = (env if env is not None else os.environ).get("CELLPIPE_INSTALLER", "") or "auto"
    if value not in INSTALLERS:
        raise BuildError(
            f"CELLPIPE_INSTALLER={value!r}: choose one of {', '.join(INSTALLERS)} "
            "(auto: uv when it can, else pip)"
        )
    return value


def install_requirements(
    requirements: Path,
    target: Path,
    say: Callable[[str], None],
    count: int,
    stop: threading.Event | None = None,
    settings: Future[dict[str, str]] | None = None,
) -> str:
    """Installs the requirements file into `target` (a --target folder, no bytecode, no
    scripts kept); says which installer ran and why; returns its name ("uv" or "pip").
    Stopped (a BuildError) when `stop` is set before the installer ends. `settings`: pip's
    settings being read already (read_pip_settings), else they are read here."""
    choice = chosen_installer()
    why_not_uv = ""
    if choice != "pip":
        uv = find_uv()
        try:
            if uv is None:
                raise NotForUv("uv is not installed (pip install uv)")
            command = uv_command(settings.result() if settings else pip_settings())
        except NotForUv as exc:
            if choice == "uv":
                raise BuildError(f"CELLPIPE_INSTALLER=uv, but {exc}") from None
            why_not_uv = str(exc)
        else:
            say(f"installing {count} requirements with uv {uv_version()}")
            failure = _run_uv(uv, command, requirements, target, stop)
            if failure is None:
                _tidy(target)
                return "uv"
            if choice == "uv":
                raise BuildError(
                    f"installing the requirements failed:\n{failure}\n(check the names and "
                    "versions; `cellpipe requirements NOTEBOOK` shows where each came from)"
                )
            why_not_uv = f"uv failed ({failure.splitlines()[-1] if failure else 'no message'})"
            shutil.rmtree(target, ignore_errors=True)
    reason = f" ({why_not_uv}; trying pip)" if why_not_uv else ""
    say(f"installing {count} requirements with pip{reason}")
    run_pip(
        [
            "install",
            "--no-warn-script-location",
            "--no-compile",
            "--target",
            str(target),
            "-r",
            str(requirements),
        ],
        "installing",
        stop,
    )
    _tidy(target)
    return "pip"


def _run_uv(
    uv: str,
    command: UvCommand,
    requirements: Path,
    target: Path,
    stop: threading.Event | None,
) -> str | None:
    """None when uv installed everything; else its last lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in _UV_VARIABLES}
    result = run_command(
        [
            uv,
            "pip",
            "install",
            "--no-config",
            "--no-progress",
            "--quiet",
            "--python",
            sys.executable,
            "--target",
            str(target),
            *command.arguments,
            "-r",
            str(requirements),
        ],
        env={**env, **command.env},
        cwd=requirements.parent,
        stop=stop,
    )
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return "\n".join(lines[-6:])


def _tidy(target: Path) -> None:
    """What an installer leaves that is not the environment: entry scripts for this machine's
    interpreter (bin/), uv's lock file."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    (target / UV_LOCK).unlink(missing_ok=True)
