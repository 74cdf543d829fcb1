"""Data flow: what each step receives and hands on, and the errors that keep it honest."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cellpipe.converter import build_pipeline
from cellpipe.converter.model import Pipeline
from tests.notebooks import Cell, notebook


def build(*cells: Cell, metadata: dict[str, Any] | None = None) -> Pipeline:
    return build_pipeline(notebook(*cells, metadata=metadata), "flow.ipynb")


def flow(pipeline: Pipeline) -> dict[str, tuple[list[str], list[str]]]:
    assert [e.message for e in pipeline.errors] == []
    return {s.name: (s.receives, s.hands_on) for s in pipeline.steps}


def error_messages(pipeline: Pipeline) -> list[str]:
    return [e.for_people("flow.ipynb") for e in pipeline.errors]


def test_chain_in_notebook_order_without_after_tags() -> None:
    pipeline = build(
        (["step:a"], "x = 1"),
        (["step:b"], "y = x + 1"),
        (["step:c"], "z = x + y"),
    )
    assert [s.after for s in pipeline.steps] == [[], ["a"], ["b"]]
    assert flow(pipeline) == {
        "a": ([], ["x"]),
        "b": (["x"], ["y"]),
        "c": (["x", "y"], []),
    }
    assert pipeline.step("c").received_from == {"x": "a", "y": "b"}


def test_parallel_branches_join() -> None:
    pipeline = build(
        (["step:load"], "data = list(range(10))"),
        (["step:left", "after:load"], "evens = [d for d in data if d % 2 == 0]"),
        (["step:right", "after:load"], "odds = [d for d in data if d % 2]"),
        (["step:join", "after:left", "after:right"], "both = sorted(evens + odds)"),
    )
    assert flow(pipeline) == {
        "load": ([], ["data"]),
        "left": (["data"], ["evens"]),
        "right": (["data"], ["odds"]),
        "join": (["evens", "odds"], []),
    }


@pytest.mark.parametrize(
    "change",
    [
        "items.append(4)",
        "items += [4]",
        "items[0] = 9",
        "del items[0]",
        "items.extra = 1",
        "items.sort(reverse=True)",
    ],
)
def test_changes_are_handed_on_by_the_step_that_made_them_last(change: str) -> None:
    pipeline = build(
        (["step:make"], "items = [3, 1, 2]"),
        (["step:change"], change),
        (["step:use"], "total = sum(items)"),
    )
    assert pipeline.step("use").received_from == {"items": "change"}
    assert pipeline.step("change").receives == ["items"]
    assert pipeline.step("change").hands_on == ["items"]


def test_read_only_methods_do_not_hand_on() -> None:
    pipeline = build(
        (["step:make"], "items = [3, 1, 2]"),
        (["step:look"], "print(items.count(1))"),
        (["step:use"], "total = sum(items)"),
    )
    assert pipeline.step("use").received_from == {"items": "make"}
    assert pipeline.step("look").hands_on == []


def test_shadowing_a_name_before_reading_needs_nothing_from_upstream() -> None:
    pipeline = build(
        (["step:a"], "x = 1"),
        (["step:b"], "x = 10\ny = x * 2"),
        (["step:c"], "print(x, y)"),
    )
    assert flow(pipeline)["b"] == ([], ["x", "y"])
    assert pipeline.step("c").received_from == {"x": "b", "y": "b"}


def test_conditional_binding_does_not_hide_a_later_read() -> None:
    pipeline = build(
        (["step:a"], "x = 1"),
        (["step:b"], "if x > 5:\n    x = 0\nprint(x)"),
    )
    assert pipeline.step("b").receives == ["x"]


def test_comprehension_function_and_class_scopes() -> None:
    pipeline = build(
        (["step:a"], "scale = 3\nrows = [1, 2]\nOffset = 7"),
        (
            ["step:b"],
            "\n".join(
                [
                    "scaled = [r * scale for r in rows]",  # comprehension reads scale, rows
                    "def shift(v):",
                    "    local = v + Offset",  # function reads Offset when called
                    "    return local",
                    "class Model:",
                    "    factor = scale",  # class body reads scale at definition
                    "    def run(self, r):",
                    "        return r",
                    "r = 0",  # a comprehension variable elsewhere is not a read
                    "out = [shift(x) for x in scaled]",
                ]
            ),
        ),
    )
    b = pipeline.step("b")
    assert sorted(b.receives) == ["Offset", "rows", "scale"]
    assert "local" not in b.receives and "x" not in b.receives and "v" not in b.receives


def test_functions_cell_reads_count_where_the_function_is_called() -> None:
    pipeline = build(
        (
            ["functions"],
            "def report():\n    return f'{threshold}: {helper()}'\n"
            "def helper():\n    return len(history)",
        ),
        (["step:a"], "threshold = 0.5\nhistory = [1]"),
        (["step:b"], "print(report())"),
    )
    assert sorted(pipeline.step("b").receives) == ["history", "threshold"]


def test_walrus_in_a_comprehension_binds_in_the_step() -> None:
    pipeline = build(
        (["step:a"], "found = [last := v for v in range(3)]"),
        (["step:b"], "print(last)"),
    )
    assert pipeline.step("b").received_from == {"last": "a"}


def test_global_written_from_a_function_is_handed_on() -> None:
    pipeline = build(
        (["step:a"], "def setup():\n    global config\n    config = {'k': 1}\nsetup()"),
        (["step:b"], "print(config)"),
    )
    assert pipeline.step("b").received_from == {"config": "a"}


def test_imports_and_parameters_are_not_received() -> None:
    pipeline = build(
        (["imports"], "import statistics as st"),
        (["parameters"], "n = 3\nrate = 0.5\nname = 'run'\nflags = [1, 2]\nopts = {'a': True}"),
        (["step:a"], "values = [rate] * n"),
        (["step:b"], "print(st.mean(values), name, opts)"),
    )
    assert flow(pipeline) == {"a": ([], ["values"]), "b": (["values"], [])}
    assert pipeline.step("a").parameters == ["rate", "n"]
    assert pipeline.step("b").parameters == ["name", "opts"]
    types = {p.name: p.type for p in pipeline.parameters.values()}
    assert types == {"n": "int", "rate": "float", "name": "str", "flags": "list", "opts": "dict"}


def test_a_parameter_changed_by_a_step_is_received_from_that_step() -> None:
    pipeline = build(
        (["parameters"], "epochs = 3"),
        (["step:a"], "epochs *= 2"),
        (["step:b"], "print(epochs)"),
    )
    assert pipeline.step("a").parameters == ["epochs"]
    assert pipeline.step("b").received_from == {"epochs": "a"}
    assert pipeline.step("b").parameters == []


def test_metrics_are_reported_by_the_step_that_last_produces_them() -> None:
    pipeline = build(
        (["step:train"], "accuracy = 0.5\nloss = 1.0"),
        (["step:tune"], "accuracy = 0.9"),
        (["pipeline-metrics"], "print(accuracy)\nloss"),
    )
    assert pipeline.metrics == ["accuracy", "loss"]
    assert pipeline.step("tune").metrics == ["accuracy"]
    assert pipeline.step("train").metrics == ["loss"]
    assert "accuracy" in pipeline.step("tune").hands_on


def test_untagged_cells_continue_the_role_above_and_skip_cells_are_left_out() -> None:
    pipeline = build(
        ([], "early = 1"),  # before any tag: joins the first step
        (["imports"], "import math"),
        ([], "import json"),  # continues the imports
        (["step:a"], "x = math.pi"),
        (["skip"], "print('debugging', x)"),
        ([], "y = x * 2"),  # continues step a, skip cell aside
        "A markdown cell is not code",
        (["step:b"], "print(y, early)"),
    )
    a = pipeline.step("a")
    assert [c.index for c in a.cells] == [0, 3, 5]
    assert [c.index for c in pipeline.prelude] == [1, 2]
    assert pipeline.step("b").receives == ["y", "early"]


# --- errors --------------------------------------------------------------------------------


def test_reading_from_a_step_that_is_not_an_ancestor_suggests_after() -> None:
    pipeline = build(
        (["step:load"], "data = [1, 2]"),
        (["step:other", "after:load"], "extra = 5"),
        (["step:use", "after:load"], "print(extra)"),
    )
    assert error_messages(pipeline) == [
        "flow.ipynb: cell 3 (step 'use'): reads 'extra', which step 'other' produces, but that "
        "step does not run before 'use' in the pipeline; add the tag after:other to step 'use'"
    ]
    assert pipeline.errors[0].cell_id == "cell-2"
    assert pipeline.errors[0].cell_index == 2


def test_two_unordered_producers_of_a_read_name_is_an_error() -> None:
    pipeline = build(
        (["step:start"], "x = 0"),
        (["step:left", "after:start"], "x = 1"),
        (["step:right", "after:start"], "x = 2"),
        (["step:end", "after:left", "after:right"], "print(x)"),
    )
    (error,) = error_messages(pipeline)
    assert "reads 'x', which both 'left' and 'right' produce" in error
    assert "add an after: tag between them" in error


def test_parallel_branches_that_only_look_at_a_value_are_fine() -> None:
    pipeline = build(
        (["step:start"], "x = [1]"),
        (["step:left", "after:start"], "a = x.copy()"),
        (["step:right", "after:start"], "b = len(x)"),
        (["step:end", "after:left", "after:right"], "print(x, a, b)"),
    )
    assert pipeline.step("end").received_from == {"x": "start", "a": "left", "b": "right"}


def test_pipeline_order_against_notebook_order_is_an_error() -> None:
    pipeline = build(
        (["step:b", "after:a"], "print(x)"),
        (["step:a"], "x = 1"),
    )
    (error,) = error_messages(pipeline)
    assert "reads 'x'; in the pipeline it comes from step 'a', which stands below 'b'" in error


def test_a_cycle_is_an_error_naming_the_steps() -> None:
    pipeline = build(
        (["step:a", "after:c"], "x = 1"),
        (["step:b", "after:a"], "y = 1"),
        (["step:c", "after:b"], "z = 1"),
    )
    (error,) = error_messages(pipeline)
    assert "make a cycle" in error
    for name in ("'a'", "'b'", "'c'"):
        assert name in error


def test_after_naming_no_step_suggests_the_closest() -> None:
    pipeline = build((["step:train"], "x = 1"), (["step:eval", "after:trian"], "y = 2"))
    (error,) = error_messages(pipeline)
    assert error == (
        "flow.ipynb: cell 2 (step 'eval'): after:trian names no step; did you mean after:train?"
    )


def test_syntax_error_names_the_cell_and_line() -> None:
    pipeline = build((["step:a"], "x = 1"), ([], "y = (\n"))
    (error,) = error_messages(pipeline)
    assert error.startswith("flow.ipynb: cell 2 (step 'a'): syntax error on line ")


def test_parameters_must_be_literals() -> None:
    pipeline = build(
        (["parameters"], "n = 3\nm = n * 2\nprint(n)\npair = (1, 2)"),
        (["step:a"], "x = n"),
    )
    messages = error_messages(pipeline)
    assert len(messages) == 3
    assert "line 2: m = n * 2 is not a literal" in messages[0]
    assert "line 3: only `name = literal` lines are parameters" in messages[1]
    assert "line 4: pair = (1, 2) has no pipeline type" in messages[2]


def test_a_metric_no_step_produces_is_an_error() -> None:
    pipeline = build((["step:a"], "x = 1"), (["metrics"], "accuracy\nx + 1"))
    messages = error_messages(pipeline)
    assert "metrics cell, line 2: write one metric per line" in messages[0]
    assert "metric 'accuracy' is not produced by any step" in messages[1]


def test_reading_a_deleted_name_is_an_error() -> None:
    pipeline = build((["step:a"], "x = 1"), (["step:b"], "del x"), (["step:c"], "print(x)"))
    assert "which step 'b' deletes" in error_messages(pipeline)[0]


def test_no_steps_at_all_is_one_step_and_a_note_says_how_to_tag() -> None:
    pipeline = build(([], "x = 1"))
    assert error_messages(pipeline) == []
    assert [s.name for s in pipeline.steps] == ["flow"]
    assert "tag a cell step:NAME" in pipeline.notes[0].message


def test_errors_stay_errors_in_kale_notebooks() -> None:
    pipeline = build(
        (["block:a"], "x = 1"),
        (["block:b", "prev:a"], "y = 2"),
        (["block:c", "prev:a"], "print(y)"),
        metadata={"kubeflow_notebook": {"pipeline_name": "k", "autosnapshot": True}},
    )
    assert "add the tag prev:b" in error_messages(pipeline)[0]  # the notebook's own tags
    assert any("autosnapshot" in w.message for w in pipeline.warnings)


# --- warnings for what analysis cannot see ---------------------------------------------------


def warnings_of(pipeline: Pipeline) -> list[str]:
    return [w.message for w in pipeline.warnings]


def test_alias_changes_are_followed_not_warned_about() -> None:
    pipeline = build(
        (["step:a"], "a = [1]"), (["step:b"], "b = a\nb.append(2)"), (["step:c"], "print(a)")
    )
    assert pipeline.step("c").received_from == {"a": "b"}
    assert not any("another name" in w for w in warnings_of(pipeline))


def test_seed_calls_in_steps_are_warned_about() -> None:
    pipeline = build((["imports"], "import random"), (["step:a"], "random.seed(1)\nx = 1"))
    assert any("random.seed() sets state inside a module" in w for w in warnings_of(pipeline))
    assert pipeline.step("a").hands_on == []


def test_files_passed_between_steps_are_warned_about() -> None:
    pipeline = build(
        (["step:a"], "with open('out/model.txt', 'w') as f:\n    f.write('w')"),
        (["step:b"], "print(open('out/model.txt').read())"),
    )
    (warning,) = [w for w in pipeline.warnings if "file" in w.message]
    assert warning.step == "b"
    assert "names the file 'out/model.txt', which step 'a' writes" in warning.message


def cell_warnings(pipeline: Pipeline) -> list[str]:
    return [w.message for w in pipeline.warnings if w.cell_index is not None]


def test_magics_run_pip_lines_go_into_the_image_and_bash_cells_run() -> None:
    pipeline = build(
        (
            ["step:a"],
            "%matplotlib inline\n!pip install -q -r reqs.txt 'scikit-learn>=1.4' x\n"
            "files = !ls\nx = 1",
        ),
        ([], "%%time\n%pip install pandas\ny = x"),
    )
    assert pipeline.errors == []
    assert cell_warnings(pipeline) == [
        "\"!pip install -q -r reqs.txt 'scikit-learn>=1.4' x\": the pip options -r reqs.txt "
        "are not carried into the pipeline; list packages in requirements.txt instead"
    ]
    assert pipeline.requirements == ["scikit-learn>=1.4", "x", "pandas"]
    first, second = (c.source for c in pipeline.step("a").cells)
    assert first.splitlines() == [
        "%matplotlib inline",
        "pass  # cellpipe: !pip install -q -r reqs.txt 'scikit-learn>=1.4' x",
        "files = !ls",
        "x = 1",
    ]
    assert second == "%%time\npass  # cellpipe: %pip install pandas\ny = x"
    bash = build((["step:a"], "%%bash\necho hi"))
    assert (bash.errors, cell_warnings(bash)) == ([], [])
    assert bash.step("a").cells[0].source == "%%bash\necho hi"


def test_cellpipes_own_magics_are_not_run_in_a_step_and_not_warned_about() -> None:
    pipeline = build((["step:a"], "%load_ext cellpipe\n%cellpipe compile\nx = 1"))
    assert cell_warnings(pipeline) == []
    assert pipeline.step("a").cells[0].source == (
        "pass  # cellpipe: %load_ext cellpipe\npass  # cellpipe: %cellpipe compile\nx = 1"
    )


# --- aliases: a change through another name is a change of the value ------------------------

DIALECTS = ["cellpipe", "kale"]
MAKE = "a = {'y': 0}\nb = {'y': 0}\nc = {'y': 0}\ne2 = {'y': 0}"
USE = "print(a, b, c, e2)"


def chain(dialect: str, *steps: tuple[str, str], prelude: tuple[Cell, ...] = ()) -> Pipeline:
    """Steps one after the other: `step:` tags, or Kale's `block:` and `prev:` tags."""
    cells: list[Cell] = list(prelude)
    previous = None
    for name, code in steps:
        if dialect == "cellpipe":
            tags = [f"step:{name}"]
        else:
            tags = [f"block:{name}", *([f"prev:{previous}"] if previous else [])]
        cells.append((tags, code))
        previous = name
    return build(*cells)


def changed_in(pipeline: Pipeline, step: str = "change") -> list[str]:
    """What the step hands on, checked against where the next step gets each value."""
    assert [e.message for e in pipeline.errors] == []
    handed_on = pipeline.step(step).hands_on
    use = pipeline.step("use")
    assert {n for n, s in use.received_from.items() if s == step} == set(handed_on)
    return sorted(handed_on)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("code", "changed"),
    [
        ("for d in [a, b]:\n    d['x'] = 1", ["a", "b"]),
        ("for d in (a, b):\n    d.update(x=1)", ["a", "b"]),
        ("for d in [a, b]:\n    d.pop('y', None)\n    d.x = 1", ["a", "b"]),
        ("for i, d in enumerate([a, b]):\n    d['x'] = i", ["a", "b"]),
        ("for i, d in enumerate((a, b), start=1):\n    d['x'] = i", ["a", "b"]),
        ("for d, e in zip([a, b], [c, e2]):\n    e['x'] = d['y']", ["c", "e2"]),
        ("for n, d in zip(['p', 'q'], [a, b], strict=True):\n    d[n] = 1", ["a", "b"]),
        ("for i, (d, e) in enumerate(zip([a, b], [c, e2])):\n    d['x'] = i", ["a", "b"]),
        ("for name, d in [('p', a), ('q', c)]:\n    d[name] = 1", ["a", "c"]),
        ("combine = [a, b]\nfor dataset in combine:\n    dataset['x'] = 1", ["a", "b"]),
        ("frames = {'train': a, 'test': b}\nfor d in frames.values():\n    d['x'] = 1", ["a", "b"]),
        ("frames = []\nframes.append(a)\nfor d in frames:\n    d['x'] = 1", ["a"]),
        ("combine = [a, b]\ncombine[0]['x'] = 1", ["a", "b"]),
        ("[d.update(x=1) for d in [a, c]]", ["a", "c"]),
        ("for d in [a, b]:\n    print(d.get('y'))", []),
    ],
)
def test_a_change_through_a_loop_variable_changes_what_it_stands_for(
    dialect: str, code: str, changed: list[str]
) -> None:
    pipeline = chain(dialect, ("make", MAKE), ("change", code), ("use", USE))
    assert changed_in(pipeline) == changed
    named = {n for n in ["a", "b", "c", "e2"] if re.search(rf"\b{n}\b", code)}
    assert set(pipeline.step("change").receives) == named
    assert [w.message for w in pipeline.warnings if w.step == "change"] == []


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "change",
    [
        "q.append(1)",
        "q['x'] = 1",
        "q.attr = 1",
        "q.clear()",
        "q += [1]",
        "del q['y']",
        "q.drop(columns=['y'], inplace=True)",
        "r = q\nr['x'] = 1",
        "part = q['y']\npart.append(1)",
    ],
)
def test_a_change_through_another_name_is_a_change_of_the_value(dialect: str, change: str) -> None:
    pipeline = chain(dialect, ("make", MAKE), ("change", f"q = a\n{change}"), ("use", USE))
    assert changed_in(pipeline) == ["a"]
    assert pipeline.step("change").receives == ["a"]
    assert pipeline.warnings == [w for w in pipeline.warnings if w.step != "change"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "code",
    [
        "q = a\nprint(q.get('y'), q.copy())",
        "q = a\nq = {}\nq['x'] = 1",  # q names something else by then
        "q = a.copy()\nq['x'] = 1",
        "q = dict(a)\nq['x'] = 1",
        "q = a['y'] + 1\nq += 1",
        "rows = [a, b]\nrows.append(c)",  # the list changes, not what it holds
    ],
)
def test_what_is_not_a_change_of_the_value(dialect: str, code: str) -> None:
    pipeline = chain(dialect, ("make", MAKE), ("change", code), ("use", USE))
    assert changed_in(pipeline) == []


FUNCTIONS = (
    (
        ["functions"],
        "def clean(df):\n    df.drop(columns=['y'], inplace=True)\n\n"
        "def add(df, column, value=1):\n    df[column] = value\n    return df\n\n"
        "def fresh(df):\n    return df.copy()\n\n"
        "def both(*frames):\n    for frame in frames:\n        clean(frame)\n\n"
        "def log(message):\n    history.append(message)",
    ),
)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("code", "changed"),
    [
        ("clean(a)", ["a"]),
        ("add(b, 'x')", ["b"]),
        ("add(column='x', df=c)", ["c"]),
        ("q = add(c, 'x', 2)\nprint(q)", ["c"]),
        ("q = fresh(c)\nq['x'] = 1", []),
        ("q = add(fresh(c), 'x')\nq['z'] = 1", []),
        ("both(a, e2)", ["a", "e2"]),
        ("for d in [b, c]:\n    clean(d)", ["b", "c"]),
        ("log('start')", ["history"]),
        ("def local(df):\n    df['x'] = 1\n\nlocal(e2)", ["e2"]),
    ],
)
def test_a_function_of_the_notebook_that_changes_its_argument_changes_the_value(
    dialect: str, code: str, changed: list[str]
) -> None:
    pipeline = chain(
        dialect,
        ("make", MAKE + "\nhistory = []"),
        ("change", code),
        ("use", USE + "\nprint(history)"),
        prelude=FUNCTIONS,
    )
    assert changed_in(pipeline) == changed
    assert pipeline.warnings == [w for w in pipeline.warnings if w.step != "change"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("code", "call"),
    [
        ("d = pick(a, b)\nd['x'] = 1", "pick(a, b)"),
        ("frames = gather(a, b)\nfor f in frames:\n    f['x'] = 1", "gather(a, b)"),
        ("d = pick([a, b])\nd.update(x=1)", "pick([a, b])"),
        ("choose = lambda p, q: p\nd = choose(a, b)\nd['x'] = 1", "choose(a, b)"),
    ],
)
def test_an_alias_through_unseen_code_hands_on_every_candidate_and_warns(
    dialect: str, code: str, call: str
) -> None:
    pipeline = chain(
        dialect,
        ("make", MAKE + "\ndef pick(*options):\n    return options[0]\ngather = pick"),
        ("change", code),
        ("use", USE),
    )
    assert changed_in(pipeline) == ["a", "b"]
    (warning,) = [w for w in pipeline.warnings if w.step == "change"]
    assert f"may be (part of) what {call} returns, code cellpipe cannot see into" in (
        warning.message
    )
    assert "may change 'a' or 'b': this step hands them on as changed too" in warning.message
    assert warning.cell_id is not None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_list_built_in_another_step_cannot_carry_a_change_and_is_warned_about(
    dialect: str,
) -> None:
    # Between steps each value is a copy of its own: combine's frames are not train's and
    # test's any more, so no hand-on can make this right. Say so, and what to write.
    load = "train = {'a': 1}\ntest = {'a': 2}\ncombine = [train, test]"
    pipeline = chain(
        dialect,
        ("load", load),
        ("features", "for dataset in combine:\n    dataset['b'] = 1"),
        ("use", "print(train['b'], test['b'])"),
    )
    (warning,) = [w for w in pipeline.warnings if w.step == "features"]
    assert warning.message == (
        "changes what 'combine' holds, and step 'load' built 'combine' from 'test' and "
        "'train'; between steps each value travels as a copy of its own, so 'test' and 'train' "
        "in step 'use' do not get this change; build 'combine' again in this step from 'test' "
        "and 'train', or change them by name"
    )
    # ... and the other way round
    pipeline = chain(
        dialect,
        ("load", load),
        ("features", "train['b'] = 1"),
        ("use", "print(combine[0]['b'])"),
    )
    (warning,) = [w for w in pipeline.warnings if w.step == "features"]
    assert "changes 'train' in place, and 'combine', built in step 'load', holds 'train'" in (
        warning.message
    )
    # Built again in the step that changes it: followed, nothing to warn about
    pipeline = chain(
        dialect,
        ("load", load),
        ("features", "combine = [train, test]\nfor dataset in combine:\n    dataset['b'] = 1"),
        ("use", "print(train['b'], test['b'])"),
    )
    assert pipeline.step("use").received_from == {"train": "features", "test": "features"}
    assert [w for w in pipeline.warnings if w.step == "features"] == []


# --- names a step binds before it reads them ---------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "code",
    [
        "for i in range(3):\n    print(i)",
        "for i, row in enumerate(rows):\n    print(i, row)",
        "for key, (i, row) in {'k': (1, 2)}.items():\n    print(key, i, row)",
        "total = sum(row * i for i, row in enumerate(rows))",
        "squares = {row: row * row for row in rows}",
        "with open(__file__) as row:\n    print(row)",
        "try:\n    1 / 0\nexcept ZeroDivisionError as error:\n    print(error)",
        "if (i := len(rows)) > 1:\n    print(i)",
        "while (row := rows.pop() if rows else None) is not None:\n    print(row)",
        "match rows:\n    case [i, *rest]:\n        print(i, rest)",
    ],
)
def test_a_name_the_step_binds_before_reading_it_is_not_received(dialect: str, code: str) -> None:
    pipeline = chain(
        dialect,
        ("make", "rows = [1, 2]\ni = 5\nrow = 6\nerror = 7\nkey = 8\nrest = 9"),
        ("change", code),
    )
    assert [e.message for e in pipeline.errors] == []
    received = set(pipeline.step("change").receives)
    assert received <= {"rows"}, received


@pytest.mark.parametrize("dialect", DIALECTS)
def test_loop_variables_of_parallel_steps_are_theirs(dialect: str) -> None:
    # Two branches that each loop with `i` and `err`: neither reads the other's, and the
    # step after them reads neither.
    code = (
        "for i in range(3):\n    print(i)\ntry:\n    pass\nexcept Exception as err:\n    print(err)"
    )
    if dialect == "cellpipe":
        cells: list[Cell] = [
            (["step:a"], "i = 0\nerr = None"),
            (["step:left", "after:a"], code),
            (["step:right", "after:a"], code),
            (["step:join", "after:left", "after:right"], "print(len([i for i in range(2)]))"),
        ]
    else:
        cells = [
            (["block:a"], "i = 0\nerr = None"),
            (["block:left", "prev:a"], code),
            (["block:right", "prev:a"], code),
            (["block:join", "prev:left", "prev:right"], "print(len([i for i in range(2)]))"),
        ]
    pipeline = build(*cells)
    assert flow(pipeline) == {
        "a": ([], []),
        "left": ([], []),
        "right": ([], []),
        "join": ([], []),
    }


def test_a_loop_variable_read_after_the_loop_is_what_the_loop_left() -> None:
    pipeline = build(
        (["step:a"], "i = 0"),
        (["step:b"], "for i in range(3):\n    pass\nprint(i)"),  # the loop may not run
        (["step:c"], "print(i)"),
    )
    assert pipeline.step("b").receives == ["i"]
    assert pipeline.step("c").received_from == {"i": "b"}


def test_a_step_too_tangled_to_follow_hands_on_everything_it_reads_or_makes() -> None:
    names = [f"x{i}" for i in range(1200)]
    pipeline = build(
        (["step:make"], "\n".join(f"{n} = {{}}" for n in names)),
        (["step:change"], f"for d in [{', '.join(names)}]:\n    d['k'] = 1\ny = 2"),
        (["step:use"], f"print({names[0]}, {names[-1]}, y)"),
    )
    assert pipeline.step("use").received_from == {"x0": "change", "x1199": "change", "y": "change"}
    (note,) = [w.message for w in pipeline.warnings if w.step == "change"]
    assert "stops following each change here" in note
