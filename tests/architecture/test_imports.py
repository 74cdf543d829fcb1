"""The house's rules, checked on the source: imports go one way and never in a cycle.

Every `import` is counted, the ones inside functions too (a function-level import hides a
cycle, it does not remove it). Modules are named as they are installed (pyproject's
package-dir: extension/ is `cellpipe`, launcher/ is `cellpipe.launcher`, ...).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
# The front doors: each turns its own input into launcher calls. None imports another's
# modules; `cellpipe.commands` (the command grammar and commands) is shared by the CLI and
# the magic and is no front door of its own.
# The kernel's door is the magics with what they show (widgets, views): `%cellpipe submit
# --form` shows the SubmitForm, one way; the widgets never use the magics.
FRONT_DOORS = {
    "cli": ("cellpipe.cli",),
    "server": ("cellpipe.server_ext",),
    "kernel": ("cellpipe.magics", "cellpipe.widgets", "cellpipe.views"),
    "spawner": ("cellpipe.spawner",),
}
# What each room may import of cellpipe (imports go front doors -> launcher -> converter;
# the runtime stands alone).
MAY_IMPORT = {
    "cellpipe.runtime": ("cellpipe.runtime",),
    "cellpipe.converter": ("cellpipe.converter",),
    "cellpipe.launcher": ("cellpipe.launcher", "cellpipe.converter", "cellpipe.runtime"),
}
MAX_LINES = 800
# Known to be longer, each with the size it may not grow past and why; the list only shrinks.
LONGER_FOR_NOW = {
    # issue 14's alias analysis: the _TopLevel visitor alone is ~700 lines; split it into
    # statement and call halves next (its tables, shapes and scopes already moved out)
    "converter/names.py": 920,
}


def _package_dirs() -> dict[str, Path]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in mapping.items()}


def modules() -> dict[str, Path]:
    """Every cellpipe module by its import name."""
    found: dict[str, Path] = {}
    dirs = _package_dirs()
    for package, folder in sorted(dirs.items(), key=lambda item: -len(item[0])):
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            name = ".".join([package, *parts])
            found.setdefault(name, path)
    return found


def _imports(name: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) of every import in the file."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [alias.name for alias in node.names], node.lineno


def graph() -> dict[str, set[str]]:
    """module -> the cellpipe modules it imports (a `from pkg import mod` names pkg.mod)."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for module, names, _ in _imports(name, path):
            if not module.startswith("cellpipe"):
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
            if not targets:
                targets = [module] if module in known else []
            edges[name].update(t for t in targets if t != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _door(module: str) -> str | None:
    for door, prefixes in FRONT_DOORS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return door
    return None


def test_no_module_imports_in_a_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function() -> None:
    edges = {"cellpipe.a": {"cellpipe.b"}, "cellpipe.b": {"cellpipe.a"}, "cellpipe.c": set()}
    assert cycles(edges) == [["cellpipe.a", "cellpipe.b"]]


def test_the_widgets_never_use_the_magics() -> None:
    assert "cellpipe.magics" not in graph()["cellpipe.widgets"]


def test_no_front_door_imports_another_front_door() -> None:
    crossings = [
        f"{module} ({door}) imports {target} ({_door(target)})"
        for module, targets in graph().items()
        if (door := _door(module)) is not None
        for target in targets
        if _door(target) not in (None, door)
    ]
    assert crossings == []


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_imports_go_one_way(room: str) -> None:
    allowed = MAY_IMPORT[room]
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module == room or module.startswith(room + ".")
        for target in targets
        if not any(target == a or target.startswith(a + ".") for a in allowed)
    ]
    assert wrong == []


def test_no_private_names_are_imported_across_modules() -> None:
    private = [
        f"{path.relative_to(ROOT)}:{line} imports {module}.{imported}"
        for name, path in modules().items()
        for module, names, line in _imports(name, path)
        if module.startswith("cellpipe")
        for imported in names
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert private == []


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        name: lines
        for path in modules().values()
        if (lines := len(path.read_text(encoding="utf-8").splitlines()))
        > LONGER_FOR_NOW.get(name := str(path.relative_to(ROOT)), MAX_LINES)
    }
    assert long == {}
