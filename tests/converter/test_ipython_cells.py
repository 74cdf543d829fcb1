"""IPython cells: a step runs a cell as written (magics, `!` lines, cell magics), the analysis
reads the Python each IPython line stands for, and diagnostics name the cell's own lines.

The cells are written as public notebooks write them: Kale's examples (`%matplotlib inline` in
the imports cell, `block:`/`prev:` tags), Colab and Hugging Face notebooks (`%%capture` over
`!pip install`, an install only on Colab), papermill's notebooks (a parameters cell, `%%time`).
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from cellpipe.converter import build_pipeline, source
from cellpipe.converter.bundle import make_bundle
from cellpipe.converter.model import Diagnostic, Pipeline
from cellpipe.converter.source import prepare
from tests.notebooks import Cell, notebook

KALE_IMPORTS = (
    ["imports"],
    "%matplotlib inline\n"
    "import numpy as np\n"
    "import pandas as pd\n"
    "from matplotlib import pyplot as plt\n"
    "from sklearn.ensemble import RandomForestClassifier",
)


def build(*cells: Cell, **metadata: Any) -> Pipeline:
    return build_pipeline(notebook(*cells, metadata=metadata or None), "titanic.ipynb")


def cell_warnings(pipeline: Pipeline) -> list[Diagnostic]:
    """The warnings about cells (not the registry's, which every unconfigured compile gives)."""
    return [w for w in pipeline.warnings if w.cell_index is not None]


def flow(pipeline: Pipeline) -> dict[str, tuple[list[str], list[str]]]:
    assert [e.message for e in pipeline.errors] == []
    return {s.name: (s.receives, s.hands_on) for s in pipeline.steps}


def runs(pipeline: Pipeline, step: str) -> list[str]:
    """The sources the step runs, one per cell."""
    return [c.source for c in pipeline.step(step).cells]


# --- line magics and ! lines --------------------------------------------------------------------


def test_line_magics_run_as_written_and_their_code_is_read_as_python() -> None:
    # Given: Kale's titanic example, timed with %time and %timeit as people do
    pipeline = build(
        KALE_IMPORTS,
        (
            ["block:loaddata"],
            'path = "data/"\ntrain_df = pd.read_csv(path + "train.csv")\n'
            "X = train_df.drop('Survived', axis=1)\ny = train_df['Survived']",
        ),
        (
            ["block:randomforest", "prev:loaddata"],
            "random_forest = RandomForestClassifier(n_estimators=100)\n"
            "%time random_forest.fit(X, y)\n"
            "%timeit -n 3 -r 1 random_forest.predict(X)\n"
            "acc_random_forest = round(random_forest.score(X, y) * 100, 2)",
        ),
        (["block:results", "prev:randomforest"], "print(acc_random_forest)"),
    )
    # Then: `%time random_forest.fit(X, y)` uses X and y: the step receives them
    assert flow(pipeline) == {
        "loaddata": ([], ["X", "y"]),
        "randomforest": (["X", "y"], ["acc_random_forest"]),
        "results": (["acc_random_forest"], []),
    }
    # and the step runs the magics themselves, in IPython's shell
    assert runs(pipeline, "randomforest")[0].splitlines()[1:3] == [
        "%time random_forest.fit(X, y)",
        "%timeit -n 3 -r 1 random_forest.predict(X)",
    ]
    assert pipeline.prelude[0].source.startswith("%matplotlib inline\n")
    assert cell_warnings(pipeline) == []


def test_a_magic_or_shell_assignment_sets_its_name() -> None:
    pipeline = build(
        (["step:list"], "files = !ls data/\nelapsed = %time sum(range(10))"),
        (["step:count"], "print(len(files), elapsed)"),
    )
    assert flow(pipeline) == {
        "list": ([], ["files", "elapsed"]),
        "count": (["files", "elapsed"], []),
    }
    assert runs(pipeline, "list") == ["files = !ls data/\nelapsed = %time sum(range(10))"]


def test_a_shell_line_reads_the_python_names_it_expands() -> None:
    # `!wget {url}` and `!echo $name` put Python values into the command (IPython's var_expand)
    pipeline = build(
        (["step:settings"], "url = 'https://example.com/titanic.csv'\nname = 'titanic'"),
        (["step:download"], "!wget -q {url} -O {name}.csv\n!echo downloaded $name"),
    )
    assert flow(pipeline)["download"] == (["url", "name"], [])
    assert cell_warnings(pipeline) == []


def test_help_lines_and_known_magics_give_no_diagnostics() -> None:
    pipeline = build(
        (
            ["step:explore"],
            "%load_ext autoreload\n%autoreload 2\n%config InlineBackend.figure_format = 'retina'\n"
            "%env OMP_NUM_THREADS=1\n%pip list\n!nvidia-smi\n!!date\nlen?\n%cd data\nx = 1",
        ),
    )
    assert (pipeline.errors, cell_warnings(pipeline)) == ([], [])


# --- cell magics --------------------------------------------------------------------------------


def test_capture_defines_its_name_and_time_bodies_are_python() -> None:
    pipeline = build(
        (["parameters"], "n_estimators = 100"),
        (
            ["step:train"],
            "%%time\nfrom sklearn.datasets import load_iris\n"
            "X, y = load_iris(return_X_y=True)\nmodel = RandomForestClassifier(n_estimators)",
        ),
        (["step:fit"], "%%capture out --no-stderr\nmodel.fit(X, y)\nprint(model)"),
        (["step:show"], "out.show()"),
        KALE_IMPORTS,
    )
    assert flow(pipeline) == {
        "train": ([], ["X", "y", "model"]),
        "fit": (["model", "X", "y"], ["out"]),
        "show": (["out"], []),
    }
    assert "n_estimators" in pipeline.step("train").parameters


@pytest.mark.parametrize(
    "cell",
    [
        "%%bash\nset -e\nmkdir -p data\ncd data && ls",
        "%%sh\necho $HOME",
        "%%script bash\necho hi",
        "%%html\n<b>Titanic</b>",
        "%%markdown\n# Results",
        "%%latex\n$$e^{i\\pi} + 1 = 0$$",
        "%%javascript\nconsole.log('hi')",
        "%%svg\n<svg></svg>",
        "%%python3\nimport sys\nprint(sys.version)",
    ],
)
def test_cell_magics_whose_body_is_not_python_run_without_a_diagnostic(cell: str) -> None:
    pipeline = build((["step:a"], cell))
    assert (pipeline.errors, cell_warnings(pipeline)) == ([], [])
    assert runs(pipeline, "a") == [cell]


def test_a_script_magics_out_sets_its_name() -> None:
    pipeline = build(
        (["step:a"], "%%bash --out listing\nls -la"),
        (["step:b"], "print(listing)"),
    )
    assert flow(pipeline) == {"a": ([], ["listing"]), "b": (["listing"], [])}


def test_a_file_written_by_writefile_and_run_by_a_later_step_is_a_warning() -> None:
    # Kubeflow runs each step in its own pod: the file does not travel
    pipeline = build(
        (["step:write"], "%%writefile train.py\nimport sys\nprint(sys.argv)"),
        (["step:run"], "!python train.py --epochs 2"),
    )
    (warning,) = cell_warnings(pipeline)
    assert (warning.cell_index, warning.step) == (1, "run")
    assert "names the file 'train.py', which step 'write' writes" in warning.message
    assert runs(pipeline, "write") == ["%%writefile train.py\nimport sys\nprint(sys.argv)"]
    # the same step may write and read its own file
    alone = build((["step:a"], "%%writefile train.py\nprint(1)"), ([], "!python train.py"))
    assert cell_warnings(alone) == []


# --- what a step does not run -------------------------------------------------------------------


def test_the_step_line_cellpipes_own_magics_and_pip_lines_do_not_run() -> None:
    pipeline = build(
        ([], "%load_ext cellpipe\n%cellpipe compile --format json"),
        (
            [],
            "%%step train --after load\n"
            "!pip install -q 'scikit-learn>=1.4' xgboost\n"
            "%pip install --upgrade pandas\n"
            "import xgboost\nmodel = xgboost.XGBClassifier()",
        ),
        (["step:load"], "x = 1"),
    )
    assert [e.message for e in pipeline.errors] == []
    assert runs(pipeline, "train") == [
        "pass  # cellpipe: %load_ext cellpipe\npass  # cellpipe: %cellpipe compile --format json",
        # the %%step line is an empty line: the cell keeps its line numbers
        "\npass  # cellpipe: !pip install -q 'scikit-learn>=1.4' xgboost\n"
        "pass  # cellpipe: %pip install --upgrade pandas\n"
        "import xgboost\nmodel = xgboost.XGBClassifier()",
    ]
    assert pipeline.requirements == ["scikit-learn>=1.4", "xgboost", "pandas"]
    assert cell_warnings(pipeline) == []


def test_a_pip_line_indented_in_an_if_becomes_pass_in_its_block() -> None:
    # Hugging Face's notebooks install only on Colab
    cell = (
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        "    !pip install -q datasets transformers\n"
        "from datasets import load_dataset"
    )
    pipeline = build((["step:data"], cell), (["step:use"], "print(load_dataset)"))
    assert runs(pipeline, "data") == [
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        "    pass  # cellpipe: !pip install -q datasets transformers\n"
        "from datasets import load_dataset"
    ]
    assert pipeline.requirements == ["datasets", "transformers"]
    assert flow(pipeline)["use"] == (["load_dataset"], [])
    compile(runs(pipeline, "data")[0], "cell", "exec")  # the block is not empty


def test_capture_over_pip_lines_still_captures() -> None:
    pipeline = build((["step:setup"], "%%capture\n!pip install -q torch torchvision\nx = 1"))
    assert runs(pipeline, "setup") == [
        "%%capture\npass  # cellpipe: !pip install -q torch torchvision\nx = 1"
    ]
    assert pipeline.requirements == ["torch", "torchvision"]


# --- what the analysis cannot see ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("%run helpers.py", "%run runs a file's code, whose names cellpipe cannot see"),
        ("%store -r model", "%store keeps values in IPython's own database"),
        ("%load helpers.py", "%load only fills the cell in Jupyter"),
        ("%reset -f", "%reset deletes names without cellpipe seeing which"),
        ("%sql SELECT * FROM passengers", "%sql is a magic cellpipe does not know"),
    ],
)
def test_a_magic_whose_effect_on_names_is_unseen_is_a_warning(line: str, says: str) -> None:
    pipeline = build((["step:a"], "x = 1"), (["step:b"], f"y = 2\n{line}\nprint(y)"))
    (warning,) = cell_warnings(pipeline)
    assert (warning.cell_index, warning.step, warning.severity) == (1, "b", "warning")
    assert warning.message.startswith(f"line 2: {says}")
    assert warning.for_people("titanic.ipynb").startswith(
        "titanic.ipynb: cell 2 (step 'b'): line 2"
    )
    assert runs(pipeline, "b") == [f"y = 2\n{line}\nprint(y)"]  # it still runs


def test_an_unknown_cell_magic_is_a_warning_and_runs() -> None:
    pipeline = build((["step:query"], "%%bigquery passengers\nSELECT * FROM titanic"))
    (warning,) = cell_warnings(pipeline)
    assert warning.message.startswith("line 1: %%bigquery is a magic cellpipe does not know")
    assert "(%load_ext) in this step or in the imports cell" in warning.message
    assert pipeline.errors == []


# --- line numbers -------------------------------------------------------------------------------


def test_diagnostics_name_the_cells_own_lines() -> None:
    # Given: a %%step line, magics and ! lines above the problem
    cell = (
        "%%step train\n"
        "%matplotlib inline\n"
        "!nvidia-smi\n"
        "if True:\n"
        "    %time x = sum(range(3))\n"
        "%run extra.py\n"
        "y = [1, 2\n"
    )
    pipeline = build(([], cell))
    (error,) = pipeline.errors
    assert error.message.startswith("syntax error on line 7:")
    (warning,) = cell_warnings(pipeline)
    assert warning.message.startswith("line 6: %run")
    # the code run and the code analysed have the cell's lines, one for one
    prepared = prepare(cell.split("\n", 1)[1])
    assert prepared.code.count("\n") == prepared.analysis.count("\n") == cell.count("\n") - 1


def test_a_cell_magic_below_the_first_line_is_an_error_that_says_where() -> None:
    pipeline = build((["step:a"], "x = 1\n%%time\ny = 2"))
    (error,) = pipeline.errors
    assert error.message == (
        "line 2: %%time is a cell magic, which works only on a cell's first line; move it "
        "there, or start a new cell with it"
    )


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("%matplotlib inline\nprint(x)?", "syntax error on line 2:"),
        ("!ls\nif True:\n    %time x = (\n%run extra.py", "syntax error on line 3, in %time:"),
        ("%%time\nx = 1\n  y = 2", "syntax error on line 3: unexpected indent"),
    ],
)
def test_a_cell_that_is_not_valid_after_its_ipython_lines_is_an_error(cell: str, says: str) -> None:
    pipeline = build((["step:a"], cell))
    (error,) = pipeline.errors
    assert error.message.startswith(says)


def test_percent_and_bang_inside_python_are_python() -> None:
    # `%` continuing an expression, `%s` in a string, `!=`: no IPython lines at all
    cell = "total = (a\n         % b)\ntemplate = '''\n%s rows\n!done\n'''\nok = a != b"
    prepared = prepare(cell)
    assert (prepared.code, prepared.analysis, prepared.error) == (cell, cell, None)


# --- IPython only where needed ------------------------------------------------------------------


def test_ipythons_tokenizer_is_imported_only_for_cells_with_ipython_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imported: list[str] = []
    real_import = importlib.import_module

    def record(name: str) -> Any:
        imported.append(name)
        return real_import(name)

    monkeypatch.setattr(source.importlib, "import_module", record)
    build((["step:a"], "import numpy as np\nx = np.ones(3) % 2"))
    build((["step:a"], "%%bash\necho hi"), (["step:b"], "%%time\nx = 1"))
    assert imported == []
    build((["step:a"], "!ls\nx = 1"))
    assert imported == ["IPython.core.inputtransformer2"]


# --- reports ------------------------------------------------------------------------------------


def test_every_step_keeps_a_report_unless_it_says_not_to() -> None:
    pipeline = build(
        (["step:a"], "x = 1"),
        (["step:b", "report:disabled"], "y = x"),
        (["step:c", "report:off"], "z = y"),
    )
    assert [s.options.report for s in pipeline.steps] == [True, False, False]
    assert [t["report"] for t in make_bundle(pipeline)["steps"].values()] == [True, False, False]
    assert not [w for w in pipeline.warnings if "report" in w.message]


def test_kales_steps_defaults_turn_reports_off_below_each_steps_own_tag() -> None:
    pipeline = build(
        (["block:a"], "x = 1"),
        (["block:b", "prev:a", "report:enabled"], "y = x"),
        kubeflow_notebook={"steps_defaults": ["report:disabled"]},
    )
    assert [s.options.report for s in pipeline.steps] == [False, True]
