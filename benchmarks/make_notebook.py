"""Generate a synthetic, realistic tagged notebook for converter benchmarks.

The notebook has ``n_steps`` pipeline steps spread over ``n_cells`` cells and can be
written in cellpipe's dialect or in Kale's. Both dialects describe the same DAG (same
step names, same edges, same code), so the two converters can be timed side by side.

Layout, top to bottom: a markdown title, an ``imports`` cell, a ``functions`` cell, a
parameters cell, then the steps in topological order. Each step starts with a cell
tagged ``step:NAME`` (plus one ``after:``/``prev:`` tag per upstream step) whose code
reads the variables of its upstream steps; it goes on with more cells tagged with the
same ``step:NAME`` and, now and then, an untagged continuation cell. A few markdown
section headers and ``skip`` cells are sprinkled in, and a metrics cell closes the
notebook. The DAG is mostly a chain, with some fan-out (a step hanging off an older
step) and fan-in (a step joining two branches); a final step joins every leaf.

All cell code is pure standard library (``math``, ``random``, ``statistics``) and the
notebook runs top to bottom in a plain Python namespace.

Usage::

    python benchmarks/make_notebook.py --dialect kale -o /tmp/bench_kale.ipynb
    python benchmarks/make_notebook.py --steps 60 --cells 300 --dialect cellpipe -o out.ipynb
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nbformat
from nbformat import v4

Dialect = Literal["cellpipe", "kale"]
DIALECTS: tuple[Dialect, ...] = ("cellpipe", "kale")

DEFAULT_STEPS = 60
DEFAULT_CELLS = 300
DEFAULT_SEED = 0

# Verbs for step names; every name matches Kale's step regex ``[_a-z][_a-z0-9]*``.
_VERBS = (
    "load",
    "clean",
    "scale",
    "encode",
    "filter",
    "smooth",
    "window",
    "feature",
    "join",
    "aggregate",
    "fit",
    "score",
)

# Probabilities used when drawing the DAG.
_P_FAN_OUT = 0.12  # the step hangs off an older step instead of the previous one
_P_FAN_IN = 0.12  # the step joins the previous step and an older one
_P_UNTAGGED = 0.2  # an extra cell of a step is an untagged continuation
_SECTION_EVERY = 10  # a markdown section header every N steps
_SKIP_EVERY = 15  # a `skip` cell after every N-th step

IMPORTS_SOURCE = """\
import math
import random
import statistics"""

FUNCTIONS_SOURCE = '''\
def make_rows(n, seed):
    """Deterministic pseudo-random measurements."""
    rng = random.Random(seed)
    return [rng.gauss(0.0, 1.0) for _ in range(n)]


def transform(rows, factor, offset):
    return [math.tanh(factor * v + 0.01 * offset) for v in rows]


def combine(*parts):
    """Element-wise mean of several equally long lists."""
    return [statistics.fmean(vals) for vals in zip(*parts)]


def smooth(rows, alpha):
    out = []
    acc = rows[0] if rows else 0.0
    for v in rows:
        acc = alpha * v + (1.0 - alpha) * acc
        out.append(acc)
    return out


def clip(rows, limit):
    return [max(-limit, min(limit, v)) for v in rows]


def normalize(rows):
    mean = statistics.fmean(rows)
    spread = statistics.pstdev(rows) or 1.0
    return [(v - mean) / spread for v in rows]


def summarize(rows):
    return round(statistics.fmean(rows), 6)


def histogram(rows, n_bins):
    lo, hi = min(rows), max(rows)
    width = (hi - lo) / n_bins or 1.0
    counts = [0] * n_bins
    for v in rows:
        counts[min(n_bins - 1, int((v - lo) / width))] += 1
    return counts'''

# Parameter cell: literal assignments only (both Kale and papermill accept these).
PARAMETERS_SOURCE = """\
n_items = 400
seed = 42
alpha = 0.3
factor = 1.5
threshold = 2.5
n_bins = 8
run_label = "bench\""""

# Statements an extra cell of step ``{s}`` may run; ``{s}`` is the step's name.
_EXTRA_CELL_TEMPLATES = (
    "{s}_rows = smooth({s}_rows, alpha)",
    "{s}_rows = clip({s}_rows, threshold)",
    "{s}_rows = normalize({s}_rows)\n{s}_stat = summarize({s}_rows)",
    "{s}_hist = histogram({s}_rows, n_bins)\n{s}_peak = max({s}_hist)",
    "{s}_rows = transform({s}_rows, factor, {s}_stat)",
    '{s}_stat = summarize({s}_rows)\nprint(run_label, "{s}", {s}_stat)',
    "{s}_rows = [round(v, 6) for v in {s}_rows]",
)


@dataclass(frozen=True)
class Step:
    """One pipeline step: its name, its upstream steps and the code of its cells.

    ``cells`` holds ``(source, tagged)`` pairs; the first one is the step's head cell.
    An extra cell is ``tagged`` when it repeats the ``step:NAME`` tag and untagged when
    it is a plain continuation of the cell above it.
    """

    name: str
    parents: tuple[str, ...]
    cells: tuple[tuple[str, bool], ...] = field(default=())


@dataclass(frozen=True)
class Plan:
    """Everything both dialects share: the DAG, the code, the metrics."""

    steps: tuple[Step, ...]
    metrics: tuple[str, ...]
    n_cells: int

    def edges(self) -> list[tuple[str, str]]:
        """Edges ``(upstream, downstream)`` in notebook order."""
        return [(p, s.name) for s in self.steps for p in s.parents]


def _step_names(n_steps: int) -> list[str]:
    names = [f"{_VERBS[i % len(_VERBS)]}_{i:02d}" for i in range(n_steps - 1)]
    names.append(f"report_{n_steps - 1:02d}")
    return names


def _draw_parents(n_steps: int, rng: random.Random) -> list[tuple[int, ...]]:
    """Upstream step indices for each step: mostly a chain, some fan-out and fan-in."""
    parents: list[tuple[int, ...]] = [()]
    for i in range(1, n_steps - 1):
        r = rng.random()
        if i >= 3 and r < _P_FAN_OUT:
            parents.append((rng.randrange(0, i - 1),))
        elif i >= 3 and r < _P_FAN_OUT + _P_FAN_IN:
            parents.append((rng.randrange(0, i - 1), i - 1))
        else:
            parents.append((i - 1,))
    if n_steps > 1:
        # the last step joins every step that nothing else consumes
        consumed = {p for ps in parents for p in ps}
        leaves = tuple(i for i in range(n_steps - 1) if i not in consumed)
        parents.append(leaves)
    return parents


def _head_source(name: str, parent_names: Sequence[str], is_last: bool) -> str:
    if not parent_names:
        body = f"{name}_rows = make_rows(n_items, seed)"
    elif len(parent_names) == 1:
        (p,) = parent_names
        body = f"{name}_rows = transform({p}_rows, factor, {p}_stat)"
    else:
        joined = ", ".join(f"{p}_rows" for p in parent_names)
        body = f"{name}_rows = combine({joined})"
    lines = [f"# step {name}", body, f"{name}_stat = summarize({name}_rows)"]
    if is_last:
        lines += [
            f"final_score = summarize(normalize({name}_rows))",
            f"final_count = len({name}_rows)",
        ]
    return "\n".join(lines)


def plan_notebook(
    n_steps: int = DEFAULT_STEPS, n_cells: int = DEFAULT_CELLS, seed: int = DEFAULT_SEED
) -> Plan:
    """Draw the DAG and the cell contents shared by both dialects.

    Raises:
        ValueError: if ``n_steps`` < 1 or ``n_cells`` is too small to hold the steps.
    """
    if n_steps < 1:
        raise ValueError(f"need at least one step, got {n_steps}")
    n_sections = (n_steps + _SECTION_EVERY - 1) // _SECTION_EVERY
    n_skips = n_steps // _SKIP_EVERY
    # title + imports + functions + parameters + metrics
    fixed = 5 + n_sections + n_skips
    n_extra = n_cells - fixed - n_steps
    if n_extra < 0:
        raise ValueError(
            f"{n_cells} cells cannot hold {n_steps} steps: at least {fixed + n_steps} are needed"
        )

    rng = random.Random(seed)
    names = _step_names(n_steps)
    parent_idx = _draw_parents(n_steps, rng)

    # spread the extra cells over the steps as evenly as possible, in random order
    extra_counts = [n_extra // n_steps] * n_steps
    for i in rng.sample(range(n_steps), n_extra % n_steps):
        extra_counts[i] += 1

    steps: list[Step] = []
    for i, name in enumerate(names):
        parent_names = [names[p] for p in parent_idx[i]]
        cells: list[tuple[str, bool]] = [
            (_head_source(name, parent_names, is_last=i == n_steps - 1), True)
        ]
        for _ in range(extra_counts[i]):
            template = rng.choice(_EXTRA_CELL_TEMPLATES)
            tagged = rng.random() >= _P_UNTAGGED
            cells.append((template.format(s=name), tagged))
        steps.append(Step(name=name, parents=tuple(parent_names), cells=tuple(cells)))

    metrics = ["final_score", "final_count"]
    metrics += [f"{names[i]}_stat" for i in sorted(rng.sample(range(n_steps), min(2, n_steps)))]
    return Plan(steps=tuple(steps), metrics=tuple(dict.fromkeys(metrics)), n_cells=n_cells)


def _tags(dialect: Dialect) -> dict[str, str]:
    if dialect == "cellpipe":
        return {"parameters": "parameters", "metrics": "metrics", "edge": "after"}
    return {"parameters": "pipeline-parameters", "metrics": "pipeline-metrics", "edge": "prev"}


def _code(source: str, tags: Sequence[str], index: int) -> nbformat.NotebookNode:
    cell = v4.new_code_cell(source)
    cell.id = f"cell-{index:04d}"
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _markdown(source: str, index: int) -> nbformat.NotebookNode:
    cell = v4.new_markdown_cell(source)
    cell.id = f"cell-{index:04d}"
    return cell


def render(plan: Plan, dialect: Dialect, pipeline_name: str | None = None) -> nbformat.NotebookNode:
    """Write ``plan`` as an nbformat 4.5 notebook in ``dialect``."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
    tags = _tags(dialect)
    n_steps = len(plan.steps)
    name = pipeline_name or f"bench-{n_steps}-steps"
    description = f"Synthetic benchmark: {n_steps} steps in {plan.n_cells} cells."

    nb = v4.new_notebook()
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    if dialect == "cellpipe":
        nb.metadata["cellpipe"] = {"pipeline": name, "description": description}
    else:
        nb.metadata["kubeflow_notebook"] = {
            "experiment": {"id": "", "name": ""},
            "experiment_name": "benchmarks",
            "pipeline_name": name,
            "pipeline_description": description,
            "base_image": "python:3.12",
            "enable_caching": True,
            "volumes": [],
            "steps_defaults": [],
        }

    cells: list[nbformat.NotebookNode] = []

    def add_code(source: str, cell_tags: Sequence[str]) -> None:
        cells.append(_code(source, cell_tags, len(cells)))

    cells.append(
        _markdown(f"# {name}\n\n{description} Generated by `benchmarks/make_notebook.py`.", 0)
    )
    add_code(IMPORTS_SOURCE, ["imports"])
    add_code(FUNCTIONS_SOURCE, ["functions"])
    add_code(PARAMETERS_SOURCE, [tags["parameters"]])
    for i, step in enumerate(plan.steps):
        if i % _SECTION_EVERY == 0:
            cells.append(
                _markdown(f"## Steps {i} to {min(i + _SECTION_EVERY, n_steps) - 1}", len(cells))
            )
        head_src, _ = step.cells[0]
        add_code(head_src, [f"step:{step.name}"] + [f"{tags['edge']}:{p}" for p in step.parents])
        for src, tagged in step.cells[1:]:
            add_code(src, [f"step:{step.name}"] if tagged else [])
        if (i + 1) % _SKIP_EVERY == 0:
            add_code(f"# inspecting while developing\nprint(len({step.name}_rows))", ["skip"])
    if dialect == "cellpipe":
        metrics_src = "\n".join(plan.metrics)
    else:
        metrics_src = "\n".join(f"print({m})" for m in plan.metrics)
    add_code(metrics_src, [tags["metrics"]])

    if len(cells) != plan.n_cells:  # pragma: no cover - guards the arithmetic above
        raise AssertionError(f"built {len(cells)} cells, planned {plan.n_cells}")
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def make_notebook(
    n_steps: int = DEFAULT_STEPS,
    n_cells: int = DEFAULT_CELLS,
    dialect: Dialect = "cellpipe",
    seed: int = DEFAULT_SEED,
    pipeline_name: str | None = None,
) -> nbformat.NotebookNode:
    """Build a synthetic notebook; the same arguments give the same DAG in both dialects."""
    return render(plan_notebook(n_steps, n_cells, seed), dialect, pipeline_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description="Generate a synthetic tagged notebook for converter benchmarks."
    )
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="number of steps")
    parser.add_argument("--cells", type=int, default=DEFAULT_CELLS, help="total number of cells")
    parser.add_argument("--dialect", choices=DIALECTS, default="cellpipe")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for the DAG shape")
    parser.add_argument("--name", default=None, help="pipeline name (default bench-N-steps)")
    parser.add_argument("--edges", action="store_true", help="print the DAG edges to stderr")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="output .ipynb (default: stdout)"
    )
    args = parser.parse_args(argv)

    try:
        plan = plan_notebook(args.steps, args.cells, args.seed)
    except ValueError as err:
        parser.error(str(err))
    nb = render(plan, args.dialect, args.name)
    if args.edges:
        for upstream, downstream in plan.edges():
            print(f"{upstream} -> {downstream}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(nbformat.writes(nb) + "\n")
    else:
        nbformat.write(nb, str(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
