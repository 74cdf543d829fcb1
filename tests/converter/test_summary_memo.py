"""The compile's memo of function summaries (SummaryMemo) never changes what the analysis finds.

A function of the notebook called in many cells and steps is followed once per situation (the
names that are modules or cannot change, the functions calls are followed into, what the asking
cell already knows, how deep): each notebook here compiles to the same pipeline, diagnostics
included, with the memo and with every lookup missing it; and the memo is used, so these tests
do compare something.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from cellpipe.converter import build_pipeline, names, read_notebook
from cellpipe.converter.name_shapes import Effects, summary_key
from tests.converter.test_compile import GPU_NOTEBOOK
from tests.notebooks import notebook

ROOT = Path(__file__).resolve().parents[2]

FUNCTIONS = """
def grow(rows, x):
    rows.append(x)
    return rows

def note(x):
    log.append(x)

def twice(rows, x):
    return grow(grow(rows, x), x)

def even(n, rows):
    return rows if n == 0 else odd(n - 1, rows)

def odd(n, rows):
    rows.sort()
    return even(n - 1, rows)

def pick(frame):
    return np.asarray(frame)
"""

SHARED_FUNCTIONS = notebook(
    (["imports"], "import numpy as np"),
    (["functions"], FUNCTIONS),
    (["parameters"], "size = 3\nname = 'x'"),
    (["step:make"], "rows = []\nlog = []\ndata = grow([], size)"),
    (["step:add"], "twice(rows, 1)\nnote(name)"),
    (["step:again"], "grow(data, 2)\nout = pick(data)"),
    (["step:shadow"], "import json as np\nview = pick(rows)\nodd(3, data)"),
    (["step:mine"], "def grow(rows, x):\n    return [*rows, x]\n\nmore = twice(rows, 5)"),
    (["step:fixed"], "size = [size]\ngrow(size, 1)\nnote(size)"),
    (["step:last"], "even(4, more)\nfinal = twice(view, 0)\nprint(log, out, final, data)"),
)
SAME_CALLS = notebook(
    (["functions"], "def fill(a, b):\n    a.extend(b)\n    return a\n"),
    (["step:s0"], "x0 = fill([], [0])"),
    *[
        (["step:s" + str(i)], f"x{i} = fill(x{i - 1}, [{i}])\nfill(x{i - 1}, [])")
        for i in range(1, 8)
    ],
)

# `mark` changes the global `tag` in place: nothing while `tag` is a string parameter (s1),
# `tag` itself once a step made it a list (s3), which s4 must then receive from s3.
FIXED_THEN_NOT = notebook(
    (["parameters"], "tag = 'a'"),
    (["functions"], "def mark(x):\n    tag.append(x)\n"),
    (["step:s1"], "mark(1)"),
    (["step:s2"], "tag = []"),
    (["step:s3"], "mark(3)"),
    (["step:s4"], "print(tag)"),
)
# `g` followed from inside `f` (while `f` is followed, it counts as changing nothing) and from
# inside `h`, at the same depth: only what the asking cell already holds tells them apart, and
# from `h`, `g` changes `a` (through `f`), so s2 hands on the `xs` it changed.
RECURSION = notebook(
    (
        ["functions"],
        "def f(a):\n    a.append(1)\n    g(a)\n\n"
        "def g(a):\n    if len(a) < 3:\n        f(a)\n\n"
        "def h(a):\n    g(a)\n",
    ),
    (["step:s1"], "xs = []\nf(xs)"),
    (["step:s2"], "h(xs)"),
    (["step:s3"], "print(xs)"),
)


def _examples() -> dict[str, dict[str, Any]]:
    found = {p.name: read_notebook(p) for p in sorted((ROOT / "examples").glob("*.ipynb"))}
    assert found
    return found


NOTEBOOKS = {
    "shared functions": SHARED_FUNCTIONS,
    "the same calls in every step": SAME_CALLS,
    "a parameter that can change later": FIXED_THEN_NOT,
    "recursion": RECURSION,
    "gpu notebook": GPU_NOTEBOOK,
    **_examples(),
}


def analysed(nb: dict[str, Any]) -> str:
    pipeline = build_pipeline(nb, "memo.ipynb")
    return json.dumps(pipeline.to_json(), sort_keys=True, default=str)


@pytest.mark.parametrize("nb", NOTEBOOKS.values(), ids=NOTEBOOKS.keys())
def test_the_memo_changes_no_result(nb: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with_memo = analysed(nb)
    monkeypatch.setattr(names, "summary_key", lambda *_: object())  # every lookup misses
    assert analysed(nb) == with_memo


@pytest.mark.parametrize("nb", [SHARED_FUNCTIONS, SAME_CALLS], ids=["shared", "same calls"])
def test_the_memo_saves_following_bodies_again(
    nb: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    followed = []
    summarise = names._summarise

    def counted(*args: Any) -> Any:
        followed.append(args[0].name)
        return summarise(*args)

    monkeypatch.setattr(names, "_summarise", counted)
    analysed(nb)
    with_memo = len(followed)
    followed.clear()
    monkeypatch.setattr(names, "summary_key", lambda *_: object())
    analysed(nb)
    assert 0 < with_memo < len(followed)


def test_the_key_holds_everything_following_a_body_reads() -> None:
    """What `_summarise` reads besides the body: each changes the key (by identity for the
    function nodes and the summaries, which the memo keeps alive)."""
    grow, other = ast.parse(FUNCTIONS).body[:2]
    assert isinstance(grow, ast.FunctionDef) and isinstance(other, ast.FunctionDef)
    effects = Effects(["rows", "x"], set(), changes={"rows"})
    base: dict[str, Any] = {
        "node": grow,
        "depth": 0,
        "imported": {"np"},
        "fixed": {"size"},
        "function_defs": {"grow": grow},
        "summaries": {id(other): effects},
    }
    key = summary_key(**base)
    assert summary_key(**{**base, "imported": {"np"}, "fixed": {"size"}}) == key
    changed = {
        "node": other,
        "depth": 1,
        "imported": {"np", "pd"},
        "fixed": set(),
        "function_defs": {"grow": other},
        "summaries": {id(other): Effects(["rows", "x"], set(), changes={"rows"})},
    }
    for name, value in changed.items():
        assert summary_key(**{**base, name: value}) != key, name


def test_the_situations_the_key_tells_apart() -> None:
    """What the two notebooks above must give (and give only with a complete key)."""
    steps = {s.name: s for s in build_pipeline(FIXED_THEN_NOT, "memo.ipynb").steps}
    assert steps["s4"].received_from == {"tag": "s3"}
    steps = {s.name: s for s in build_pipeline(RECURSION, "memo.ipynb").steps}
    assert steps["s3"].received_from == {"xs": "s2"}
