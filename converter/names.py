"""Which names a step's code reads from outside, and which it defines or changes.

Flow-sensitive at the top level (a name read before the step binds it is read from outside),
conservative elsewhere: a binding inside `if`/`for`/`try` may not happen, so it does not hide a
later read. Nested scopes (functions, lambdas, classes, comprehensions) are resolved with
Python's own scoping rules; a function's free names are read when it is called.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

# Methods that read an object without changing it; calling anything else on `x` counts as
# changing `x` (the issue asks to be conservative, and these keep common code from handing on
# large values, or making parallel branches look like they both change a frame).
READ_ONLY_METHODS = frozenset(
    [
        "head",
        "tail",
        "describe",
        "info",
        "copy",
        "count",
        "sum",
        "mean",
        "median",
        "std",
        "var",
        "min",
        "max",
        "idxmin",
        "idxmax",
        "nunique",
        "unique",
        "value_counts",
        "groupby",
        "merge",
        "query",
        "astype",
        "to_numpy",
        "tolist",
        "to_list",
        "to_dict",
        "items",
        "keys",
        "values",
        "get",
        "index",
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "score",
        "transform",
        "get_params",
        "isna",
        "isnull",
        "notna",
        "notnull",
        "any",
        "all",
        "round",
        "reshape",
        "ravel",
        "flatten",
        "argmax",
        "argmin",
        "dot",
        "startswith",
        "endswith",
        "format",
        "lower",
        "upper",
        "strip",
        "split",
        "join",
        "replace",
        "find",
        "corr",
        "cov",
        "sample",
        "select_dtypes",
        "filter",
        "drop_duplicates",
        "dropna",
        "fillna",
        "rename",
        "drop",
        "reset_index",
        "set_index",
        "sort_values",
        "sort_index",
        "apply",
        "map",
        "agg",
        "aggregate",
        "plot",
        "hist",
        "show",
        "evaluate",
    ]
)
# Calls that change module state which does not travel between steps (each step starts fresh).
SEED_CALLS = frozenset({"seed", "manual_seed", "set_seed", "set_random_seed"})
WRITE_METHODS = frozenset(
    [
        "to_csv",
        "to_parquet",
        "to_json",
        "to_pickle",
        "to_feather",
        "to_excel",
        "to_hdf",
        "save",
        "savefig",
        "savez",
        "dump",
        "write_text",
        "write_bytes",
        "tofile",
    ]
)


@dataclass
class Usage:
    """What one step's code does with names. Cell indexes locate each name's first use."""

    reads: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    imported: set[str] = field(default_factory=set)
    functions: dict[str, set[str]] = field(default_factory=dict)  # def name -> free names
    bound: set[str] = field(default_factory=set)  # bound for certain at the top level
    written_files: dict[str, int] = field(default_factory=dict)
    string_constants: dict[str, int] = field(default_factory=dict)
    notes: list[tuple[int, str]] = field(default_factory=list)  # (cell index, warning)


def analyse(cells: list[tuple[int, ast.Module]], usage: Usage | None = None) -> Usage:
    """Analyse a step's cells in order (each already parsed)."""
    usage = usage or Usage()
    for cell_index, tree in cells:
        visitor = _TopLevel(usage, cell_index)
        for statement in tree.body:
            visitor.visit(statement)
    _add_deferred_reads(usage)
    return usage


def add_called_function_reads(usage: Usage, functions: dict[str, set[str]]) -> None:
    """A step that uses a shared (prelude) function reads what that function reads."""
    pending = [n for n in usage.reads if n in functions and n not in usage.functions]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for free in sorted(functions[name]):
            if free not in usage.bound:
                usage.reads.setdefault(free, usage.reads[name])
            if free in functions:
                pending.append(free)


def _add_deferred_reads(usage: Usage) -> None:
    # A function's free names are read when it is called, usually later in the same step:
    # they count as reads unless the step binds them for certain.
    first_cell = min(usage.writes.values(), default=0)
    for name, free_names in usage.functions.items():
        cell = usage.writes.get(name, first_cell)
        for free in sorted(free_names):
            if free not in usage.bound and free != name:
                usage.reads.setdefault(free, cell)


def root_name(node: ast.expr) -> str | None:
    """`df` for `df`, `df.a`, `df["a"].b`; None where the object is made by a call."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _TopLevel(ast.NodeVisitor):
    def __init__(self, usage: Usage, cell_index: int) -> None:
        self.usage = usage
        self.cell = cell_index
        self.conditional = 0
        self.aliases: dict[str, str] = {}

    # -- name events --------------------------------------------------------------------
    def read(self, name: str) -> None:
        if name not in self.usage.bound:
            self.usage.reads.setdefault(name, self.cell)

    def bind(self, name: str) -> None:
        self.usage.writes[name] = self.cell
        self.usage.deleted.discard(name)
        self.aliases.pop(name, None)
        if not self.conditional:
            self.usage.bound.add(name)

    def change(self, name: str) -> None:
        if name in self.usage.imported:
            return
        self.usage.writes[name] = self.cell
        original = self.aliases.get(name)
        if original is not None:
            self.usage.notes.append(
                (
                    self.cell,
                    f"{name!r} is another name for {original!r} here; changing {name!r} also "
                    f"changes {original!r} in the notebook, but cellpipe only sees changes made "
                    f"through the name {original!r}; use {original!r} or make a copy",
                )
            )

    def delete(self, name: str) -> None:
        self.usage.writes[name] = self.cell
        self.usage.deleted.add(name)
        self.usage.bound.discard(name)

    def _conditionally(self, nodes: list[ast.stmt]) -> None:
        self.conditional += 1
        for node in nodes:
            self.visit(node)
        self.conditional -= 1

    # -- targets ------------------------------------------------------------------------
    def store(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.store(element)
        elif isinstance(target, ast.Starred):
            self.store(target.value)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target.value)
            if isinstance(target, ast.Subscript):
                self.visit(target.slice)
            root = root_name(target)
            if root is not None:
                self.change(root)

    # -- statements ---------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.store(target)
        if isinstance(node.value, ast.Name):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.aliases[target.id] = node.value.id

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.read(node.target.id)
            self.visit(node.value)
            self.bind(node.target.id)
        else:
            self.visit(node.value)
            self.store(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.store(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.delete(target.id)
            else:
                self.store(target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.conditional += 1
        self.store(node.target)
        self.conditional -= 1
        self._conditionally(node.body + node.orelse)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._conditionally(node.body + node.orelse)

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self._conditionally(node.body + node.orelse)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.store(item.optional_vars)
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_Try(self, node: ast.Try) -> None:
        self._conditionally(node.body)
        self.conditional += 1
        for handler in node.handlers:
            if handler.type is not None:
                self.visit(handler.type)
            if handler.name:
                self.bind(handler.name)
            for statement in handler.body:
                self.visit(statement)
        self.conditional -= 1
        self._conditionally(node.orelse + node.finalbody)

    def visit_TryStar(self, node: ast.TryStar) -> None:
        self.visit_Try(node)  # type: ignore[arg-type]  # same fields as ast.Try

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        self.conditional += 1
        for case in node.cases:
            for name in _pattern_names(case.pattern):
                self.bind(name)
            self.generic_visit(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            for statement in case.body:
                self.visit(statement)
        self.conditional -= 1

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            self.usage.imported.add(name)
            self.bind(name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.usage.notes.append(
                    (
                        self.cell,
                        f"'from {node.module} import *' hides which names it defines; "
                        "cellpipe cannot tell what later steps read from it; import names",
                    )
                )
                continue
            name = alias.asname or alias.name
            self.usage.imported.add(name)
            self.bind(name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expr in [*node.decorator_list, *node.args.defaults]:
            self.visit(expr)
        for default in node.args.kw_defaults:
            if default is not None:
                self.visit(default)
        free, global_writes = scope_globals(node)
        self.usage.functions[node.name] = free
        self.bind(node.name)
        for name in sorted(global_writes):
            self.usage.writes.setdefault(name, self.cell)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._immediate_scope(node)
        self.bind(node.name)

    def visit_Global(self, node: ast.Global) -> None:
        return None

    # -- expressions --------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.read(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.bind(node.id)
        else:
            self.delete(node.id)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.bind(node.target.id)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(default)
        self._immediate_scope(node)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> None:
        self.visit(node.generators[0].iter)
        self._immediate_scope(node)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def _immediate_scope(self, node: ast.AST) -> None:
        # Evaluated where it stands (class bodies, comprehensions; lambdas mostly are).
        free, global_writes = scope_globals(node)
        for name in sorted(free):
            self.read(name)
        self.conditional += 1
        for name in sorted(global_writes):
            self.bind(name)
        self.conditional -= 1

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        self._note_file_writes(node)
        if not isinstance(node.func, ast.Attribute):
            return
        root = root_name(node.func.value)
        if root is None:
            return
        if root in self.usage.imported:
            if node.func.attr in SEED_CALLS:
                self.usage.notes.append(
                    (
                        self.cell,
                        f"{ast.unparse(node.func)}() sets state inside a module, which does not "
                        "travel between steps (each step starts afresh); put it in the imports "
                        "cell so that every step runs it",
                    )
                )
        elif node.func.attr not in READ_ONLY_METHODS:
            self.change(root)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _looks_like_path(node.value):
            self.usage.string_constants.setdefault(node.value, self.cell)

    def _note_file_writes(self, node: ast.Call) -> None:
        paths = [
            a.value
            for a in node.args
            if isinstance(a, ast.Constant)
            and isinstance(a.value, str)
            and _looks_like_path(a.value)
        ]
        if not paths:
            return
        func = node.func
        is_open_for_write = (
            isinstance(func, ast.Name)
            and func.id == "open"
            and any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value[:1] in "wax"
                for a in [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
            )
        )
        if is_open_for_write or (isinstance(func, ast.Attribute) and func.attr in WRITE_METHODS):
            for path in paths:
                self.usage.written_files.setdefault(path, self.cell)


def _looks_like_path(text: str) -> bool:
    return (
        0 < len(text) < 256
        and "\n" not in text
        and " " not in text
        and ("/" in text or "." in text.lstrip(".")[1:])
    )


def _pattern_names(pattern: ast.pattern) -> Iterator[str]:
    for node in ast.walk(pattern):
        if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            yield node.name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest


# --- nested scopes ----------------------------------------------------------------------------


class _Scope:
    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind = kind
        self.parent = parent
        self.bound: set[str] = set()
        self.loads: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.children: list[_Scope] = []
        if parent is not None:
            parent.children.append(self)


class _ScopeCollector(ast.NodeVisitor):
    """Builds the scope tree below one nested-scope node, the way the compiler scopes names."""

    def __init__(self) -> None:
        self.scope: _Scope | None = None
        self.top: list[_Scope] = []  # scopes opened directly by the node being analysed
        self.module_walrus: set[str] = set()

    def enter(self, kind: str) -> _Scope:
        self.scope = _Scope(kind, self.scope)
        if self.scope.parent is None:
            self.top.append(self.scope)
        return self.scope

    def leave(self, scope: _Scope) -> None:
        self.scope = scope.parent

    def bind(self, name: str) -> None:
        if self.scope is not None:
            self.scope.bound.add(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if self.scope is not None:
                self.scope.loads.add(node.id)
        else:
            self.bind(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        if self.scope is not None:
            self.scope.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        if self.scope is not None:
            self.scope.declared_nonlocal.update(node.names)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bind(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bind(node.name)
        self.generic_visit(node)

    def visit_match_case(self, node: ast.match_case) -> None:
        for name in _pattern_names(node.pattern):
            self.bind(name)
        self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            self.bind(node.name)
            for decorator in node.decorator_list:
                self.visit(decorator)
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(default)
        scope = self.enter("function")
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                scope.bound.add(arg.arg)
        body = node.body if isinstance(node.body, list) else [node.body]
        for statement in body:
            self.visit(statement)
        self.leave(scope)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bind(node.name)
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        scope = self.enter("class")
        for statement in node.body:
            self.visit(statement)
        self.leave(scope)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> None:
        self.visit(node.generators[0].iter)
        scope = self.enter("comprehension")
        for index, generator in enumerate(node.generators):
            if index:
                self.visit(generator.iter)
            self._bind_target(generator.target, scope)
            for condition in generator.ifs:
                self.visit(condition)
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for element in elements:
            self.visit(element)
        self.leave(scope)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def _bind_target(self, target: ast.expr, scope: _Scope) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                scope.bound.add(node.id)
            elif isinstance(node, (ast.Attribute, ast.Subscript)):
                self.visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        # PEP 572: the target binds in the nearest enclosing function, or the module.
        scope = self.scope
        while scope is not None and scope.kind == "comprehension":
            scope = scope.parent
        if scope is None:
            self.module_walrus.add(node.target.id)
        else:
            scope.bound.add(node.target.id)


def scope_globals(node: ast.AST) -> tuple[set[str], set[str]]:
    """Global names a nested scope reads, and global names it assigns."""
    collector = _ScopeCollector()
    collector.visit(node)
    reads: set[str] = set()
    writes: set[str] = set(collector.module_walrus)
    pending = list(collector.top)
    while pending:
        scope = pending.pop()
        pending.extend(scope.children)
        writes.update(scope.declared_global & scope.bound)
        reads.update(n for n in scope.loads if _resolves_global(scope, n))
    return reads, writes


def _resolves_global(scope: _Scope, name: str) -> bool:
    if name in scope.declared_global:
        return True
    if name in scope.bound or name in scope.declared_nonlocal:
        return False
    parent = scope.parent
    while parent is not None:
        if parent.kind != "class" and name in parent.bound:
            return name in parent.declared_global
        parent = parent.parent
    return True
