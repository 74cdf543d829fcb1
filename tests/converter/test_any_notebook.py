"""Notebooks as people write them (issue 14): untagged notebooks are one step, Kale's dialect as
Kale reads it, papermill's parameters as papermill reads them.

The notebooks here are written with the habits of public ones (Kale's examples and test
assets, papermill's test notebooks): markdown between cells, `!pip` lines, comments and blank
lines in the parameters cell, `name = None`, annotations, an empty `block:` tag left by Kale's
extension. Kale's and papermill's own notebooks are run too where those packages are installed
(see `kale_notebooks` and `papermill_notebooks`); they are never copied into the project.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from cellpipe.converter import build_pipeline, compile_yaml, load_pipeline
from cellpipe.converter.model import Parameter, Pipeline
from cellpipe.converter.params import ParameterError, given_values, parameter_values
from tests.notebooks import Cell, notebook, write

# The tag names of each dialect: cellpipe's, Kale 0.x's (block:/prev:) and Kale 2.x's (step:,
# with prev:); the role tags are papermill's and Kale's.
DIALECTS = {
    "cellpipe": {
        "step": "step",
        "after": "after",
        "parameters": "parameters",
        "metrics": "metrics",
    },
    "kale": {
        "step": "block",
        "after": "prev",
        "parameters": "pipeline-parameters",
        "metrics": "pipeline-metrics",
    },
    "kale2": {
        "step": "step",
        "after": "prev",
        "parameters": "pipeline-parameters",
        "metrics": "pipeline-metrics",
    },
}


def build(*cells: Cell, path: str = "report.ipynb", **metadata: Any) -> Pipeline:
    return build_pipeline(notebook(*cells, metadata=metadata or None), path)


def errors(pipeline: Pipeline) -> list[str]:
    return [e.message for e in pipeline.errors]


def tasks(pipeline: Pipeline) -> dict[str, Any]:
    spec = next(yaml.safe_load_all(compile_yaml(pipeline)))
    result: dict[str, Any] = spec["root"]["dag"]["tasks"]
    return result


def root_inputs(pipeline: Pipeline) -> dict[str, Any]:
    spec = next(yaml.safe_load_all(compile_yaml(pipeline)))
    result: dict[str, Any] = spec["root"]["inputDefinitions"]["parameters"]
    return result


# --- a notebook with no step tags is a one-step pipeline --------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_untagged_notebook_is_one_step_named_after_the_notebook(dialect: str) -> None:
    tag = DIALECTS[dialect]
    pipeline = build(
        "# Daily report\nRun with papermill, or as a pipeline.",
        ([], "!pip install requests\nimport statistics"),
        ([tag["parameters"]], "# how many days\ndays = 7\n\nlabel = None  # optional"),
        ([], "values = [d * 1.5 for d in range(days)]"),
        "## Summary",
        ([], "mean = statistics.mean(values)\ntitle = label or 'report'"),
        (["skip"], "values.append(10**6)  # a scratch cell"),
        ([], "spread = max(values) - min(values)"),
        ([tag["metrics"]], "print(mean)\nprint(spread)"),
    )
    assert errors(pipeline) == []
    (step,) = pipeline.steps
    assert (step.name, step.task) == ("report", "report")
    assert [c.index for c in step.cells] == [1, 3, 5, 7]  # no skip, parameters, metrics cells
    assert step.parameters == ["days", "label"]
    assert step.metrics == ["mean", "spread"]
    assert pipeline.requirements == ["requests"]
    assert {n: (p.type, p.default, p.optional) for n, p in pipeline.parameters.items()} == {
        "days": ("int", 7, False),
        "label": ("str", None, True),
    }
    (note,) = pipeline.notes
    assert "no cell is tagged as a step, so the notebook runs as one step" in note.message
    assert "its parameters are pipeline parameters" in note.message
    assert pipeline.to_json()["notes"] == [note.to_json()]
    assert list(tasks(pipeline)) == ["report"]


def test_imports_and_functions_cells_stay_in_notebook_order_in_the_one_step() -> None:
    pipeline = build(
        ([], "x = 2"),
        (["imports"], "import math"),
        (["functions"], "def double(v):\n    return v * 2"),
        ([], "y = double(math.sqrt(x))"),
    )
    assert errors(pipeline) == []
    assert [c.index for c in pipeline.steps[0].cells] == [0, 1, 2, 3]
    assert pipeline.prelude == []


def test_tags_on_untagged_notebooks_still_set_the_one_steps_resources() -> None:
    pipeline = build(([], "import os"), (["gpu:1", "memory:8Gi"], "model = 1"))
    (step,) = pipeline.steps
    assert step.resources.gpu is not None and step.resources.gpu.count == 1
    assert step.resources.memory_limit == "8Gi"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_one_step_tag_refines_the_notebook_into_steps(dialect: str) -> None:
    tag = DIALECTS[dialect]
    pipeline = build(
        ([], "import statistics"),
        ([tag["parameters"]], "days = 3"),
        ([f"{tag['step']}:load"], "values = list(range(days))"),
        ([f"{tag['step']}:summarise"], "mean = statistics.mean(values)"),
    )
    assert errors(pipeline) == []
    assert pipeline.notes == []
    assert [s.name for s in pipeline.steps] == ["load", "summarise"]


def test_a_step_line_counts_as_a_step_tag() -> None:
    pipeline = build(([], "x = 1"), ([], "%%step train\ny = x + 1"))
    assert [s.name for s in pipeline.steps] == ["train"]
    assert pipeline.notes == []


@pytest.mark.parametrize(
    "cells",
    [
        ("# only words",),
        ((["skip"], "x = 1"),),
        ((["parameters"], "x = 1"),),
    ],
)
def test_a_notebook_with_no_code_to_run_is_an_error_that_says_so(cells: tuple[Cell, ...]) -> None:
    pipeline = build(*cells)
    assert pipeline.steps == []
    assert "the notebook has no code to run" in errors(pipeline)[0]


def test_the_one_step_of_an_unsaved_or_odd_path_still_has_a_name() -> None:
    pipeline = build_pipeline(notebook(([], "x = 1")), "work\\My Report (v2).ipynb")
    (step,) = pipeline.steps
    assert (step.name, step.task) == ("My Report (v2)", "my-report-v2")
    pipeline = build_pipeline(notebook(([], "x = 1")), ".ipynb")
    assert pipeline.steps[0].name in (".ipynb", "notebook")


# --- Kale's dialect as Kale reads it -----------------------------------------------------------


@pytest.mark.parametrize("empty", ["block:", "step:", "block: ", "step:  "])
def test_an_empty_block_or_step_tag_is_no_tag(empty: str) -> None:
    """Kale's extension leaves `block:` (Kale 2: `step:`) on cells; Kale reads it as untagged,
    so the cell continues the step above it."""
    pipeline = build(
        (["imports"], "import math"),
        (["block:load"], "x = 4"),
        ([empty], "y = math.sqrt(x)"),
        (["block:train", "prev:load"], "z = y * 2"),
    )
    assert errors(pipeline) == []
    assert [c.index for c in pipeline.step("load").cells] == [1, 2]
    assert pipeline.step("train").receives == ["y"]


def test_an_empty_tag_alone_leaves_the_notebook_untagged() -> None:
    pipeline = build((["block:"], "x = 1"), ([], "y = x"))
    assert errors(pipeline) == []
    assert [s.name for s in pipeline.steps] == ["report"]
    assert len(pipeline.notes) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_metric_may_name_a_pipeline_parameter(dialect: str) -> None:
    """Kale's own test notebook (pipeline_parameters_and_metrics) reports `print(d1)` where d1
    is a parameter: the first step that receives it reports it, else the first step."""
    tag = DIALECTS[dialect]
    pipeline = build(
        (["imports"], "import random"),
        ([tag["parameters"]], "d1 = 5\nd2 = 6\nrate = 0.5\nflag = True"),
        ([f"{tag['step']}:create_matrix"], "matrix = [[random.random()] * d2 for _ in range(3)]"),
        (
            [f"{tag['step']}:sum_matrix", f"{tag['after']}:create_matrix"],
            "total = sum(map(sum, matrix)) * d1",
        ),
        ([tag["metrics"]], "print(d1)\nprint(d2)\nprint(rate)\nprint(flag)\nprint(total)"),
    )
    assert errors(pipeline) == []
    create, add = pipeline.steps
    assert create.metrics == ["d2", "rate", "flag"]  # d2 it receives; the others: first step
    assert add.metrics == ["d1", "total"]  # the first step that receives d1
    assert create.parameters == ["d2", "rate", "flag"]
    assert "d2" not in create.hands_on  # a parameter is an input, not an output too
    assert pipeline.metrics == ["d1", "d2", "rate", "flag", "total"]
    assert set(tasks(pipeline)) == {"create-matrix", "sum-matrix"}


def test_a_metric_naming_a_text_parameter_is_an_error_that_says_why() -> None:
    pipeline = build(
        (["pipeline-parameters"], "name = 'x'"),
        (["block:a"], "y = name"),
        (["pipeline-metrics"], "print(name)"),
    )
    assert "metrics must be numbers" in errors(pipeline)[0]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("first", "second", "tasks_"),
    [
        ("load-data", "train-model", ["load-data", "train-model"]),
        ("load_data", "train_model_v2", ["load-data", "train-model-v2"]),
        ("Load data!", "évaluer le modèle", ["load-data", "valuer-le-mod-le"]),
        ("1st", "2nd", ["1st", "2nd"]),
    ],
)
def test_step_names_with_hyphens_and_other_characters(
    dialect: str, first: str, second: str, tasks_: list[str]
) -> None:
    tag = DIALECTS[dialect]
    pipeline = build(
        ([f"{tag['step']}:{first}"], "x = 1"),
        ([f"{tag['step']}:{second}", f"{tag['after']}:{first}"], "y = x + 1"),
    )
    assert errors(pipeline) == []
    assert [(s.name, s.task) for s in pipeline.steps] == list(
        zip([first, second], tasks_, strict=True)
    )
    assert pipeline.steps[1].after == [first]
    compiled = tasks(pipeline)
    assert set(compiled) == set(tasks_)
    assert compiled[tasks_[1]]["dependentTasks"] == [tasks_[0]]


def test_kales_steps_defaults_and_volume_settings_are_all_read() -> None:
    """Kale 2.3's steps_defaults language (annotation, label, limit, secret, image, cache,
    report) applies to every step below the step's own tags; a pvc volume with
    expose_as_env_var sets KALE_VOLUME_<NAME> to its mount path, as Kale's template does."""
    pipeline = build(
        (["step:a"], "x = 1"),
        (["step:b", "prev:a", "image:python:3.13-slim", "limit:memory:1Gi"], "y = x"),
        kubeflow_notebook={
            "pipeline_name": "defaults",
            "experiment_name": "e",
            "steps_defaults": [
                "limit:memory:4Gi",
                "limit:cpu:2",
                "secret:creds:token:API_TOKEN",
                "image:python:3.12-slim",
                "label:team:ml",
            ],
            "volumes": [
                {
                    "name": "raw-data",
                    "type": "pvc",
                    "mount_point": "/data",
                    "expose_as_env_var": True,
                }
            ],
        },
    )
    assert errors(pipeline) == []
    a, b = pipeline.steps
    assert (a.base_image, b.base_image) == ("python:3.12-slim", "python:3.13-slim")
    assert (a.resources.memory_limit, b.resources.memory_limit) == ("4Gi", "1Gi")
    assert a.resources.cpu_limit == b.resources.cpu_limit == "2"
    assert [s.env for s in a.options.secrets] == ["API_TOKEN"]
    assert a.options.env == {"KALE_VOLUME_RAW_DATA": "/data"}
    assert [v.mount_path for v in b.options.volumes] == ["/data"]
    compile_yaml(pipeline)


def test_a_limit_kale_accepts_and_cellpipe_cannot_set_is_a_warning() -> None:
    pipeline = build((["step:a", "limit:ephemeral-storage:1Gi"], "x = 1"))
    assert errors(pipeline) == []
    assert any(
        "'limit:ephemeral-storage:1Gi' is not honoured" in w.message for w in pipeline.warnings
    )


def test_cells_below_papermills_parameters_cell_go_on_as_above_it() -> None:
    """papermill's `parameters` marks that one cell (papermill injects below it and runs the
    rest as code); Kale's `pipeline-parameters` takes the untagged cells below along (Kale)."""
    papermill = build(
        ([], "import math"),
        (["parameters"], "n = 4"),
        ([], "root = math.sqrt(n)"),
        (["step:use"], "twice = root * 2"),
    )
    assert errors(papermill) == []
    assert [c.index for c in papermill.step("use").cells] == [0, 2, 3]
    kale = build(
        (["pipeline-parameters"], "n = 4"),
        ([], "m = 5"),
        (["block:use"], "total = n + m"),
    )
    assert errors(kale) == []
    assert list(kale.parameters) == ["n", "m"]


# --- papermill's parameters -----------------------------------------------------------------

PARAMETERS_CELL = '''"""Parameters of the report."""
# data
source = "s3://bucket/data.csv"  # where the rows are
name = None
repeat: int = 2

rate: float = 1  # a float, though written 1
limit: Optional[int] = None
labels = [
    "a",  # first
    # a comment inside
    "b",
]  # type: List[str] the labels
options: "Dict[str, int]" = {"k": 1}
verbose = False
'''


def test_papermills_parameters_cell_habits() -> None:
    pipeline = build((["parameters"], PARAMETERS_CELL), ([], "print(source, name, repeat)"))
    assert errors(pipeline) == []
    assert pipeline.warnings == [w for w in pipeline.warnings if "registry" in w.message]
    found = {n: (p.type, p.default, p.optional) for n, p in pipeline.parameters.items()}
    assert found == {
        "source": ("str", "s3://bucket/data.csv", False),
        "name": ("str", None, True),
        "repeat": ("int", 2, False),
        "rate": ("float", 1.0, False),
        "limit": ("int", None, True),
        "labels": ("list", ["a", "b"], False),
        "options": ("dict", {"k": 1}, False),
        "verbose": ("bool", False, False),
    }
    assert pipeline.to_json()["optional_parameters"] == ["name", "limit"]


@pytest.mark.parametrize(
    ("line", "kind", "optional"),
    [
        ("x = None", "str", True),
        ("x: int = None", "int", True),
        ("x: Optional[float] = None", "float", True),
        ("x: typing.Optional[bool] = None", "bool", True),
        ("x: int | None = None", "int", True),
        ("x: None | str = None", "str", True),
        ("x: Union[int, None] = None", "int", True),
        ("x: 'NoneType' = None", "str", True),
        ("x = None  # type: int", "int", True),
        ("x: list[str] = None", "list", True),
        ("x: Optional[int] = 3", "int", True),
        ("x: str = 'a'", "str", False),
    ],
)
def test_optional_parameters_are_typed_by_their_annotation_else_str(
    line: str, kind: str, optional: bool
) -> None:
    pipeline = build((["parameters"], line), ([], "print(x)"))
    assert errors(pipeline) == []
    parameter = pipeline.parameters["x"]
    assert (parameter.type, parameter.optional) == (kind, optional)
    assert not [w for w in pipeline.warnings if "annotated" in w.message]


@pytest.mark.parametrize(
    ("line", "kind", "fragment"),
    [
        ("x: int = 'seven'", "str", "is annotated int but its default 'seven' is a str"),
        ("x: Path = 'out'", "str", "(Path is not a pipeline type)"),
        ("x: Path = None", "str", "Path, which is not a pipeline type"),
    ],
)
def test_an_annotation_that_cannot_be_honoured_is_a_warning(
    line: str, kind: str, fragment: str
) -> None:
    pipeline = build((["parameters"], line), ([], "print(x)"))
    assert errors(pipeline) == []
    assert pipeline.parameters["x"].type == kind
    assert any(fragment in w.message for w in pipeline.warnings)


def test_papermills_injected_parameters_are_the_runs_defaults() -> None:
    pipeline = build(
        (["parameters"], "alpha = 0.5\nname = None\nn = 3\nmode = 'fast'"),
        (["injected-parameters"], '# Parameters\nalpha = 1\nname = "ada"\nn = None\nextra = 2\n'),
        ([], "print(alpha, name, n, mode, extra)"),
    )
    assert errors(pipeline) == []
    found = {n: (p.type, p.default, p.optional) for n, p in pipeline.parameters.items()}
    assert found == {
        "alpha": ("float", 1.0, False),
        "name": ("str", "ada", True),
        "n": ("int", None, True),
        "mode": ("str", "fast", False),
        "extra": ("int", 2, False),
    }
    assert pipeline.parameters["alpha"].cell_index == 0  # declared where papermill reads it
    (warning,) = [w for w in pipeline.warnings if "injected" in w.message]
    assert "'extra', which no parameters cell declares" in warning.message
    assert not [w for w in pipeline.warnings if "set twice" in w.message]
    assert len(pipeline.steps) == 1


def test_an_injected_cell_in_a_tagged_notebook_marks_only_itself() -> None:
    pipeline = build(
        (["parameters"], "n = 1"),
        (["injected-parameters"], "n = 5"),
        ([], "import math"),
        (["step:a"], "root = math.sqrt(n)"),
    )
    assert errors(pipeline) == []
    assert pipeline.parameters["n"].default == 5
    assert [c.index for c in pipeline.step("a").cells] == [2, 3]


def test_an_injected_value_of_another_type_retypes_the_parameter_with_a_warning() -> None:
    pipeline = build(
        (["parameters"], "n = 1"), (["injected-parameters"], "n = 'many'"), ([], "print(n)")
    )
    assert (pipeline.parameters["n"].type, pipeline.parameters["n"].default) == ("str", "many")
    assert any("where the parameters cell has an int" in w.message for w in pipeline.warnings)


def optional(name: str, kind: str = "str", default: Any = None) -> Parameter:
    return Parameter(name, kind, default, 0, None, optional=True)  # type: ignore[arg-type]


def test_p_on_an_optional_parameter() -> None:
    parameters = {"name": optional("name"), "limit": optional("limit", "int")}
    assert parameter_values(parameters, []) == {"name": None, "limit": None}
    assert parameter_values(parameters, ["name=text", "limit=3"]) == {"name": "text", "limit": 3}
    assert parameter_values(parameters, ["name=None"]) == {"name": None, "limit": None}
    assert parameter_values(parameters, ["name="]) == {"name": "", "limit": None}
    with pytest.raises(ParameterError, match="is an int or None"):
        parameter_values(parameters, ["limit=lots"])
    assert given_values(parameters, {"name": None, "limit": "4"}) == {"name": None, "limit": 4}
    assert given_values(parameters, {"limit": 4}) == {"name": None, "limit": 4}


def test_optional_parameters_compile_as_kfps_optional_inputs() -> None:
    pipeline = build(
        (["parameters"], "name = None\nlimit: Optional[int] = None\nn = 2"),
        ([], "print(name, limit, n)"),
    )
    inputs = root_inputs(pipeline)
    assert inputs["name"] == {"isOptional": True, "parameterType": "STRING"}
    assert inputs["limit"] == {"isOptional": True, "parameterType": "NUMBER_INTEGER"}
    assert inputs["n"]["defaultValue"] == 2
    spec = next(yaml.safe_load_all(compile_yaml(pipeline)))
    component = spec["components"]["comp-report"]["inputDefinitions"]["parameters"]
    assert component["name"] == {"isOptional": True, "parameterType": "STRING"}
    assert "isOptional" not in component["n"]


# --- papermill as the oracle: names and types agree with papermill.inspect_notebook ----------

needs_papermill = pytest.mark.skipif(
    importlib.util.find_spec("papermill") is None,
    reason="papermill (the test extra) is not installed: it is the oracle for parameters",
)
# papermill's inferred_type_name (an annotation or `# type:` comment, as written) -> cellpipe's
# (type, optional). "None": papermill does not type the parameter; its default does.
PAPERMILL_TYPES: dict[str, tuple[str, bool]] = {
    "int": ("int", False),
    "float": ("float", False),
    "str": ("str", False),
    "bool": ("bool", False),
    "List[str]": ("list", False),
    "Dict[str, int]": ("dict", False),
    "Optional[int]": ("int", True),
    "Optional[str]": ("str", True),
    "NoneType": ("str", True),
}
_LITERAL_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def assert_papermill_agrees(path: Path) -> None:
    import papermill

    theirs = papermill.inspect_notebook(str(path))
    ours = load_pipeline(path).parameters
    assert set(ours) == set(theirs), path.name
    for name, parameter in theirs.items():
        annotation = parameter["inferred_type_name"]
        if annotation == "None":  # papermill does not type it: its default's literal does
            default = ast.literal_eval(parameter["default"])
            expected = ("str", True) if default is None else (_LITERAL_TYPES[type(default)], False)
        else:
            expected = PAPERMILL_TYPES[annotation]
        assert (ours[name].type, ours[name].optional) == expected, (path.name, name)


# What Jupyter writes into every notebook; papermill needs the kernel's name.
KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}
OUR_PAPERMILL_NOTEBOOKS: dict[str, dict[str, Any]] = {
    "report": notebook(
        "# A report papermill runs",
        ([], "import json"),
        (["parameters"], PARAMETERS_CELL),
        ([], "print(json.dumps([source, name, repeat, rate, limit, labels, options]))"),
        metadata=KERNEL,
    ),
    "produced": notebook(
        (["parameters"], "# Parameters\nalpha = 0.5\nmsg = None\ncount: int = 3\n"),
        (["injected-parameters"], "# Parameters\nalpha = 0.9\nmsg = 'hi'\n"),
        ([], "print(alpha, msg, count)"),
        metadata=KERNEL,
    ),
    "tagged": notebook(
        (["parameters"], "epochs = 2  # type: int\nlr = 0.01\nrun_name: Optional[str] = None"),
        (["step:train"], "model = epochs * lr"),
        (["step:report"], "print(run_name or 'run', model)"),
        metadata=KERNEL,
    ),
    "kale-and-papermill": notebook(
        (["parameters"], "n = 3\nscale: float = 2"),
        (["block:make"], "rows = [i * scale for i in range(n)]"),
        (["block:sum", "prev:make"], "total = sum(rows)"),
        metadata=KERNEL,
    ),
}


@needs_papermill
@pytest.mark.parametrize("name", OUR_PAPERMILL_NOTEBOOKS)
def test_papermill_agrees_on_our_notebooks(name: str, tmp_path: Path) -> None:
    path = write(tmp_path / f"{name}.ipynb", OUR_PAPERMILL_NOTEBOOKS[name])
    assert errors(load_pipeline(path)) == []
    assert_papermill_agrees(path)


def papermill_notebooks() -> list[Path]:
    """papermill's own test notebooks, where the installed papermill ships them."""
    spec = importlib.util.find_spec("papermill")
    if spec is None or not spec.origin:
        return []
    return sorted((Path(spec.origin).parent / "tests" / "notebooks").glob("*.ipynb"))


@pytest.mark.skipif(
    not papermill_notebooks(), reason="papermill is not installed, or ships no test notebooks"
)
@pytest.mark.parametrize("path", papermill_notebooks(), ids=lambda p: p.name)
def test_papermills_own_notebooks_compile_or_say_why_and_agree_on_parameters(path: Path) -> None:
    pipeline = load_pipeline(path)
    for diagnostic in pipeline.errors:  # broken on purpose (`= 2`, py2 print): user errors
        assert diagnostic.message and "Traceback" not in diagnostic.message
    kernel = (json.loads(path.read_text())["metadata"].get("kernelspec") or {}).get("name", "")
    if pipeline.errors or not str(kernel or "python").startswith("python"):
        return  # refused, or not Python (papermill's R notebook): nothing to compare
    compile_yaml(pipeline)
    assert_papermill_agrees(path)


# --- Kale's own notebooks ---------------------------------------------------------------------

# What Kale 2.3 compiles and cellpipe refuses, and why (cellpipe is stricter where Kale's
# pipeline would fail at run time).
KALE_REFUSED = {
    # `prev:dataprocessing` sits on a `functions` cell, where Kale drops it; step `train` then
    # reads `trainloader` with no step before it, a NameError in Kale's pipeline.
    "cifar10_classification.ipynb": "add the tag after:dataprocessing",
}


def kale_notebooks() -> list[Path]:
    """Kale's test notebooks (shipped in the kubeflow-kale wheel) and, with
    CELLPIPE_KALE_NOTEBOOKS=DIR (an unpacked kubeflow-kale sdist), its examples."""
    found: list[Path] = []
    spec = importlib.util.find_spec("kale")
    if spec is not None and spec.origin:
        found.extend(Path(spec.origin).parent.glob("tests/assets/notebooks/*.ipynb"))
    folder = os.environ.get("CELLPIPE_KALE_NOTEBOOKS")
    if folder:
        found.extend(Path(folder).rglob("*.ipynb"))
    return sorted(set(found))


@pytest.mark.skipif(
    not kale_notebooks(),
    reason="kubeflow-kale is not installed and CELLPIPE_KALE_NOTEBOOKS is not set "
    "(pip install kubeflow-kale==2.3.0 in a separate environment and point it at its notebooks)",
)
@pytest.mark.parametrize("path", kale_notebooks(), ids=lambda p: p.name)
def test_kales_own_notebooks_compile(path: Path) -> None:
    pipeline = load_pipeline(path)
    if path.name in KALE_REFUSED:
        assert any(KALE_REFUSED[path.name] in m for m in errors(pipeline))
        return
    assert errors(pipeline) == []
    assert tasks(pipeline)
