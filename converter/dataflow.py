"""The DAG of steps and the values that flow along it.

Running the pipeline must give the values that running the notebook top to bottom gives. For
each name a step reads, the notebook's answer is the last step above it that defined or changed
the name; the pipeline's answer is the latest such step among its ancestors. Where the two can
differ, that is a compile error that says what to change.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import Diagnostic, Step
from .names import Usage
from .tags import TagWords


@dataclass
class StepFlow:
    step: Step
    usage: Usage
    declared_after: list[tuple[str, int, str | None]] = field(
        default_factory=list
    )  # name, cell, id


@dataclass
class Graph:
    parents: dict[str, list[str]]
    ancestors: dict[str, set[str]]
    words: TagWords = field(default_factory=TagWords)  # the tags messages name


def build_graph(
    flows: list[StepFlow], diagnostics: list[Diagnostic], words: TagWords | None = None
) -> Graph | None:
    """Edges from `after:` tags, or a chain in notebook order when no step has one;
    messages name the notebook's own tags (`words`: `prev:` in a Kale notebook)."""
    words = words or TagWords()
    names = [f.step.name for f in flows]
    parents: dict[str, list[str]] = {n: [] for n in names}
    if any(f.declared_after for f in flows):
        for flow in flows:
            for target, cell_index, cell_id in flow.declared_after:
                if target in parents:
                    if target not in parents[flow.step.name]:
                        parents[flow.step.name].append(target)
                    continue
                diagnostics.append(
                    Diagnostic(
                        f"{words.after}:{target} names no step"
                        + _did_you_mean(target, names, words),
                        cell_index,
                        cell_id,
                        flow.step.name,
                    )
                )
    else:
        for previous, current in itertools.pairwise(names):
            parents[current].append(previous)
    order = _topological_order(parents)
    if order is None:
        cycle = _find_cycle(parents)
        first = next(f for f in flows if f.step.name == cycle[0])
        diagnostics.append(
            Diagnostic(
                f"the {words.after}: tags make a cycle: "
                + " -> ".join(repr(n) for n in [*cycle, cycle[0]])
                + f"; remove one of these {words.after}: tags",
                first.step.first_cell.index,
                first.step.first_cell.id,
                first.step.name,
            )
        )
        return None
    ancestors: dict[str, set[str]] = {}
    for name in order:
        ancestors[name] = set(parents[name]).union(*(ancestors[p] for p in parents[name]))
    for flow in flows:
        flow.step.after = list(parents[flow.step.name])
    return Graph(parents=parents, ancestors=ancestors, words=words)


def resolve_values(
    flows: list[StepFlow],
    graph: Graph,
    parameters: Iterable[str],
    diagnostics: list[Diagnostic],
) -> None:
    """Fill in each step's `receives`, `hands_on` and `parameters`, or say why it cannot be."""
    parameter_names = set(parameters)
    writers: dict[str, list[int]] = {}  # name -> the steps that write it, in notebook order
    for index, flow in enumerate(flows):
        for name in flow.usage.writes:
            writers.setdefault(name, []).append(index)
    for index, flow in enumerate(flows):
        step = flow.step
        for name, cell_index in flow.usage.reads.items():
            producer = _producer(
                flows, index, name, graph, diagnostics, cell_index, writers.get(name, [])
            )
            if producer is None:
                if name in parameter_names and name not in step.parameters:
                    step.parameters.append(name)
                continue
            step.receives.append(name)
            step.received_from[name] = producer.step.name
            if name not in producer.step.hands_on:
                producer.step.hands_on.append(name)
    for flow in flows:
        written = list(flow.usage.writes)
        flow.step.hands_on.sort(key=lambda n: written.index(n) if n in written else len(written))
    _warn_split_containers(flows, diagnostics)


def _warn_split_containers(flows: list[StepFlow], diagnostics: list[Diagnostic]) -> None:
    """A list built from other names in one step, changed through either in another.

    In the notebook `combine = [train, test]` holds the very objects `train` and `test` name, so
    a change through one is a change through the other. Between steps each value travels as a
    copy of its own, and that sharing is lost: handing more on cannot bring it back, so the
    step that changes one of them is warned, with what to write instead.
    """
    position = {f.step.name: i for i, f in enumerate(flows)}
    for index, flow in enumerate(flows):
        step = flow.step
        for container, cell_index in flow.usage.changed_inside.items():
            builder = step.received_from.get(container)
            if builder is None:
                continue
            held = flows[position[builder]].usage.holds.get(container, set())
            members = [
                m
                for m in sorted(held)
                if not _rebound_between(flows, position[builder], index, m)
                and any(m in f.step.receives for f in flows[index:])
            ]
            if not members:
                continue
            names = _both(members)
            readers = _steps(
                sorted({f.step.name for f in flows[index:] if set(members) & set(f.step.receives)})
            )
            diagnostics.append(
                Diagnostic(
                    f"changes what {container!r} holds, and step {builder!r} built "
                    f"{container!r} from {names}; between steps each value travels as a copy of "
                    f"its own, so {names} in {readers} "
                    f"{'does' if len(members) == 1 else 'do'} not get this change; build "
                    f"{container!r} again in this step from {names}, or change "
                    f"{'it' if len(members) == 1 else 'them'} by name",
                    cell_index,
                    _cell_id(step, cell_index),
                    step.name,
                    "warning",
                )
            )
        for member, cell_index in flow.usage.changed_in_place.items():
            if member not in step.received_from:
                continue
            stale: dict[tuple[str, str], list[str]] = {}
            for later in flows[index + 1 :]:
                for container in later.step.receives:
                    builder = later.step.received_from[container]
                    at = position[builder]
                    if (
                        at < index
                        and member in flows[at].usage.holds.get(container, set())
                        and not _rebound_between(flows, at, index, member)
                    ):
                        stale.setdefault((container, builder), []).append(later.step.name)
            for (container, builder), stale_in in sorted(stale.items()):
                diagnostics.append(
                    Diagnostic(
                        f"changes {member!r} in place, and {container!r}, built in step "
                        f"{builder!r}, holds {member!r}; between steps each value travels as a "
                        f"copy of its own, so {container!r} in {_steps(stale_in)} does not get "
                        f"this change; build {container!r} again after this change, or keep these "
                        "cells in one step",
                        cell_index,
                        _cell_id(step, cell_index),
                        step.name,
                        "warning",
                    )
                )


def _rebound_between(flows: list[StepFlow], start: int, end: int, name: str) -> bool:
    """Whether a step strictly between two binds `name` to a new object (not only changes it)."""
    return any(
        name in f.usage.writes and name not in f.usage.changed_in_place
        for f in flows[start + 1 : end]
    )


def _steps(names: list[str]) -> str:
    return ("step " if len(names) == 1 else "steps ") + _both(names)


def _both(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _producer(
    flows: list[StepFlow],
    index: int,
    name: str,
    graph: Graph,
    diagnostics: list[Diagnostic],
    cell_index: int,
    writers: list[int],
) -> StepFlow | None:
    """The step `flows[index]` receives `name` from (`writers`: the steps that write it)."""
    reader = flows[index]
    step = reader.step
    cell_id = _cell_id(step, cell_index)
    above = [flows[i] for i in writers if i < index]
    in_notebook = above[-1] if above else None
    ancestors = graph.ancestors[step.name]
    candidates = [flows[i] for i in writers if flows[i].step.name in ancestors]
    if not candidates and in_notebook is None:
        return None
    if in_notebook is not None and in_notebook.step.name not in ancestors:
        diagnostics.append(
            Diagnostic(
                f"reads {name!r}, which step {in_notebook.step.name!r} produces, but that step "
                f"does not run before {step.name!r} in the pipeline; add the tag "
                f"{graph.words.after}:{in_notebook.step.name} to step {step.name!r}",
                cell_index,
                cell_id,
                step.name,
            )
        )
        return None
    latest = [
        f
        for f in candidates
        if not any(f.step.name in graph.ancestors[g.step.name] for g in candidates)
    ]
    if len(latest) > 1:
        producers = " and ".join(repr(f.step.name) for f in latest)
        diagnostics.append(
            Diagnostic(
                f"reads {name!r}, which both {producers} produce, and neither runs after the "
                f"other, so which value {step.name!r} gets is undecided; add "
                f"{'an' if graph.words.after == 'after' else 'a'} {graph.words.after}: tag "
                "between them",
                cell_index,
                cell_id,
                step.name,
            )
        )
        return None
    producer = latest[0]
    if producer is not in_notebook:
        diagnostics.append(
            Diagnostic(
                f"reads {name!r}; in the pipeline it comes from step {producer.step.name!r}, "
                f"which stands below {step.name!r} in the notebook, so running the notebook top "
                f"to bottom gives a different value; move the cells or change the "
                f"{graph.words.after}: tags",
                cell_index,
                cell_id,
                step.name,
            )
        )
        return None
    if name in producer.usage.deleted:
        diagnostics.append(
            Diagnostic(
                f"reads {name!r}, which step {producer.step.name!r} deletes (del {name}); "
                "remove the del or stop reading it",
                cell_index,
                cell_id,
                step.name,
            )
        )
        return None
    return producer


def _cell_id(step: Step, cell_index: int) -> str | None:
    return next((c.id for c in step.cells if c.index == cell_index), None)


def _did_you_mean(name: str, options: list[str], words: TagWords) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    if close:
        return f"; did you mean {words.after}:{close[0]}?"
    return f"; the steps are {', '.join(options)}"


def _topological_order(parents: dict[str, list[str]]) -> list[str] | None:
    remaining = {n: len(ps) for n, ps in parents.items()}
    children: dict[str, list[str]] = {n: [] for n in parents}
    for name, ps in parents.items():
        for parent in ps:
            children[parent].append(name)
    ready = [n for n, count in remaining.items() if count == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in children[name]:
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    return order if len(order) == len(parents) else None


def _find_cycle(parents: dict[str, list[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for parent in parents[node]:
            if state.get(parent) == 1:
                return list(reversed(stack[stack.index(parent) :]))
            if parent not in state:
                found = visit(parent)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in parents:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []
