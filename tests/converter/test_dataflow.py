"""Data flow: what each step receives and hands on, and the errors that keep it honest."""

from __future__ import annotations

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
    assert "add the tag after:b" in error_messages(pipeline)[0]
    assert any("autosnapshot" in w.message for w in pipeline.warnings)


# --- warnings for what analysis cannot see ---------------------------------------------------


def warnings_of(pipeline: Pipeline) -> list[str]:
    return [w.message for w in pipeline.warnings]


def test_alias_changes_are_warned_about() -> None:
    pipeline = build((["step:a"], "a = [1]"), (["step:b"], "b = a\nb.append(2)"))
    assert any("'b' is another name for 'a'" in w for w in warnings_of(pipeline))


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


def test_magics_are_left_out_with_a_warning_and_bash_cells_are_errors() -> None:
    pipeline = build(
        (
            ["step:a"],
            "%matplotlib inline\n!pip install -q -r reqs.txt 'scikit-learn>=1.4' x\n"
            "files = !ls\nx = 1",
        ),
        ([], "%pip install pandas\n%%time\ny = x"),
    )
    assert len([w for w in warnings_of(pipeline) if "is left out" in w]) == 3
    assert pipeline.requirements == ["scikit-learn>=1.4", "x", "pandas"]
    assert any("-r reqs.txt are not carried" in w for w in warnings_of(pipeline))
    assert pipeline.step("a").cells[0].source.splitlines()[-1] == "x = 1"
    bash = build((["step:a"], "%%bash\necho hi"))
    assert "the cell magic %%bash is not Python" in error_messages(bash)[0]


def test_cellpipes_own_magics_are_left_out_quietly() -> None:
    pipeline = build((["step:a"], "%load_ext cellpipe\n%cellpipe compile\nx = 1"))
    assert not [w for w in warnings_of(pipeline) if "is left out" in w]
    assert pipeline.step("a").cells[0].source.splitlines()[-1] == "x = 1"
