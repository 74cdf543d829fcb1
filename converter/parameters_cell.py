"""The parameters cell, read as papermill and Kale read it: `name = literal` defaults,
annotations (`repeat: int = 2`, `# type:` comments), optional `name = None`, and papermill's
injected-parameters values."""

from __future__ import annotations

import ast
import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

from . import limits
from .cells import Cell
from .model import (
    Diagnostic,
    Parameter,
    ParameterType,
)

INJECTED_PARAMETERS = "injected-parameters"  # papermill's cell of the values it ran with


def read_parameters(cells: list[Cell], diagnostics: list[Diagnostic]) -> dict[str, Parameter]:
    """Papermill's convention: each top-level `name = literal` (or `name: TYPE = literal`) is
    a typed parameter; `name = None` an optional one. papermill's `injected-parameters` cell
    holds the values a papermill run used: they become the defaults."""
    found: dict[str, Parameter] = {}
    for cell in cells:
        tree = _with_type_comments(cell)
        if tree is None:
            continue
        for statement in tree.body:
            parameter = _parameter(statement, cell, diagnostics)
            if parameter is None:
                continue
            if cell.injected:
                found[parameter.name] = _injected(found.get(parameter.name), parameter, diagnostics)
                continue
            if parameter.name in found:
                diagnostics.append(
                    Diagnostic(
                        f"parameter {parameter.name!r} is set twice; the later value wins",
                        cell.index,
                        cell.id,
                        None,
                        "warning",
                    )
                )
            found[parameter.name] = parameter
    return found


def _with_type_comments(cell: Cell) -> ast.Module | None:
    """The cell's tree with `# type: T` comments read (papermill reads them as types)."""
    if cell.tree is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as source.prepare: a SyntaxWarning is no error
            return ast.parse(cell.code, type_comments=True)
    except SyntaxError:  # a `# type:` comment where Python's grammar has no place for one
        return cell.tree


def _parameter(statement: ast.stmt, cell: Cell, diagnostics: list[Diagnostic]) -> Parameter | None:
    line = statement.lineno
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return None  # a docstring or a bare string: documentation
    target: ast.expr | None = None
    value: ast.expr | None = None
    annotation: str | None = None
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target, value = statement.targets[0], statement.value
        if statement.type_comment and statement.type_comment.split():
            annotation = statement.type_comment.split()[0]  # papermill: its first word
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target, value = statement.target, statement.value
        annotation = _annotation_text(statement.annotation)
    if not isinstance(target, ast.Name) or value is None:
        diagnostics.append(
            Diagnostic(
                f"parameters cell, line {line}: only `name = literal` lines are parameters "
                "(papermill's convention); move other code to a step or the functions cell",
                cell.index,
                cell.id,
            )
        )
        return None
    try:
        default = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError):
        diagnostics.append(
            Diagnostic(
                f"parameters cell, line {line}: {target.id} = {ast.unparse(value)} is not a "
                "literal; give a literal default (a number, string, bool, list, dict or None) "
                "and compute from it in a step",
                cell.index,
                cell.id,
            )
        )
        return None
    if default is None:
        return _optional_parameter(target.id, annotation, line, cell, diagnostics)
    kind = _parameter_type(default)
    if kind is None:
        diagnostics.append(
            Diagnostic(
                f"parameters cell, line {line}: {target.id} = {default!r} has no pipeline type; "
                "use an int, float, bool, str, list, dict or None",
                cell.index,
                cell.id,
            )
        )
        return None
    problem = limits.carried_value_problem(default, target.id)  # as JSON and KFP carry it
    if problem is not None:
        diagnostics.append(
            Diagnostic(
                f"parameters cell, line {line}: {problem}",
                cell.index,
                cell.id,
            )
        )
        return None
    optional = False
    if annotation is not None:
        declared = annotated_type(annotation)
        optional = declared.optional
        if declared.kind == "float" and kind == "int":
            default, kind = float(default), "float"  # `rate: float = 1`: a float
        elif declared.kind != kind:
            diagnostics.append(
                Diagnostic(
                    f"parameters cell, line {line}: {target.id} is annotated {annotation} but "
                    f"its default {default!r} is {with_article(kind)}, so it is typed {kind}"
                    + ("" if declared.kind else f" ({annotation} is not a pipeline type)"),
                    cell.index,
                    cell.id,
                    None,
                    "warning",
                )
            )
    return Parameter(target.id, kind, default, cell.index, cell.id, optional)


def _optional_parameter(
    name: str, annotation: str | None, line: int, cell: Cell, diagnostics: list[Diagnostic]
) -> Parameter:
    """`name = None`: optional, of its annotation's type (`name: int = None`), else a str."""
    declared = (
        annotated_type(annotation) if annotation is not None else _Annotated(None, True, True)
    )
    if declared.kind is None and not declared.none_only:
        diagnostics.append(
            Diagnostic(
                f"parameters cell, line {line}: {name} is annotated {annotation}, which is not "
                "a pipeline type (int, float, bool, str, list, dict, or Optional of one), so "
                "it is an optional str",
                cell.index,
                cell.id,
                None,
                "warning",
            )
        )
    return Parameter(name, declared.kind or "str", None, cell.index, cell.id, optional=True)


def _injected(
    declared: Parameter | None, injected: Parameter, diagnostics: list[Diagnostic]
) -> Parameter:
    """papermill's injected value of a parameter: the run's default, of the declared type."""
    if declared is None:
        diagnostics.append(
            Diagnostic(
                f"the injected-parameters cell sets {injected.name!r}, which no parameters cell "
                "declares; it is a parameter of its own (papermill warns of it too)",
                injected.cell_index,
                injected.cell_id,
                None,
                "warning",
            )
        )
        return injected
    value = injected.default
    if value is None:
        return dataclasses.replace(declared, default=None, optional=True)
    if injected.type == declared.type:
        return dataclasses.replace(declared, default=value)
    if declared.type == "float" and injected.type == "int":
        return dataclasses.replace(declared, default=float(value))
    diagnostics.append(
        Diagnostic(
            f"the injected-parameters cell sets {injected.name!r} to {value!r}, "
            f"{with_article(injected.type)}, where the parameters cell has "
            f"{with_article(declared.type)}; it is typed {injected.type}",
            injected.cell_index,
            injected.cell_id,
            None,
            "warning",
        )
    )
    return dataclasses.replace(
        declared, type=injected.type, default=value, optional=declared.optional
    )


def with_article(kind: str) -> str:
    return f"an {kind}" if kind == "int" else f"a {kind}"


@dataclass(frozen=True)
class _Annotated:
    kind: ParameterType | None  # None: no pipeline type (or None alone)
    optional: bool = False
    none_only: bool = False  # `None` / `NoneType`: says only that it may be None


_ANNOTATION_KINDS: dict[str, ParameterType] = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "str": "str",
    "list": "list",
    "List": "list",
    "Sequence": "list",
    "dict": "dict",
    "Dict": "dict",
    "Mapping": "dict",
}


def _annotation_text(annotation: ast.expr) -> str:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value  # a string annotation: `c: "NoneType" = None`
    return ast.unparse(annotation)


def annotated_type(text: str) -> _Annotated:
    """What a parameter's annotation (or `# type:` comment) says: `int`, `Optional[int]`,
    `int | None`, `Union[str, None]`, `List[str]`, `dict[str, int]`, `None`..."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return _Annotated(None)
    if isinstance(tree, ast.Constant) and isinstance(tree.value, str):
        return annotated_type(tree.value)
    members = _union_members(tree)
    nones = [m for m in members if _is_none(m)]
    kinds = {_plain_kind(m) for m in members if not _is_none(m)}
    if not kinds:
        return _Annotated(None, optional=True, none_only=True)
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    return _Annotated(kind, optional=bool(nones))


def _union_members(tree: ast.expr) -> list[ast.expr]:
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.BitOr):
        return [*_union_members(tree.left), *_union_members(tree.right)]
    if isinstance(tree, ast.Subscript) and _last_name(tree.value) in ("Optional", "Union"):
        inner = tree.slice
        members = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if _last_name(tree.value) == "Optional":
            members.append(ast.Constant(None))
        return [m for member in members for m in _union_members(member)]
    return [tree]


def _is_none(tree: ast.expr) -> bool:
    return (isinstance(tree, ast.Constant) and tree.value is None) or _last_name(tree) in (
        "None",
        "NoneType",
    )


def _plain_kind(tree: ast.expr) -> ParameterType | None:
    base = tree.value if isinstance(tree, ast.Subscript) else tree  # List[str]: a list
    return _ANNOTATION_KINDS.get(_last_name(base) or "")


def _last_name(tree: ast.expr) -> str | None:
    if isinstance(tree, ast.Name):
        return tree.id
    if isinstance(tree, ast.Attribute):  # typing.Optional, t.List
        return tree.attr
    return None


_PYTHON_TYPES: tuple[tuple[type, ParameterType], ...] = (
    (bool, "bool"),  # before int: a bool is an int to isinstance
    (int, "int"),
    (float, "float"),
    (str, "str"),
    (list, "list"),
    (dict, "dict"),
)


def _parameter_type(value: Any) -> ParameterType | None:
    return next((kind for python, kind in _PYTHON_TYPES if isinstance(value, python)), None)
