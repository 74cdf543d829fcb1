"""What a pipeline's image needs: requirements pinned to the kernel's environment, and files.

Sources, in order of precedence for the same distribution:
  1. `metadata.cellpipe.requirements` (the notebook's own list),
  2. `requirements.txt` beside the notebook,
  3. `!pip install` / `%pip install` lines in the notebook,
  4. the notebook's imports, mapped to distributions and pinned to the versions installed in
     the environment of the notebook's kernel (its kernelspec's Python; this interpreter when
     there is none).
Standard-library modules are left out; modules that are files beside the notebook are local
and go into the image with the files the notebook names, up to a size limit. Nothing is left
out silently: each thing found says why, and each thing not taken says so with a hint.

The notebook and its folder may come from anyone, so what reaches pip is a requirement
specifier (PEP 508) and nothing else: no pip option (an index, a trusted host, `-r FILE`), no
line break hiding one, no URL but https (`NAME @ https://...`); a line of the notebook's list or
of requirements.txt that is anything else is a RequirementError naming it. Local modules and
files are taken only from inside the notebook's folder (a link out of it is an error naming
it), and the kernel's packages are read by a Python started in an empty folder, so nothing in
the notebook's folder runs while they are read.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Specifier

from cellpipe.converter.model import Pipeline
from cellpipe.converter.source import python_tree

from .errors import UserError

DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024
# The runtime's own needs in the image: kfp's executor runs every step; cloudpickle hands on
# values of any type; IPython runs the cells as Jupyter does (runtime/shell.py). Pinned to
# the versions cellpipe runs with here.
RUNTIME_DISTRIBUTIONS = ("kfp", "cloudpickle", "ipython")

_PROBE = r"""
import importlib.metadata as md, importlib.util, json, sys
modules = json.load(sys.stdin)
owners = md.packages_distributions()
found = {}
for name in modules:
    entry = {"stdlib": name in sys.stdlib_module_names or name in sys.builtin_module_names}
    if not entry["stdlib"]:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        entry["installed"] = spec is not None
        dists = sorted(set(owners.get(name, [])))
        entry["distributions"] = {}
        for dist in dists:
            try:
                entry["distributions"][dist] = md.version(dist)
            except md.PackageNotFoundError:
                pass
    found[name] = entry
print(json.dumps({"python": "%d.%d.%d" % sys.version_info[:3], "modules": found}))
"""


class RequirementError(UserError):
    """A requirement line, local module or file the image cannot take; the message names it."""

    reason = "bad_requirement"


# What a `NAME @ URL` requirement may fetch: over https only (a file: URL would bake files of
# the building machine into the image; plain http can be changed on the way).
URL_SCHEMES = ("https://", "git+https://")


def requirement_problem(text: str) -> str | None:
    """None when `text` is a requirement specifier pip may be given (PEP 508); else what it
    is instead, in words for people."""
    if not text.strip():
        return "is empty"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "holds a line break or control character (one requirement per line)"
    if text.lstrip().startswith("-"):
        return (
            "is a pip option, not a requirement: cellpipe gives pip requirement specifiers "
            "only (indexes and trusted hosts are the building machine's pip configuration)"
        )
    try:
        specifier = Specifier(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        return (
            "is not a requirement specifier (PEP 508: NAME[extras] VERSIONS; MARKERS, or "
            f"NAME @ https://URL): {first}"
        )
    if specifier.url is not None and not specifier.url.startswith(URL_SCHEMES):
        return "names a URL cellpipe does not fetch: only https:// and git+https:// URLs"
    return None


@dataclass
class Requirement:
    name: str  # the distribution, as pip spells it
    spec: str  # what pip installs: `scikit-learn==1.5.2`, `pandas>=2`, a URL...
    source: str  # why: "import sklearn (cell 3)", "requirements.txt", ...


@dataclass
class BakedFile:
    path: str  # relative to the notebook's folder
    size: int
    why: str


@dataclass
class Requirements:
    python: str  # the kernel's Python that versions were read from
    python_version: str
    requirements: list[Requirement] = field(default_factory=list)
    local_modules: list[BakedFile] = field(default_factory=list)
    files: list[BakedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def pip_lines(self) -> list[str]:
        return [r.spec for r in self.requirements]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def normalize(name: str) -> str:
    """PEP 503 name normalisation: `Scikit_Learn` and `scikit-learn` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(spec: str) -> str | None:
    """The distribution a requirement line installs, or None for URLs and paths."""
    if "://" in spec or spec.startswith((".", "/")):
        match = re.search(r"#egg=([A-Za-z0-9._-]+)", spec)
        return normalize(match.group(1)) if match else None
    match = _NAME.match(spec)
    return normalize(match.group(1)) if match else None


def kernel_python(notebook: dict[str, Any]) -> tuple[str, str]:
    """The Python of the notebook's kernel, and how it was found."""
    name = (notebook.get("metadata", {}).get("kernelspec") or {}).get("name")
    if name:
        try:
            from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

            try:
                argv = KernelSpecManager().get_kernel_spec(name).argv
            except NoSuchKernel:
                argv = []
            if argv and ("python" in Path(argv[0]).name):
                executable = shutil.which(argv[0]) or argv[0]
                if argv[0] in ("python", "python3"):  # ipykernel's default: this interpreter
                    executable = sys.executable
                if Path(executable).exists():
                    return executable, f"the kernel {name!r}"
        except ImportError:
            pass
    return sys.executable, "this interpreter (the notebook names no installed Python kernel)"


def imported_modules(pipeline: Pipeline) -> dict[str, str]:
    """Top-level modules the notebook imports, each with where it is first imported."""
    found: dict[str, str] = {}
    cells = list(pipeline.prelude) + [c for s in pipeline.steps for c in s.cells]
    for cell in sorted(cells, key=lambda c: c.index):
        tree = _python_tree(cell.source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                found.setdefault(top, f"import {name} (cell {cell.index + 1})")
    return found


def _probe(python: str, modules: list[str]) -> dict[str, Any]:
    """What the kernel's Python has of `modules`. It starts in a new, empty folder, so that
    what `python -c` puts first on its path (the current folder) holds nothing: a `json.py`
    beside the notebook, or in the folder cellpipe was started from, never runs. (Not `-I`:
    that would hide the user's own site-packages, where a hub's users install packages.)"""
    with tempfile.TemporaryDirectory(prefix="cellpipe-probe-") as neutral:
        result = subprocess.run(
            [python, "-c", _PROBE],
            input=json.dumps(modules),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=neutral,
        )
    if result.returncode != 0:
        raise RuntimeError(f"cannot read the packages of {python}: {result.stderr.strip()}")
    probed: dict[str, Any] = json.loads(result.stdout)
    return probed


def _requirements_file(path: Path, warnings: list[str]) -> list[str]:
    lines = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            warnings.append(f"{path.name}: {line!r} is a pip option cellpipe does not carry")
            continue
        problem = requirement_problem(line)
        if problem is not None:
            raise RequirementError(f"{path.name} line {number} {line!r} {problem}")
        lines.append(line)
    return lines


def _metadata_requirements(notebook: dict[str, Any]) -> list[str]:
    """metadata.cellpipe.requirements: a list of requirement specifiers, each checked."""
    ours = (notebook.get("metadata") or {}).get("cellpipe") or {}
    given = ours.get("requirements") if isinstance(ours, dict) else None
    if given is None:
        return []
    where = "metadata.cellpipe.requirements"
    if not isinstance(given, list):
        raise RequirementError(f"{where} must be a list of requirement specifiers (PEP 508)")
    for index, spec in enumerate(given, 1):
        if not isinstance(spec, str):
            raise RequirementError(f"{where}[{index}] {spec!r} is not text: write a specifier")
        problem = requirement_problem(spec)
        if problem is not None:
            raise RequirementError(f"{where}[{index}] {spec!r} {problem}")
    return list(given)


def find_requirements(
    pipeline: Pipeline,
    notebook: dict[str, Any],
    notebook_path: Path,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Requirements:
    """Everything the image needs beyond its base, with the reason for each."""
    python, python_why = kernel_python(notebook)
    folder = notebook_path.resolve().parent
    imports = imported_modules(pipeline)
    probed = _probe(python, sorted(imports))
    found = Requirements(python=f"{python} ({python_why})", python_version=probed["python"])
    chosen: dict[str, Requirement] = {}

    def take(spec: str, source: str) -> None:
        name = requirement_name(spec) or spec
        chosen.setdefault(name, Requirement(name, spec, source))

    for spec in _metadata_requirements(notebook):
        take(spec, "metadata.cellpipe.requirements")
    requirements_txt = folder / "requirements.txt"
    if requirements_txt.is_file():
        confined(requirements_txt, folder, "requirements.txt beside the notebook")
        for spec in _requirements_file(requirements_txt, found.warnings):
            take(spec, "requirements.txt")
    for spec in pipeline.requirements:
        problem = requirement_problem(spec)
        if problem is not None:
            found.warnings.append(
                f"a pip install line in the notebook: {spec!r} {problem}; it is not carried "
                "into the image (write NAME @ https://URL in metadata.cellpipe.requirements)"
            )
            continue
        take(spec, "a pip install line in the notebook")
    for module, where in imports.items():
        _take_import(module, where, probed["modules"][module], folder, found, take)
    found.requirements = list(chosen.values())
    _runtime_requirements(found, take)
    found.requirements = list(chosen.values())
    _named_files(pipeline, folder, max_file_bytes, found)
    return found


def _take_import(
    module: str,
    where: str,
    probe: dict[str, Any],
    folder: Path,
    found: Requirements,
    take: Any,
) -> None:
    if probe["stdlib"]:
        return
    local = [p for p in (folder / f"{module}.py", folder / module) if p.exists()]
    if local:
        path = local[0]
        for file in [path, *(sorted(path.rglob("*.py")) if path.is_dir() else [])]:
            confined(file, folder, where)
        size = sum(f.stat().st_size for f in path.rglob("*.py")) if path.is_dir() else None
        found.local_modules.append(
            BakedFile(
                path.name + ("/" if path.is_dir() else ""),
                size if size is not None else path.stat().st_size,
                f"{where}: a module beside the notebook",
            )
        )
        return
    if not probe.get("distributions"):
        found.warnings.append(
            f"{where}: {module!r} is not installed in the kernel's environment "
            f"({found.python}), so cellpipe cannot pin it; install it there or name its "
            "distribution in requirements.txt"
        )
        return
    for dist, version in probe["distributions"].items():
        take(f"{dist}=={version}", f"{where}: {dist} {version} is installed in the kernel")


def confined(path: Path, folder: Path, why: str) -> Path:
    """`path` (beside the notebook) resolved, when it stays inside the notebook's `folder`;
    a RequirementError naming it when it, or a link on the way, leads out."""
    resolved = path.resolve()
    if resolved.is_relative_to(folder):
        return resolved
    name = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
    raise RequirementError(
        f"{why}: {name} is a link to a file outside the notebook's folder, which cellpipe "
        "does not bake into an image; copy what it needs into the folder, or install it as a "
        "package"
    )


def _runtime_requirements(found: Requirements, take: Any) -> None:
    import importlib.metadata as md

    for dist in RUNTIME_DISTRIBUTIONS:
        take(f"{dist}=={md.version(dist)}", "the cellpipe step runtime needs it")


def _named_files(pipeline: Pipeline, folder: Path, limit: int, found: Requirements) -> None:
    """Files beside the notebook that its code names by a string literal."""
    seen: set[str] = set()
    cells = list(pipeline.prelude) + [c for s in pipeline.steps for c in s.cells]
    for cell in cells:
        for literal in _string_literals(cell.source):
            candidate = (folder / literal).resolve()
            if not candidate.is_relative_to(folder) or not candidate.is_file():
                continue
            relative = candidate.relative_to(folder).as_posix()
            if relative in seen or relative.endswith(".ipynb"):
                continue
            seen.add(relative)
            size = candidate.stat().st_size
            why = f"named in cell {cell.index + 1}"
            if size > limit:
                found.warnings.append(
                    f"{relative} ({size / 1e6:.1f} MB, {why}) is larger than the "
                    f"{limit / 1e6:.0f} MB baked into an image: mount it (a `volume:PVC:PATH` "
                    "tag) or read it from storage; raise the limit with --max-file-size"
                )
            else:
                found.files.append(BakedFile(relative, size, why))


def _python_tree(source: str) -> ast.Module | None:
    """A cell's syntax tree; a cell that holds IPython lines (`%matplotlib inline`, `!ls`,
    `%%bash`) is read as the compiler reads it, as Python that stands for those lines."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return python_tree(source)


def _string_literals(source: str) -> list[str]:
    tree = _python_tree(source)
    if tree is None:
        return []
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and 0 < len(node.value) < 300
        and "\n" not in node.value
    ]
