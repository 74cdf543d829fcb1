"""Nested scopes (functions, lambdas, classes, comprehensions) resolved with Python's own
scoping rules: which free names a nested scope reads, which globals it writes."""

from __future__ import annotations

import ast
from collections.abc import Iterator


class Scope:
    def __init__(self, kind: str, parent: Scope | None) -> None:
        self.kind = kind
        self.parent = parent
        self.bound: set[str] = set()
        self.loads: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.children: list[Scope] = []
        if parent is not None:
            parent.children.append(self)


class ScopeCollector(ast.NodeVisitor):
    """Builds the scope tree below one nested-scope node, the way the compiler scopes names."""

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self.top: list[Scope] = []  # scopes opened directly by the node being analysed
        self.module_walrus: set[str] = set()

    def enter(self, kind: str) -> Scope:
        self.scope = Scope(kind, self.scope)
        if self.scope.parent is None:
            self.top.append(self.scope)
        return self.scope

    def leave(self, scope: Scope) -> None:
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
        for name in pattern_names(node.pattern):
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

    def _bind_target(self, target: ast.expr, scope: Scope) -> None:
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
    collector = ScopeCollector()
    collector.visit(node)
    reads: set[str] = set()
    writes: set[str] = set(collector.module_walrus)
    pending = list(collector.top)
    while pending:
        scope = pending.pop()
        pending.extend(scope.children)
        writes.update(scope.declared_global & scope.bound)
        reads.update(n for n in scope.loads if resolves_global(scope, n))
    return reads, writes


def resolves_global(scope: Scope, name: str) -> bool:
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


def pattern_names(pattern: ast.pattern) -> Iterator[str]:
    for node in ast.walk(pattern):
        if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            yield node.name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest
