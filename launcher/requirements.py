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
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cellpipe.converter.model import Pipeline

DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024
# The runtime's own needs in the image: kfp's executor runs every step; cloudpickle hands on
# values of any type. Pinned to the versions cellpipe runs with here.
RUNTIME_DISTRIBUTIONS = ("kfp", "cloudpickle")

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
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
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
    result = subprocess.run(
        [python, "-c", _PROBE],
        input=json.dumps(modules),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cannot read the packages of {python}: {result.stderr.strip()}")
    probed: dict[str, Any] = json.loads(result.stdout)
    return probed


def _requirements_file(path: Path, warnings: list[str]) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            warnings.append(f"{path.name}: {line!r} is a pip option cellpipe does not carry")
            continue
        lines.append(line)
    return lines


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

    metadata = notebook.get("metadata", {}).get("cellpipe", {}).get("requirements", [])
    for spec in metadata if isinstance(metadata, list) else []:
        take(str(spec), "metadata.cellpipe.requirements")
    requirements_txt = folder / "requirements.txt"
    if requirements_txt.is_file():
        for spec in _requirements_file(requirements_txt, found.warnings):
            take(spec, "requirements.txt")
    for spec in pipeline.requirements:
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


def _string_literals(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and 0 < len(node.value) < 300
        and "\n" not in node.value
    ]
