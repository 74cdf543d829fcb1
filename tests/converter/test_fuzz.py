"""The compiler never crashes: notebooks generated from the whole grammar (both dialects, `%%step`
lines, notebook metadata, IPython lines, odd text) get a pipeline or user errors, never an
exception; an error-free pipeline compiles to YAML that loads back, and the compile JSON is
strict JSON (no NaN or Infinity, no text that is not Unicode).

CI runs a bounded, derandomized sample (profile `cellpipe-ci`); `make fuzz` runs many more,
randomly (HYPOTHESIS_PROFILE=cellpipe-fuzz).
"""

from __future__ import annotations

import contextlib
import io
import json
import keyword
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellpipe.cli import main
from cellpipe.converter import build_pipeline, compile_yaml
from cellpipe.converter.bundle import make_bundle

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "cellpipe-ci",
    max_examples=2000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
settings.register_profile(
    "cellpipe-fuzz",
    max_examples=int(os.environ.get("CELLPIPE_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "cellpipe-ci"))
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "cellpipe-fuzz"
# A long run is bounded by its number of examples, not by the suite's per-test timeout.
pytestmark = pytest.mark.timeout(0 if LONG else 120)

# --- text --------------------------------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # control characters, surrogates included
odd_text = st.text(ANY_CHARACTER, max_size=8)


def _same(value: Any) -> Any:
    return value


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` nine times in ten: most notebooks are nearly right, as people's are. (one_of picks
    its branches alike, and takes one strategy given twice as one: hence nine copies.)"""
    return st.one_of(*[usual.map(_same) for _ in range(9)], odd)


def sometimes(value: st.SearchStrategy[Any], otherwise: Any) -> st.SearchStrategy[Any]:
    """`value` one time in three, else `otherwise`."""
    return st.one_of(st.just(otherwise), st.just(otherwise).map(_same), value)


# Names people give variables, and names the compiled component uses itself.
NAMES = [
    "x",
    "y",
    "df",
    "model",
    "acc",
    "data",
    "i",
    "lr",
    "epochs",
    "self",
    "self_",
    "cellpipe_metrics",
    "cellpipe_metrics_",
    "x_in",
    "Output",
    "executor_input",
    "kwargs",
    "args",
    "_tmp",
    "__x",
    "print",
    "len",
    "np",
    "données",
    "α",
    "_",
    "Model2",
]
identifiers = mostly(
    st.sampled_from(NAMES), st.text("abxyzAB_09αé", min_size=1, max_size=5).map(lambda t: f"v{t}")
)
names = identifiers.filter(lambda n: n.isidentifier() and not keyword.iskeyword(n))
STEP_NAMES = ["a", "b", "train", "Load data!", "evaluate", "x-y", "α β", " padded ", "pipeline", ""]
step_names = mostly(st.sampled_from(STEP_NAMES), odd_text)

# --- Python literals and code --------------------------------------------------------------------


def literal(value: Any) -> str:
    """Python source for `value`; infinities as the literals that make them (1e999)."""
    if isinstance(value, float) and value != value:
        return "float('nan')"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "1e999" if value > 0 else "-1e999"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(literal(v) + ", " for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


scalars = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.integers(),
    st.integers(min_value=2**52, max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    odd_text,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(
            st.text(max_size=4) | st.integers(0, 3) | st.booleans(), inner, max_size=3
        )
    ),
    max_leaves=6,
)
literals = values.map(literal)


def _binary(pair: tuple[str, str, str]) -> str:
    left, op, right = pair
    return f"({left} {op} {right})"


# In code, literals matter less than names: a few, cheaply (a draw costs time).
CODE_LITERALS = ["1", "0.5", "'s'", "True", "None", "[1, 2]", "{'a': 1}", "1e999", "'\\x01'"]
atoms = names | st.sampled_from(CODE_LITERALS)
expressions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%", "==", "and", "or"]), inner).map(
            _binary
        ),
        st.tuples(st.sampled_from(["len", "print", "str", "sum", "f"]), inner).map(
            lambda p: f"{p[0]}({p[1]})"
        ),
        st.tuples(names, st.sampled_from(["head", "append", "copy", "fit", "mean"]), inner).map(
            lambda p: f"{p[0]}.{p[1]}({p[2]})"
        ),
        st.tuples(names, inner).map(lambda p: f"{p[0]}[{p[1]}]"),
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.tuples(inner, names, inner).map(lambda p: f"[{p[0]} for {p[1]} in {p[2]}]"),
        st.tuples(names, inner).map(lambda p: f"(lambda {p[0]}: {p[1]})"),
    ),
    max_leaves=4,
)
# Long chains: deep syntax trees (a 500-term sum is 500 levels deep).
chains = st.tuples(names, st.integers(1, 700), st.sampled_from(["+", "*", "and"])).map(
    lambda p: f" {p[2]} ".join([p[0]] * p[1])
)
any_expression = expressions | chains


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.split("\n"))


simple_statements = st.one_of(
    st.tuples(names, any_expression).map(lambda p: f"{p[0]} = {p[1]}"),
    st.tuples(names, names, any_expression).map(lambda p: f"{p[0]}, {p[1]} = {p[2]}, {p[2]}"),
    st.tuples(names, any_expression).map(lambda p: f"{p[0]} += {p[1]}"),
    st.tuples(names, any_expression).map(lambda p: f"{p[0]}[0] = {p[1]}"),
    st.tuples(names, any_expression).map(lambda p: f"{p[0]}.attr = {p[1]}"),
    st.tuples(names, any_expression).map(lambda p: f"{p[0]}.append({p[1]})"),
    any_expression.map(lambda e: f"print({e})"),
    any_expression,
    names.map(lambda n: f"del {n}"),
    st.sampled_from(["import json", "import numpy as np", "from os import path", "pass"]),
    names.map(lambda n: f"with open('data.csv') as {n}:\n    {n}.read()"),
    st.tuples(names, names).map(
        lambda p: f"try:\n    {p[0]}\nexcept Exception as {p[1]}:\n    pass"
    ),
    st.tuples(names, names).map(lambda p: f"global {p[0]}\n{p[0]} = {p[1]}"),
    st.sampled_from(
        [
            "%matplotlib inline",
            "!pip install numpy",
            "%pip install -r requirements.txt pandas",
            "!ls -la",
            "files = !ls",
            "%load_ext cellpipe",
            "%cellpipe run",
            "%time x = 1",
            "np.random.seed(0)",
            "df.to_csv('out.csv')",
            "open('data.csv').read()",
        ]
    ),
    odd_text,  # anything at all: syntax errors, odd characters
)
statements = st.recursive(
    simple_statements,
    lambda inner: st.one_of(
        st.tuples(names, any_expression, inner).map(
            lambda p: f"for {p[0]} in {p[1]}:\n{_indented(p[2])}"
        ),
        st.tuples(names, names, names).map(
            lambda p: f"for {p[0]} in [{p[1]}, {p[2]}]:\n    {p[0]}['c'] = 1"
        ),
        st.tuples(any_expression, inner).map(lambda p: f"if {p[0]}:\n{_indented(p[1])}"),
        st.tuples(names, names, inner).map(
            lambda p: f"def {p[0]}({p[1]}):\n{_indented(p[2])}\n    return {p[1]}"
        ),
        st.tuples(names, inner).map(lambda p: f"class {p[0].title()}:\n{_indented(p[1])}"),
    ),
    max_leaves=4,
)
code = st.lists(statements, max_size=3).map("\n".join)

# Parameters cells (papermill's convention, and what people write around it) and metrics cells.
parameter_lines = st.one_of(
    st.tuples(names, literals).map(lambda p: f"{p[0]} = {p[1]}"),
    st.tuples(
        names, st.sampled_from(["int", "float", "str", "bool", "list", "dict"]), literals
    ).map(lambda p: f"{p[0]}: {p[1]} = {p[2]}"),
    names.map(lambda n: f"{n} = None"),
    st.just("# a comment"),
    st.just(""),
    st.just('"""A docstring."""'),
    statements,
)
metric_lines = names.map(lambda n: n) | names.map(lambda n: f"print({n})") | statements

# --- tags --------------------------------------------------------------------------------------

QUANTITY_EXAMPLES = [
    "1",
    "2",
    "0",
    "500m",
    "0.5",
    ".5",
    "5.",
    "1.5",
    "4Gi",
    "1.5Gi",
    "10k",
    "10K",
    "1e3",
    "1E3",
    "1e-3",
    "1e999",
    "+2",
    "-1",
    "2Mi",
    "128974848000m",
    "1m",
    "100u",
    "10n",
    "1Ei",
    "8Ei",
    "99999999999999999999Ei",
    "١",
    "²",
    "1 Gi",
    "",
]


@st.composite
def k8s_quantities(draw: st.DrawFn) -> str:
    """From Kubernetes' quantity grammar: a sign, a number, a binary, decimal or exponent suffix."""
    sign = draw(st.sampled_from(["", "", "", "+", "-"]))
    whole = draw(st.from_regex(r"[0-9]{0,4}", fullmatch=True))
    fraction = draw(st.sampled_from(["", "", ".", ".5", ".25", ".0001"]))
    if not whole and fraction in ("", "."):
        whole = "1"
    suffix = draw(
        st.sampled_from(["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T"])
        | st.sampled_from(["P", "E"])
        | st.integers(-30, 30).map(lambda e: f"e{e}")
    )
    return f"{sign}{whole}{fraction}{suffix}"


quantities = mostly(
    st.sampled_from(["1", "2", "500m", "0.5", "4Gi", "512Mi"]),
    st.sampled_from(QUANTITY_EXAMPLES) | k8s_quantities() | odd_text,
)
INTEGER_EXAMPLES = ["0", "-1", "1.5", "²", "١", "01", "", "x", "9" * 20, "65", "101"]
integers_text = mostly(
    st.integers(1, 8).map(str),
    st.sampled_from(INTEGER_EXAMPLES) | st.integers(0, 10**25).map(str),
)
gpu_types = mostly(
    st.sampled_from(["A100", "NVIDIA-A100-SXM4-80GB", "t4"]),
    st.sampled_from(["bad type!", ""]) | odd_text,
)
references = mostly(
    st.sampled_from(["python:3.12-slim", "registry.example.com/team/img:1"]),
    st.sampled_from(["a b", ""]) | odd_text,
)
keys = mostly(
    st.sampled_from(["team", "example.com/note", "app.kubernetes.io/name"]),
    st.sampled_from(["Bad Key", ""]) | odd_text,
)
meta_values = mostly(
    st.sampled_from(["ml", "v1", "any text"]), st.sampled_from(["", "a" * 70]) | odd_text
)
env_names = mostly(st.sampled_from(["MODE", "_X"]), st.sampled_from(["1BAD", "", "A-B"]) | odd_text)
resource_names = mostly(
    st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "amd.com/gpu"]),
    st.sampled_from(["storage", ""]) | odd_text,
)
ROLE_WORDS = [
    "imports",
    "functions",
    "parameters",
    "metrics",
    "skip",
    "pipeline-parameters",
    "pipeline-metrics",
    "injected-parameters",
    "hide-input",
]

tags = st.one_of(
    st.tuples(st.sampled_from(["step", "block", "after", "prev"]), step_names).map(":".join),
    st.sampled_from(ROLE_WORDS),
    integers_text.map(lambda n: f"gpu:{n}"),
    st.tuples(integers_text, gpu_types).map(lambda p: f"gpu:{p[0]}:{p[1]}"),
    st.tuples(st.sampled_from(["cpu", "memory", "shm"]), quantities).map(":".join),
    st.tuples(resource_names, quantities | integers_text).map(lambda p: f"limit:{p[0]}:{p[1]}"),
    references.map(lambda r: f"image:{r}"),
    st.tuples(st.sampled_from(["retries", "timeout"]), integers_text).map(":".join),
    mostly(st.sampled_from(["on", "off", "enabled", "disabled"]), st.just("maybe")).map(
        lambda v: f"cache:{v}"
    ),
    mostly(st.sampled_from(["enabled", "disabled"]), st.just("x")).map(lambda v: f"report:{v}"),
    st.tuples(env_names, mostly(st.just("fast"), odd_text)).map(lambda p: f"env:{p[0]}={p[1]}"),
    mostly(
        st.just("secret:s3-creds:key:AWS_KEY"),
        st.tuples(st.sampled_from(["Bad", ""]), st.sampled_from(["key", ""]), env_names).map(
            lambda p: f"secret:{p[0]}:{p[1]}:{p[2]}"
        ),
    ),
    mostly(
        st.just("volume:data-pvc:/data"),
        st.tuples(st.sampled_from(["Bad_PVC", ""]), st.sampled_from(["rel", ""])).map(
            lambda p: f"volume:{p[0]}:{p[1]}"
        ),
    ),
    st.tuples(st.sampled_from(["label", "annotation"]), keys, meta_values).map(
        lambda p: f"{p[0]}:{p[1]}:{p[2]}"
    ),
    st.sampled_from(["notebook:other.ipynb", "unknown:thing", "step:", "block:", "prev:"]),
    odd_text,
)

# --- the %%step first line, cell magics -----------------------------------------------------------


def _word(text: str, quote: bool) -> str:
    return shlex.quote(text) if quote else text


step_line_options = st.one_of(
    st.lists(step_names, min_size=0, max_size=2).map(lambda n: "--after " + " ".join(n)),
    st.tuples(integers_text, gpu_types).map(lambda p: f"--gpu {p[0]}:{p[1]}"),
    integers_text.map(lambda n: f"--gpu {n}"),
    quantities.map(lambda q: f"--cpu {q}"),
    quantities.map(lambda q: f"--memory {q}"),
    references.map(lambda r: f"--image {r}"),
    st.sampled_from(["--bogus", "--after", "extra"]),
)
step_lines = st.tuples(step_names, st.booleans(), st.lists(step_line_options, max_size=3)).map(
    lambda p: " ".join(["%%step", _word(p[0], p[1]), *p[2]])
)
first_lines = st.one_of(
    step_lines,
    st.sampled_from(["%%time", "%%capture", "%%bash", "%%writefile x.py", "%%step"]),
)

# --- cells and notebooks --------------------------------------------------------------------------

ROLES = ["step", "step", "step", "plain", "imports", "functions", "parameters", "metrics", "skip"]


@st.composite
def code_cells(draw: st.DrawFn, index: int) -> dict[str, Any]:
    role = draw(st.sampled_from(ROLES))
    cell_tags: list[str] = []
    if role == "step":
        cell_tags.append(f"{draw(st.sampled_from(['step', 'block']))}:{draw(step_names)}")
    elif role in ("imports", "functions", "parameters", "metrics", "skip"):
        cell_tags.append(role)
    cell_tags.extend(draw(st.lists(tags, max_size=2)))
    if role == "parameters":
        body = "\n".join(draw(st.lists(parameter_lines, min_size=1, max_size=4)))
    elif role == "metrics":
        body = "\n".join(draw(st.lists(metric_lines, min_size=1, max_size=3)))
    else:
        body = draw(code)
    if draw(st.integers(0, 5)) == 0:
        body = f"{draw(first_lines)}\n{body}"
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": cell_tags} if cell_tags else {},
        "outputs": [],
        "source": body if draw(st.booleans()) else body.splitlines(keepends=True),
    }
    cell_id = draw(st.sampled_from([f"cell-{index}", f"cell-{index}", None, "same"]) | odd_text)
    if cell_id is not None:
        cell["id"] = cell_id
    return cell


markdown_cells = odd_text.map(
    lambda text: {"cell_type": "markdown", "metadata": {}, "source": text, "id": "md"}
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), odd_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
texts = st.sampled_from(["iris demo", "GPU demo", "", "python:3.12-slim", "regcred"]) | odd_text
cellpipe_metadata = st.fixed_dictionaries(
    {},
    optional={
        "pipeline": texts | json_values,
        "name": texts,
        "description": texts | json_values,
        "experiment": texts,
        "base_image": texts,
        "registry": texts,
        "resources": st.dictionaries(
            st.sampled_from(["cpu", "memory", "gpu", "other"]), quantities | json_scalars
        )
        | json_values,
        "image_pull_secrets": st.lists(texts, max_size=2) | json_values,
        "service_account": texts | json_values,
        "requirements": json_values,
        "unknown": json_values,
    },
)
kale_volumes = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["pvc", "new_pvc", "snapshot", "clone", "pv", "other"]),
        "name": texts,
        "mount_point": st.sampled_from(["/data", "relative", ""]) | odd_text,
        "size": json_scalars,
        "annotations": json_values,
    },
)
kale_metadata = st.fixed_dictionaries(
    {},
    optional={
        "pipeline_name": texts | json_values,
        "pipeline_description": texts,
        "experiment_name": texts,
        "experiment": st.fixed_dictionaries({"name": texts}) | json_values,
        "docker_image": texts,
        "base_image": texts,
        "volumes": st.lists(kale_volumes | json_values, max_size=2) | json_values,
        "steps_defaults": st.lists(tags, max_size=3) | json_values,
        "enable_caching": st.booleans() | json_scalars,
        "security_context": st.fixed_dictionaries(
            {},
            optional={
                "enabled": json_scalars,
                "run_as_user": json_scalars,
                "run_as_group": json_scalars,
                "run_as_non_root": json_scalars,
            },
        )
        | json_values,
        "autosnapshot": json_scalars,
        "snapshot_volumes": json_scalars,
        "katib_run": json_scalars,
        "timeout": json_scalars,
        "kfp_host": texts,
        "unknown_key": json_values,
    },
)
notebook_metadata = st.fixed_dictionaries(
    {},
    optional={
        "cellpipe": mostly(cellpipe_metadata, json_values),
        "kubeflow_notebook": mostly(kale_metadata, json_values),
        "kernelspec": st.just(
            {"name": "python3", "display_name": "Python 3", "language": "python"}
        ),
    },
)


@st.composite
def notebooks(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 6))
    cells = [
        draw(markdown_cells) if draw(st.integers(0, 6)) == 0 else draw(code_cells(index))
        for index in range(count)
    ]
    metadata = draw(sometimes(notebook_metadata, {}))
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells}


# --- the properties -------------------------------------------------------------------------------


def strict_json(value: Any) -> str:
    """JSON text, refusing NaN and Infinity and any text that is not Unicode (a lone surrogate)."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    return text


def strict_json_loads(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    value = json.loads(text, parse_constant=refuse)
    strict_json(value)
    return value


@settings(PROFILE)
@given(notebooks())
def test_any_notebook_compiles_or_says_what_to_change(nb: dict[str, Any]) -> None:
    pipeline = build_pipeline(nb, "fuzz.ipynb")
    strict_json(pipeline.to_json())
    for diagnostic in pipeline.diagnostics:
        assert diagnostic.message
        diagnostic.for_people("fuzz.ipynb").encode("utf-8")
    if pipeline.errors:
        return
    strict_json(make_bundle(pipeline))
    text = compile_yaml(pipeline)
    text.encode("utf-8")
    documents = list(yaml.safe_load_all(text))
    assert documents and documents[0]["pipelineInfo"]


@settings(PROFILE, max_examples=max(20, PROFILE.max_examples // 10))
@given(notebooks())
def test_the_cli_answers_every_notebook_with_exit_0_or_2_and_strict_json(
    nb: dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.ipynb"
        path.write_text(json.dumps(nb), encoding="utf-8")  # lone surrogates as \ud800 escapes
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["compile", str(path), "--format", "json", "-o", f"{folder}/p.yaml"])
        assert status in (0, 2), err.getvalue()
        assert "Traceback" not in err.getvalue()
        err.getvalue().encode("utf-8")
        data = strict_json_loads(out.getvalue())
        if status == 0:
            assert not data["errors"]
            list(yaml.safe_load_all(Path(folder, "p.yaml").read_text(encoding="utf-8")))
        else:
            assert data["errors"]
