"""Which names a step's code reads from outside, and which it defines or changes.

Flow-sensitive at the top level (a name read before the step binds it is read from outside),
conservative elsewhere: a binding inside `if`/`for`/`try` may not happen, so it does not hide a
later read. Nested scopes (functions, lambdas, classes, comprehensions) are resolved with
Python's own scoping rules; a function's free names are read when it is called.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .name_lists import (
    CONTAINER_CALLS,
    EXTEND_METHODS,
    FRESH_CALLS,
    IN_PLACE_CALLS,
    PART_METHODS,
    PICK_CALLS,
    PLAIN_BUILTINS,
    READ_ONLY_METHODS,
    SEED_CALLS,
    SHARING_CALLS,
)
from .name_shapes import (
    MAX_FOLLOWED_CALLS,
    NO_EFFECTS,
    Effects,
    FunctionNode,
    Heap,
    Shape,
    SummaryMemo,
    added_by,
    function_parameters,
    in_place,
    listing,
    looks_like_path,
    root_name,
    selects_rows,
    short,
    summary_key,
    target_names,
    union,
    written_paths,
)
from .scopes import pattern_names, scope_globals


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
    # Given: functions whose bodies calls are followed into (the functions cell's), and names
    # whose values cannot change in place (parameters that are numbers, strings or booleans).
    function_defs: dict[str, FunctionNode] = field(default_factory=dict)
    fixed: set[str] = field(default_factory=set)
    # Found, for the data flow between steps: at the step's end, the names whose objects hold
    # the objects of other names (`combine = [train, test]`: combine -> {train, test}); and
    # the received names whose objects the step changed in place, or whose elements it changed.
    holds: dict[str, set[str]] = field(default_factory=dict)
    changed_in_place: dict[str, int] = field(default_factory=dict)
    changed_inside: dict[str, int] = field(default_factory=dict)
    memo: SummaryMemo = field(default_factory=dict, repr=False, compare=False)  # the compile's


def analyse(cells: list[tuple[int, ast.Module]], usage: Usage | None = None) -> Usage:
    """Analyse a step's cells in order (each already parsed)."""
    usage = usage or Usage()
    heap = Heap()
    for cell_index, tree in cells:
        visitor = _TopLevel(usage, cell_index, heap)
        for statement in tree.body:
            visitor.visit(statement)
    _add_deferred_reads(usage)
    usage.holds = heap.holdings(usage.imported)
    return usage


def step_usage(prelude: Usage, fixed: set[str]) -> Usage:
    """Where a step's analysis starts: the modules the prelude imports, the functions it
    defines (calls are followed into their bodies), and names whose values cannot change in
    place."""
    return Usage(
        imported=set(prelude.imported),
        function_defs=dict(prelude.function_defs),
        fixed=set(fixed),
        memo=prelude.memo,
    )


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


class _TopLevel(ast.NodeVisitor):
    def __init__(
        self,
        usage: Usage,
        cell_index: int,
        heap: Heap | None = None,
        summaries: dict[int, Effects] | None = None,
        depth: int = 0,
    ) -> None:
        self.usage = usage
        self.cell = cell_index
        self.conditional = 0
        self.heap = heap or Heap()
        self.summaries = summaries if summaries is not None else {}
        self.depth = depth  # how many function calls deep (when summarising a function)
        self.certain: list[set[str]] = []  # bound for certain inside a loop body or handler
        self.local: list[set[str]] = []  # comprehension variables
        self.quiet = 0  # reads were already counted (a comprehension's second pass)
        self.values: dict[int, frozenset[int]] = {}
        self.returned: set[int] = set()
        self.changed: set[int] = set()
        self.strong = 0  # a loop target: it holds the element for certain inside the body
        self.noted: set[str] = set()

    # -- name events --------------------------------------------------------------------
    def read(self, name: str) -> None:
        if self.quiet or self._is_local(name) or any(name in s for s in self.certain):
            return
        if name not in self.usage.bound:
            self.usage.reads.setdefault(name, self.cell)

    def _is_local(self, name: str) -> bool:
        return any(name in scope for scope in self.local)

    def bind(self, name: str, objects: frozenset[int] | None = None) -> None:
        """`name` now holds `objects` (a new object when not given)."""
        if objects is None:
            objects = frozenset([self.heap.new()])
        if (
            self.conditional
            and not self.strong
            and not self._is_local(name)
            and not (self.heap.saturated)
        ):
            objects |= self.heap.points.get(name) or frozenset([self._received(name)])
        self.heap.point(name, objects)
        if self._is_local(name):
            return
        self.usage.function_defs.pop(name, None)
        self.usage.writes[name] = self.cell
        self.usage.deleted.discard(name)
        if not self.conditional:
            self.usage.bound.add(name)

    def _received(self, name: str) -> int:
        return self.heap.received(name, immutable=name in self.usage.fixed)

    def change(self, name: str) -> None:
        if name in self.usage.imported or self._is_local(name):
            return
        self.usage.writes[name] = self.cell

    def delete(self, name: str) -> None:
        self.usage.writes[name] = self.cell
        self.usage.deleted.add(name)
        self.usage.bound.discard(name)
        if name in self.heap.points:
            self.heap.forget(name)

    def change_objects(
        self, objects: frozenset[int], what: str | ast.expr, up: bool = True
    ) -> None:
        """The objects are changed in place (through `what`, for the warning)."""
        heap = self.heap
        if heap.saturated:
            self._change_everything()
            return
        if up:
            sure, guessed, inside = heap.spread(objects)
        else:
            sure, guessed, inside = set(objects - heap.immutable), set(), set()
        self.changed |= sure | guessed
        written_before = set(self.usage.writes)
        for obj in sorted(sure | guessed):
            name = heap.received_by.get(obj)
            if name is not None and obj in heap.points.get(name, ()):
                self._mark(name, received=True)
                if obj in inside:
                    self.usage.changed_inside.setdefault(name, self.cell)
                else:
                    self.usage.changed_in_place.setdefault(name, self.cell)
        sure_names = heap.names_of(sure)
        guessed_names = heap.names_of(guessed) - sure_names
        for name in sorted(sure_names | guessed_names):
            self._mark(name, received=False)
        extra = sorted(
            n
            for n in guessed_names - written_before
            if not self._is_local(n) and n not in self.usage.imported
        )
        if extra:
            calls = sorted({heap.opaque[o][1] for o in heap.spread(objects)[0] if o in heap.opaque})
            self._note_guess(what, extra, calls)

    def _change_everything(self) -> None:
        heap = self.heap
        if heap.marked_all:
            names, heap.unmarked = heap.unmarked, []
        else:
            heap.marked_all = True
            names = list(heap.points)
            heap.unmarked = []
            self.usage.notes.append(
                (
                    self.cell,
                    "so many of this step's names share objects that cellpipe stops following "
                    "each change here: the step hands on every value it reads or makes that a "
                    "later step reads (slower, never stale); splitting the step helps",
                )
            )
        for name in names:
            objects = heap.points.get(name, frozenset())
            if not objects <= heap.immutable:
                received = heap.received_as.get(name)
                self._mark(name, received=received is not None and received in objects)

    def _mark(self, name: str, received: bool) -> None:
        if self._is_local(name) or name in self.usage.imported:
            return
        if received:
            self.read(name)
        self.usage.writes[name] = self.cell

    def _note_guess(self, what: str | ast.expr, names: list[str], calls: list[str]) -> None:
        if not isinstance(what, str):
            what = short(what)
        listed = listing(names)
        key = f"{what}|{listed}"
        if key in self.noted:
            return
        self.noted.add(key)
        source = " and ".join(calls) if calls else "a call"
        them = "it" if len(names) == 1 else "them"
        self.usage.notes.append(
            (
                self.cell,
                f"{what!r} may be (part of) what {source} returns, code cellpipe cannot see "
                f"into, so changing {what!r} may change {listed}: this step hands {them} on as "
                "changed too (slower, never stale); if that code returns a new object, copy it "
                f"where it is made, or change {them} by name",
            )
        )

    def _conditionally(self, nodes: list[ast.stmt]) -> None:
        self.conditional += 1
        for node in nodes:
            self.visit(node)
        self.conditional -= 1

    def _body_with(self, names: set[str], nodes: list[ast.stmt]) -> None:
        # A loop body or handler: its target is bound for certain inside it.
        self.certain.append(names)
        self._conditionally(nodes)
        self.certain.pop()

    # -- values -------------------------------------------------------------------------
    def value(self, node: ast.expr) -> frozenset[int]:
        """The objects an expression (already visited) may evaluate to."""
        key = id(node)
        found = self.values.get(key)
        if found is None:
            found = self._value(node)
            self.values[key] = found
        return found

    def _value(self, node: ast.expr) -> frozenset[int]:
        heap = self.heap
        if isinstance(node, ast.Name):
            objects = heap.points.get(node.id)
            if objects is None:
                objects = frozenset([self._received(node.id)])
                heap.point(node.id, objects)
            return objects
        if isinstance(node, ast.Subscript) and selects_rows(node.slice):
            return frozenset([heap.new()])  # `df[df.age > 30]`, `df[["a", "b"]]`: a copy
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            return heap.elements_of(self.value(node.value))
        if isinstance(node, (ast.Starred, ast.Await)):
            return self.value(node.value)
        if isinstance(node, ast.NamedExpr):
            return self.value(node.value)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            inner = [self.value(e) for e in node.elts]
            return frozenset([heap.container(frozenset().union(*inner))])
        if isinstance(node, ast.Dict):
            inner = [self.value(v) for v in node.values]
            return frozenset([heap.container(frozenset().union(*inner))])
        if isinstance(node, ast.IfExp):
            return self.value(node.body) | self.value(node.orelse)
        if isinstance(node, ast.BoolOp):
            return frozenset().union(*(self.value(v) for v in node.values))
        if isinstance(node, ast.Call):
            return self._call_value(node)
        if isinstance(node, (ast.Constant, ast.JoinedStr)):
            return frozenset([heap.new(immutable=True)])
        obj = heap.new()
        if isinstance(node, ast.Lambda):
            heap.callables.add(obj)
        return frozenset([obj])

    def shape(self, node: ast.expr) -> Shape:
        """What an assigned expression may be, per position for a tuple or list literal."""
        objects = self.value(node)
        if isinstance(node, (ast.Tuple, ast.List)) and not any(
            isinstance(e, ast.Starred) for e in node.elts
        ):
            return Shape(objects, tuple(self.shape(e) for e in node.elts))
        return Shape(objects)

    def iteration(self, node: ast.expr) -> Shape:
        """What a loop over `node` binds its target to, each time round."""
        heap = self.heap
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            self.value(node)  # the container itself, made once
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return Shape(heap.elements_of(self.value(node)))
            return union([self.shape(e) for e in node.elts])
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            plain = [a for a in node.args if not isinstance(a, ast.Starred)]
            if len(plain) == len(node.args):
                if name == "zip" and plain:
                    return self._tuple_shape([self.iteration(a) for a in plain])
                if name == "enumerate" and plain:
                    count = Shape(frozenset([heap.new(immutable=True)]))
                    return self._tuple_shape([count, self.iteration(plain[0])])
                if (
                    name in ("list", "tuple", "sorted", "reversed", "iter", "set")
                    and plain
                    and not node.keywords
                ):
                    return self.iteration(plain[0])
                if name == "range":
                    return Shape(frozenset([heap.new(immutable=True)]))
            if isinstance(func, ast.Attribute) and not node.args:
                if func.attr == "items":
                    elements = Shape(heap.elements_of(self.value(func.value)))
                    return self._tuple_shape([elements, elements])
                if func.attr in ("values", "keys"):
                    return Shape(heap.elements_of(self.value(func.value)))
        return Shape(heap.elements_of(self.value(node)))

    def _tuple_shape(self, parts: list[Shape]) -> Shape:
        objects = frozenset().union(*(p.objects for p in parts))
        return Shape(frozenset([self.heap.container(objects)]), tuple(parts))

    def _call_value(self, node: ast.Call) -> frozenset[int]:
        heap = self.heap
        func = node.func
        arguments = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(func, ast.Name) and func.id in self.usage.function_defs:
            return self._returned_by(node, self._effects(func.id))
        name = func.id if isinstance(func, ast.Name) else None
        if isinstance(func, ast.Attribute):
            root = root_name(func.value)
            if root is None or root not in self.usage.imported:  # a method of an object
                receiver = self.value(func.value)
                if func.attr == "copy" and not node.args and not node.keywords:
                    return frozenset([heap.container(heap.elements_of(receiver))])
                if func.attr in ("values", "items", "keys"):
                    return receiver  # a view: its elements are the receiver's
                if func.attr in PART_METHODS:
                    return heap.elements_of(receiver)
                if func.attr in READ_ONLY_METHODS or func.attr.startswith("fit_"):
                    return frozenset([heap.new()])
                return receiver  # `model.fit(X, y)` returns the model
            name = func.attr
            if name not in SHARING_CALLS:
                return frozenset([heap.new()])  # through a module: a new object
        if name is None:
            return frozenset([heap.new()])
        first = self.value(node.args[0]) if node.args else frozenset()
        if name in SHARING_CALLS:
            return first or frozenset([heap.new()])
        if name in PICK_CALLS:
            if len(node.args) == 1:
                return heap.elements_of(first)
            return frozenset().union(*(self.value(a) for a in node.args))
        if name in CONTAINER_CALLS:
            given = frozenset().union(*(self.value(a) for a in node.args))
            return frozenset([heap.container(heap.elements_of(given))])
        if name in FRESH_CALLS or name[:1].isupper() or name in PLAIN_BUILTINS:
            return frozenset([heap.new()])
        if isinstance(func, ast.Name) and not self._unseen_code(func.id):
            return frozenset([heap.new()])
        # Code cellpipe cannot see into may return any of what it is given (or an element of a
        # list given to it): an opaque result.
        candidates = frozenset().union(*(self.value(a) for a in arguments)) - heap.immutable
        candidates |= heap.elements_of(candidates & heap.known)
        if not candidates:
            return frozenset([heap.new()])
        obj = heap.new()
        heap.opaque[obj] = (candidates, short(node))
        return frozenset([obj])

    def _unseen_code(self, name: str) -> bool:
        """Whether calling `name` runs code cellpipe cannot see: an imported function, one a
        step before made, a lambda. (What a step makes by calling a class, a model or a loss
        function, is taken to return new objects when called.)"""
        objects = self.heap.points.get(name)
        return (
            name in self.usage.imported
            or objects is None
            or any(o in self.heap.received_by or o in self.heap.callables for o in objects)
        )

    # -- functions defined in the notebook ----------------------------------------------
    def _effects(self, name: str) -> Effects:
        node = self.usage.function_defs[name]
        key = id(node)
        known = self.summaries.get(key)
        if known is not None:
            return known
        if self.depth >= MAX_FOLLOWED_CALLS:
            positional, named, vararg, kwarg = function_parameters(node)
            return Effects(positional, named, vararg, kwarg, unknown=True)
        usage, before = self.usage, dict(self.summaries)
        situation = summary_key(
            node, self.depth, usage.imported, usage.fixed, usage.function_defs, before
        )
        if situation in usage.memo:  # followed before in the same situation: the same result
            effects, added = usage.memo[situation]
            self.summaries.update(added)
            return effects
        self.summaries[key] = NO_EFFECTS  # while it is followed (recursion)
        effects = _summarise(node, usage, self.summaries, self.depth + 1)
        self.summaries[key] = effects
        added = {k: v for k, v in self.summaries.items() if before.get(k) is not v}
        usage.memo[situation] = (effects, added)
        return effects

    def _arguments(self, node: ast.Call, effects: Effects) -> dict[str, frozenset[int]]:
        """parameter -> the objects the call gives it."""
        given: dict[str, frozenset[int]] = {}

        def give(parameter: str | None, objects: frozenset[int]) -> None:
            if parameter is not None:
                given[parameter] = given.get(parameter, frozenset()) | objects

        for index, argument in enumerate(node.args):
            if isinstance(argument, ast.Starred):
                objects = self.heap.elements_of(self.value(argument.value))
                for parameter in [*effects.positional[index:], effects.vararg]:
                    give(parameter, objects)
                break
            if index < len(effects.positional):
                give(effects.positional[index], self.value(argument))
            else:
                give(effects.vararg, self.value(argument))
        for keyword in node.keywords:
            objects = self.value(keyword.value)
            if keyword.arg is None:  # **options
                for parameter in [*effects.named, effects.kwarg]:
                    give(parameter, self.heap.elements_of(objects))
            elif keyword.arg in effects.named:
                give(keyword.arg, objects)
            else:
                give(effects.kwarg, objects)
        return given

    def _returned_by(self, node: ast.Call, effects: Effects) -> frozenset[int]:
        heap = self.heap
        given = self._arguments(node, effects)
        result: set[int] = set()
        for parameter in effects.returns:
            result.update(given.get(parameter, ()))
        opaque = (
            frozenset().union(*(given.get(p, frozenset()) for p in effects.returns_opaque))
            - heap.immutable
        )
        if opaque or effects.unknown:
            obj = heap.new()
            every = frozenset().union(*given.values()) if effects.unknown else opaque
            heap.opaque[obj] = (
                every | heap.elements_of(every),
                " and ".join(sorted(set(effects.returns_opaque.values()))) or short(node),
            )
            result.add(obj)
        return frozenset(result) or frozenset([heap.new()])

    def _call_effects(self, node: ast.Call) -> None:
        """What a call changes besides the object a method is called on."""
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.usage.function_defs:
            effects = self._effects(func.id)
            given = self._arguments(node, effects)
            changed = set(given) if effects.unknown else effects.changes
            for parameter in sorted(changed & set(given)):
                self.change_objects(given[parameter], func.id)
            for name in sorted(effects.globals_changed):
                self.change(name)
                self.change_objects(self.value_of_name(name), name)
            return
        called = (
            func.id
            if isinstance(func, ast.Name)
            else (func.attr if isinstance(func, ast.Attribute) else None)
        )
        if called is None or not node.args:
            return
        if called in IN_PLACE_CALLS or (called.endswith("_") and not called.startswith("_")):
            first = node.args[0]
            root = root_name(first)
            if root is not None:
                self.change(root)
            self.change_objects(self.value(first), root or short(first))

    def value_of_name(self, name: str) -> frozenset[int]:
        objects = self.heap.points.get(name)
        if objects is None:
            objects = frozenset([self._received(name)])
            self.heap.point(name, objects)
        return objects

    # -- targets ------------------------------------------------------------------------
    def store(self, target: ast.expr, shape: Shape | None = None) -> None:
        if shape is None:
            shape = Shape(frozenset([self.heap.new()]))
        if isinstance(target, ast.Name):
            self.bind(target.id, shape.objects)
        elif isinstance(target, (ast.Tuple, ast.List)):
            starred = any(isinstance(e, ast.Starred) for e in target.elts)
            if shape.parts is not None and not starred and len(shape.parts) == len(target.elts):
                for element, part in zip(target.elts, shape.parts, strict=True):
                    self.store(element, part)
                return
            inner = Shape(self.heap.elements_of(shape.objects))
            for element in target.elts:
                if isinstance(element, ast.Starred):
                    rest = Shape(frozenset([self.heap.container(inner.objects)]))
                    self.store(element.value, rest)
                else:
                    self.store(element, inner)
        elif isinstance(target, ast.Starred):
            self.store(target.value, shape)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target.value)
            if isinstance(target, ast.Subscript):
                self.visit(target.slice)
            root = root_name(target)
            if root is not None:
                self.change(root)
            holder = self.value(target.value)
            for obj in holder:
                self.heap.hold(obj, shape.objects)
            self.change_objects(holder, root or short(target.value))

    # -- statements ---------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        shape = self.shape(node.value)
        for target in node.targets:
            self.store(target, shape)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            name = node.target.id
            self.read(name)
            self.visit(node.value)
            objects = self.value_of_name(name)
            # `b = a; b += [1]` changes a's list; a part (`n = df.shape[0]; n += 1`) is not
            # followed up to what holds it.
            self.change_objects(objects, name, up=False)
            self.bind(name, objects)
        else:
            self.visit(node.value)
            self.store(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.store(node.target, self.shape(node.value))

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.returned.update(self.value(node.value))

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.delete(target.id)
            else:
                self.store(target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        shape = self.iteration(node.iter)
        names = {n for n in target_names(node.target) if not self._is_local(n)}
        before = {n: self.heap.points.get(n) for n in names}
        # Inside the body the target holds an element for certain; after the loop it may
        # still hold what it held before (the loop may not run).
        self.conditional += 1
        self.strong += 1
        self.store(node.target, shape)
        self.strong -= 1
        self.conditional -= 1
        self._body_with(names, node.body)
        for name, old in before.items():
            if self.heap.saturated:
                break
            kept = old if old is not None else frozenset([self._received(name)])
            self.heap.point(name, self.heap.points.get(name, frozenset()) | kept)
        self._conditionally(node.orelse)

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
                self.store(item.optional_vars, self.shape(item.context_expr))
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
                # `except E as e`: e is bound inside the handler and unbound after it.
                self.heap.point(handler.name, frozenset([self.heap.new()]))
                self._body_with({handler.name}, handler.body)
                self.heap.forget(handler.name)
            else:
                for statement in handler.body:
                    self.visit(statement)
        self.conditional -= 1
        self._conditionally(node.orelse + node.finalbody)

    def visit_TryStar(self, node: ast.TryStar) -> None:
        self.visit_Try(node)  # type: ignore[arg-type]  # same fields as ast.Try

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        subject = self.value(node.subject)
        self.conditional += 1
        for case in node.cases:
            names = set(pattern_names(case.pattern))
            for name in names:
                self.bind(name, subject | self.heap.elements_of(subject))
            self.generic_visit(case.pattern)
            self.certain.append(names)
            if case.guard is not None:
                self.visit(case.guard)
            for statement in case.body:
                self.visit(statement)
            self.certain.pop()
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
        if not self._is_local(node.name):
            self.usage.function_defs[node.name] = node
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
        self.bind(node.target.id, self.value(node.value))

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(default)
        self._immediate_scope(node)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> None:
        self.visit(node.generators[0].iter)
        self._immediate_scope(node)
        # Again, for what it changes (`[d.fillna(0, inplace=True) for d in frames]`); its
        # variables are its own, and its reads are counted above.
        heap = self.heap
        scope: set[str] = set()
        saved: dict[str, frozenset[int] | None] = {}
        self.quiet += 1
        self.conditional += 1
        self.local.append(scope)
        for index, generator in enumerate(node.generators):
            if index:
                self.visit(generator.iter)
            shape = self.iteration(generator.iter)
            for name in target_names(generator.target) - scope:
                saved[name] = heap.points.get(name)
                scope.add(name)
            self.store(generator.target, shape)
            for condition in generator.ifs:
                self.visit(condition)
        for element in [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]:
            self.visit(element)
        self.local.pop()
        self.conditional -= 1
        self.quiet -= 1
        for name, old in saved.items():
            if old is None:
                heap.forget(name)
            else:
                heap.point(name, old)

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
        for path in written_paths(node):
            self.usage.written_files.setdefault(path, self.cell)
        self._call_effects(node)
        if not isinstance(node.func, ast.Attribute):
            return
        receiver = node.func.value
        method = node.func.attr
        root = root_name(receiver)
        if root is not None and root in self.usage.imported:
            if method in SEED_CALLS:
                self.usage.notes.append(
                    (
                        self.cell,
                        f"{ast.unparse(node.func)}() sets state inside a module, which does not "
                        "travel between steps (each step starts afresh); put it in the imports "
                        "cell so that every step runs it",
                    )
                )
            return
        if method in READ_ONLY_METHODS and not in_place(node):
            return
        objects = self.value(receiver)
        added = added_by(node)
        if added is not None:
            given = frozenset().union(*(self.value(a) for a in added))
            if method in EXTEND_METHODS:
                given = self.heap.elements_of(given)
            for obj in objects:
                self.heap.hold(obj, given)
        if root is not None:
            self.change(root)
        self.change_objects(objects, root or receiver)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and looks_like_path(node.value):
            self.usage.string_constants.setdefault(node.value, self.cell)


def _summarise(
    node: FunctionNode, usage: Usage, summaries: dict[int, Effects], depth: int
) -> Effects:
    """Follow a function's body: which of its parameters (and globals) it changes in place,
    and which it may return."""
    positional, named, vararg, kwarg = function_parameters(node)
    every = {*positional, *named, *(n for n in (vararg, kwarg) if n)}
    free, _ = scope_globals(node)
    scratch = Usage(
        imported=usage.imported - every,
        function_defs=dict(usage.function_defs),
        fixed=usage.fixed - every,
        memo=usage.memo,
    )
    heap = Heap()
    visitor = _TopLevel(scratch, 0, heap, summaries, depth)
    own = {heap.received(name): name for name in sorted(every)}
    for obj, name in own.items():
        heap.point(name, frozenset([obj]))
    for statement in node.body:
        visitor.visit(statement)

    def parameter_of(obj: int) -> str | None:
        if obj in own:
            return own[obj]
        return next((own[h] for h in heap.holders.get(obj, ()) if h in own), None)

    # What it returns is (part of) a parameter's object, or holds one: the closure upwards
    # through holders and, apart, downwards through elements (a copy holds a parameter's
    # elements, not the parameter).
    reachable: set[int] = set()
    for edges in (heap.holders, heap.elements):
        todo = list(visitor.returned)
        seen: set[int] = set()
        while todo:
            obj = todo.pop()
            if obj not in seen:
                seen.add(obj)
                todo.extend(edges.get(obj, ()))
        reachable |= seen
    returns = {own[obj] for obj in reachable if obj in own}
    returns_opaque: dict[str, str] = {}
    for obj in reachable & set(heap.opaque):
        candidates, call = heap.opaque[obj]
        for candidate in candidates:
            parameter = parameter_of(candidate)
            if parameter is not None:
                returns_opaque.setdefault(parameter, call)
    return Effects(
        positional=positional,
        named=named,
        vararg=vararg,
        kwarg=kwarg,
        changes={own[obj] for obj in visitor.changed if obj in own},
        returns=returns,
        returns_opaque=returns_opaque,
        globals_changed={
            name
            for name in free
            if name in heap.received_as and heap.received_as[name] in visitor.changed
        },
    )
