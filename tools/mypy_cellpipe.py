"""mypy over cellpipe's real import names: `python tools/mypy_cellpipe.py [mypy options]`.

The folders are named for what they are and setuptools' `package-dir` maps them to import
names (extension/ is `cellpipe`, launcher/ is `cellpipe.launcher`, ...). mypy cannot follow that
mapping, so this script builds a view of the package as it is installed, made of symlinks:

    build/mypy/cellpipe/__init__.py  -> extension/__init__.py   (each file and subpackage
    build/mypy/cellpipe/commands     -> extension/commands/      of extension/)
    build/mypy/cellpipe/launcher     -> launcher/                (each other package's folder)

and runs `mypy -p cellpipe` with `mypy_path` pointing at build/mypy (both set in pyproject's
[tool.mypy], so a plain `mypy` works too once the view exists). Every call between cellpipe's
own packages is then typed. mypy names the files by the view's paths; this script turns them
back into the real ones (build/mypy/cellpipe/launcher/build.py -> launcher/build.py), so
editors and people jump to the file they edit.

The view is rebuilt on every run (it is a few symlinks), from pyproject's `package-dir`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mypy depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
VIEW = ROOT / "build" / "mypy"
PACKAGE = "cellpipe"
# What a package's folder holds that mypy reads (caches and stray folders stay out of the view).
SOURCE_SUFFIXES = (".py", ".pyi")
MARKER = "py.typed"


def package_dirs(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Path]:
    """Import name -> folder, from [tool.setuptools] package-dir."""
    config = tomllib.loads(pyproject.read_text())
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return {
        name: ROOT / folder for name, folder in mapping.items() if name.split(".")[0] == PACKAGE
    }


def build_view(packages: dict[str, Path], view: Path = VIEW) -> dict[Path, Path]:
    """Symlinks under `view` laying the packages out by import name; view path -> real path."""
    shutil.rmtree(view, ignore_errors=True)
    links: dict[Path, Path] = {}
    for name in sorted(packages, key=lambda n: n.count(".")):
        folder = packages[name].resolve()
        place = view.joinpath(*name.split("."))
        if name == PACKAGE:  # the root package shares its folder with the links to the others
            place.mkdir(parents=True)
            mapped = {n.split(".")[1] for n in packages if n.count(".") == 1}
            for path in sorted(folder.iterdir()):
                if path.is_file() and (path.suffix in SOURCE_SUFFIXES or path.name == MARKER):
                    (place / path.name).symlink_to(path)
                elif (
                    path.is_dir()
                    and path.name.isidentifier()
                    and path.name not in mapped | {"__pycache__"}
                ):
                    (place / path.name).symlink_to(path, target_is_directory=True)
                else:  # caches, and folders another package-dir entry maps
                    continue
                links[place / path.name] = path
        else:
            place.parent.mkdir(parents=True, exist_ok=True)
            place.symlink_to(folder, target_is_directory=True)
            links[place] = folder
    return links


def real_paths(output: str, links: dict[Path, Path], root: Path = ROOT) -> str:
    """mypy's output with each view path (absolute or relative to root) as the real file's."""
    lookup: dict[str, str] = {}
    for view, real in links.items():
        shown = str(real.relative_to(root)) if real.is_relative_to(root) else str(real)
        lookup[str(view)] = shown
        if view.is_relative_to(root):
            lookup[str(view.relative_to(root))] = shown
    # Longest first, and only whole path parts: a folder's link must not swallow a deeper one.
    pattern = re.compile(
        "|".join(re.escape(view) + r"(?=[/:\s]|$)" for view in sorted(lookup, key=len)[::-1])
    )
    return pattern.sub(lambda match: lookup[match.group(0)], output)


def main(argv: list[str]) -> int:
    links = build_view(package_dirs())
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", PACKAGE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    sys.stdout.write(real_paths(result.stdout, links))
    sys.stderr.write(real_paths(result.stderr, links))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
