"""Each step's HTML report (`cellpipe_report`, kfp.dsl.HTML) in the compiled IR: declared by
every step whose report is on, by none with `report:disabled`, and valid for kfp's own loader
and KFP's protobuf messages."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp import components
from kfp.pipeline_spec import pipeline_spec_pb2

from cellpipe.converter import build_pipeline, load_pipeline
from cellpipe.converter.kfp_ir import REPORT_OUTPUT
from tests.notebooks import notebook, write

ROOT = Path(__file__).resolve().parents[2]

REPORTS = notebook(
    (["imports"], "import json"),
    (["step:load", "report:enabled"], "cellpipe_report = {'rows': 3}\nrows = 3"),
    (["step:quiet", "report:disabled"], "half = rows / 2"),
    (["step:default"], "total = rows + half + cellpipe_report['rows']"),
    (["metrics"], "total"),
)


def compile_with_the_cli(tmp_path: Path, nb: dict[str, Any]) -> dict[str, Any]:
    """What `cellpipe compile` writes, checked by KFP's own messages (unknown fields refused)
    and loaded back by kfp's SDK."""
    from cellpipe.cli import main

    path = write(tmp_path / "reports.ipynb", nb)
    out = tmp_path / "reports.yaml"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["compile", str(path), "-o", str(out)]) == 0
    text = out.read_text()
    documents = [d for d in yaml.safe_load_all(text) if d]
    json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
    components.load_component_from_text(text)
    spec: dict[str, Any] = documents[0]
    return spec


def report_outputs(spec: dict[str, Any]) -> dict[str, str]:
    """Each component's report output type (components that declare one)."""
    found = {}
    for name, component in spec["components"].items():
        artifacts = (component.get("outputDefinitions") or {}).get("artifacts") or {}
        if REPORT_OUTPUT in artifacts:
            found[name] = artifacts[REPORT_OUTPUT]["artifactType"]["schemaTitle"]
    return found


def test_every_step_with_its_report_on_declares_the_html_output(tmp_path: Path) -> None:
    pipeline = build_pipeline(REPORTS, "reports.ipynb")
    assert pipeline.errors == []
    spec = compile_with_the_cli(tmp_path, REPORTS)
    reported = {f"comp-{s.task}" for s in pipeline.steps if s.options.report}
    assert report_outputs(spec) == dict.fromkeys(reported, "system.HTML")
    assert "comp-load" in reported and "comp-quiet" not in reported
    # a value of the output's name is renamed in the component, not lost or refused
    load = spec["components"]["comp-load"]["outputDefinitions"]["artifacts"]
    assert load["cellpipe_report_"]["artifactType"]["schemaTitle"] == "system.Artifact"
    assert pipeline.step("load").kfp_names().outputs["cellpipe_report"] == "cellpipe_report_"
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["default"]["inputs"]["artifacts"]["cellpipe_report_in"] == {
        "taskOutputArtifact": {"outputArtifactKey": "cellpipe_report_", "producerTask": "load"}
    }


@pytest.mark.parametrize("name", ["iris_cellpipe", "iris_kale", "gpu_demo"])
def test_the_examples_declare_it_for_each_step_that_reports(name: str) -> None:
    if name == "gpu_demo":  # the golden GPU pipeline is compiled from a notebook in a test
        from tests.converter.test_compile import GPU_NOTEBOOK

        pipeline = build_pipeline(GPU_NOTEBOOK, "gpu.ipynb")
    else:
        pipeline = load_pipeline(ROOT / "examples" / f"{name}.ipynb")
    golden = (ROOT / "tests" / "converter" / "golden" / f"{name}.yaml").read_text()
    spec = next(d for d in yaml.safe_load_all(golden) if d)
    reported = {f"comp-{s.task}" for s in pipeline.steps if s.options.report}
    assert report_outputs(spec) == dict.fromkeys(reported, "system.HTML")
