"""What names may hold, for the data-flow analysis (names.py): abstract objects per step
(`Heap`), the shape of an expression's value, what a function does to its arguments
(`Effects`), and small readers of the syntax tree they share."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .name_lists import EXTEND_METHODS, WRITE_METHODS

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


# --- what names may hold ------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What an expression may evaluate to, and per position where it is a tuple of known length."""

    objects: frozenset[int]
    parts: tuple[Shape, ...] | None = None


class Heap:
    """Abstract objects for one step: which names may hold which, and what holds what.

    An object stands for a value the step makes or receives: the value a name held when the step
    began (`received`), one per literal or call, and one unknown element for each container whose
    elements are not all known. A change of an object changes every object holding it (a list
    of frames changes when one of its frames does); an object that a call of unseen code returned
    may be any of the call's arguments (`opaque`), which only a guess can follow.
    """

    def __init__(self) -> None:
        self.count = 0
        self.points: dict[str, frozenset[int]] = {}
        self.pointed_by: dict[int, set[str]] = {}
        self.elements: dict[int, set[int]] = {}
        self.holders: dict[int, set[int]] = {}
        self.known: set[int] = set()  # containers whose elements are all known (literals)
        self.unknown_element: dict[int, int] = {}
        self.received_by: dict[int, str] = {}
        self.received_as: dict[str, int] = {}
        self.immutable: set[int] = set()
        self.opaque: dict[int, tuple[frozenset[int], str]] = {}  # object -> (may be, call)
        self.callables: set[int] = set()  # lambdas: code that may return what it is given
        self.work = 0  # objects visited following changes, against WORK_BUDGET
        self.unmarked: list[str] = []  # names bound or read since all were taken as changed
        self.marked_all = False

    def new(self, immutable: bool = False) -> int:
        self.count += 1
        if immutable:
            self.immutable.add(self.count)
        return self.count

    def received(self, name: str, immutable: bool = False) -> int:
        obj = self.received_as.get(name)
        if obj is None:
            obj = self.new(immutable)
            self.received_as[name] = obj
            self.received_by[obj] = name
        return obj

    @property
    def saturated(self) -> bool:
        return self.work > WORK_BUDGET

    def point(self, name: str, objects: frozenset[int]) -> None:
        if len(objects) > WIDE_LIMIT:
            self.work = WORK_BUDGET + 1
        if self.saturated:  # who holds what no longer matters: every name counts as changed
            self.points[name] = objects
            self.unmarked.append(name)
            return
        for obj in self.points.get(name, ()):
            self.pointed_by[obj].discard(name)
        self.points[name] = objects
        for obj in objects:
            self.pointed_by.setdefault(obj, set()).add(name)

    def forget(self, name: str) -> None:
        self.point(name, frozenset())
        del self.points[name]

    def hold(self, container: int, objects: frozenset[int]) -> None:
        if container in self.immutable:
            return
        for obj in objects - self.immutable:
            self.elements.setdefault(container, set()).add(obj)
            self.holders.setdefault(obj, set()).add(container)

    def container(self, objects: frozenset[int]) -> int:
        obj = self.new()
        self.known.add(obj)
        self.hold(obj, objects)
        return obj

    def elements_of(self, objects: frozenset[int]) -> frozenset[int]:
        """What a container's elements (or an object's attributes) may be."""
        found: set[int] = set()
        for obj in objects - self.immutable:
            found.update(self.elements.get(obj, ()))
            if obj not in self.known:
                element = self.unknown_element.get(obj)
                if element is None:
                    element = self.new()
                    self.unknown_element[obj] = element
                    self.hold(obj, frozenset([element]))
                found.add(element)
        return frozenset(found)

    def spread(self, objects: frozenset[int]) -> tuple[set[int], set[int], set[int]]:
        """What a change of `objects` changes: for certain, only by a guess, and which of
        those through one of their elements.

        A change of an object changes what holds it. An opaque call's result may be any of its
        arguments: a guess, followed up only into lists and dicts this step built (not into a
        received object's unknown elements)."""
        sure: set[int] = set()
        guessed: set[int] = set()
        inside: set[int] = set()
        todo = [(obj, False, False) for obj in objects]
        while todo:
            obj, guess, through_element = todo.pop()
            self.work += 1
            if obj in self.immutable:
                continue
            if through_element:
                inside.add(obj)
            if obj in sure or (guess and obj in guessed):
                continue
            (guessed if guess else sure).add(obj)
            for holder in self.holders.get(obj, ()):
                if not guess or holder in self.known:
                    todo.append((holder, guess, True))
            if obj in self.opaque:
                todo.extend((candidate, True, False) for candidate in self.opaque[obj][0])
        return sure, guessed - sure, inside

    def names_of(self, objects: set[int]) -> set[str]:
        return {name for obj in objects for name in self.pointed_by.get(obj, ())}

    def holdings(self, skip: set[str]) -> dict[str, set[str]]:
        """name -> the other names whose objects its objects hold (up to three deep): the
        lists, dicts and objects the step built from them, or put them into."""
        result: dict[str, set[str]] = {}
        unknown = set(self.unknown_element.values())
        for name, objects in self.points.items():
            if name in skip or not any(obj in self.elements for obj in objects):
                continue
            inner: set[int] = set()
            level = {e for obj in objects for e in self.elements.get(obj, ())}
            for _ in range(3):
                level -= inner
                if not level or self.work > WORK_BUDGET:
                    break
                self.work += len(level)
                inner |= level
                level = {e for obj in level for e in self.elements.get(obj, ())}
            # What the step put there itself, not the unknown elements of what it received
            # (`X = df[features]` may be a copy).
            members = self.names_of(inner - unknown) - skip - {name}
            if members:
                result[name] = members
        return result


def root_name(node: ast.expr) -> str | None:
    """`df` for `df`, `df.a`, `df["a"].b`; None where the object is made by a call."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


@dataclass
class Effects:
    """What calling a function defined in the notebook does to what it is given."""

    positional: list[str]
    named: set[str]
    vararg: str | None = None
    kwarg: str | None = None
    changes: set[str] = field(default_factory=set)  # parameters whose objects it changes
    returns: set[str] = field(default_factory=set)  # parameters it may return (or a part of)
    # parameters that what it returns from a call of unseen code may be -> that call
    returns_opaque: dict[str, str] = field(default_factory=dict)
    globals_changed: set[str] = field(default_factory=set)
    unknown: bool = False  # too deep to follow: taken to change every argument


NO_EFFECTS = Effects([], set())
# The summaries of the notebook's functions worked out in one compile, each by everything its
# working out reads (`summary_key`), with what working it out added to the summaries of the
# cell that asked: the next cell or step that calls the same function in the same situation
# takes both from here instead of following the function's body again.
SummaryMemo = dict[tuple[Any, ...], tuple[Effects, dict[int, Effects]]]


def summary_key(
    node: FunctionNode,
    depth: int,
    imported: set[str],
    fixed: set[str],
    function_defs: Mapping[str, FunctionNode],
    summaries: Mapping[int, Effects],
) -> tuple[Any, ...]:
    """What following `node` depends on: the function, how deep the call is, the names that
    are modules or cannot change, the functions calls are followed into, and the summaries the
    asking cell already holds (by identity: each is an object kept in the memo)."""
    return (
        node,
        depth,
        frozenset(imported),
        frozenset(fixed),
        frozenset(function_defs.items()),
        frozenset((key, id(effects)) for key, effects in summaries.items()),
    )


# How many objects a step's analysis may visit following changes before it stops following
# each one and takes every value the step reads or makes as changed (slower, never stale).
WORK_BUDGET = 100_000
WIDE_LIMIT = 1_000  # objects one name may hold, likewise
MAX_FOLLOWED_CALLS = 24


def looks_like_path(text: str) -> bool:
    return (
        0 < len(text) < 256
        and "\n" not in text
        and " " not in text
        and ("/" in text or "." in text.lstrip(".")[1:])
    )


def target_names(target: ast.expr) -> set[str]:
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(target_names(e) for e in target.elts))
    if isinstance(target, ast.Starred):
        return target_names(target.value)
    return set()


def union(shapes: list[Shape]) -> Shape:
    objects = frozenset().union(*(s.objects for s in shapes))
    lengths = {len(s.parts) if s.parts is not None else -1 for s in shapes}
    if len(lengths) != 1 or -1 in lengths:
        return Shape(objects)
    width = lengths.pop()
    parts = tuple(union([s.parts[i] for s in shapes if s.parts is not None]) for i in range(width))
    return Shape(objects, parts)


def selects_rows(index: ast.expr) -> bool:
    """A mask or a list of labels: pandas and numpy return a copy (not a view) for these."""
    return (
        isinstance(index, (ast.List, ast.ListComp, ast.Compare))
        or (
            isinstance(index, ast.BinOp)
            and isinstance(index.op, (ast.BitAnd, ast.BitOr, ast.BitXor))
        )
        or (isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.Invert))
    )


def in_place(node: ast.Call) -> bool:
    """`df.drop(columns, inplace=True)`: a method that returns a new object changes this one."""
    return any(
        k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value)
        for k in node.keywords
    )


def added_by(node: ast.Call) -> list[ast.expr] | None:
    """What a container method puts into the container (`frames.append(df)`)."""
    assert isinstance(node.func, ast.Attribute)
    method = node.func.attr
    if method in ("append", "add", "appendleft"):
        return node.args[:1]
    if method in ("insert", "setdefault"):
        return node.args[1:2]
    if method in EXTEND_METHODS:
        return node.args[:1]
    return None


def short(node: ast.expr) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def listing(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def function_parameters(node: FunctionNode) -> tuple[list[str], set[str], str | None, str | None]:
    args = node.args
    positional = [a.arg for a in [*args.posonlyargs, *args.args]]
    named = {a.arg for a in [*args.args, *args.kwonlyargs]}
    vararg = args.vararg.arg if args.vararg else None
    kwarg = args.kwarg.arg if args.kwarg else None
    return positional, named, vararg, kwarg


def written_paths(node: ast.Call) -> list[str]:
    """The file paths a call writes: `open("out.csv", "w")`, `df.to_csv("out.csv")`."""
    paths = [
        a.value
        for a in node.args
        if isinstance(a, ast.Constant) and isinstance(a.value, str) and looks_like_path(a.value)
    ]
    if not paths:
        return []
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
        return paths
    return []
