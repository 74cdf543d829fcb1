"""The SubmitForm: its values become the RunRequest the engine receives, and the run is followed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from IPython.core.interactiveshell import InteractiveShell

from cellpipe.converter.model import GpuRequest
from cellpipe.launcher import LocalEngine, RunRecord, RunRequest
from cellpipe.launcher.config import ENGINES, CellPipe
from cellpipe.launcher.gpus import configured_types, inventory_from_objects
from cellpipe.widgets import RunProgress, SubmitForm
from tests.notebooks import notebook, write

A100 = "NVIDIA-A100-SXM4-80GB"


class RecordingEngine(LocalEngine):
    """The local engine, for real, keeping each request it receives."""

    received: ClassVar[list[RunRequest]] = []

    def run(self, request: RunRequest, listener: Any = None) -> RunRecord:
        RecordingEngine.received.append(request)
        return super().run(request, listener)


@pytest.fixture
def config() -> CellPipe:
    return CellPipe(
        engines={**ENGINES, "local": f"{__name__}.RecordingEngine"},
        gpu_types=[{"name": A100, "display_name": "A100 80 GB"}],
    )


def test_the_form_values_become_the_run_request_and_the_run_succeeds(
    steps_notebook: Path, tmp_path: Path, config: CellPipe
) -> None:
    # Given: a form, one parameter set with -p, then fields changed as a person would
    form = SubmitForm(steps_notebook, config=config, home=tmp_path / "home", parameters=["n=5"])
    assert form.parameter_widgets["n"].value == 5
    form.parameter_widgets["scale"].value = 2.5
    count, kind = form.gpu_widgets["sum up"][1], form.gpu_widgets["sum up"][0]
    count.value, kind.value = 2, A100
    form.use_cache.value = False
    # When
    form.submit_button.click()
    record = form.wait(timeout=100)
    # Then: the engine received exactly what the form said
    request = RecordingEngine.received[-1]
    assert request.parameters == {"n": 5, "scale": 2.5}
    assert request.use_cache is False
    assert request.notebook == steps_notebook
    gpus = {s.name: s.resources.gpu for s in request.pipeline.steps}
    assert gpus == {
        "make data": None,
        "sum up": GpuRequest(2, A100, "nvidia.com/gpu"),
        "spread": None,
        "report": None,
    }
    # And the run succeeded, followed step by step
    assert form.error is None
    assert record.status == "Succeeded"
    assert record.run_id == request.run_id == form.run_id
    assert record.metrics["total"] == sum(i * 2.5 for i in range(5))
    progress = form.progress
    assert isinstance(progress, RunProgress)
    assert progress.overall.value == 4
    assert {bar.bar_style for bar in progress.bars.values()} == {"success"}
    assert all(bar.value == 1.0 for bar in progress.bars.values())
    assert "Succeeded" in progress.title.value and "total = " in progress.title.value
    assert not form.submit_button.disabled


def test_a_value_that_does_not_fit_is_said_and_nothing_is_submitted(
    tmp_path: Path, config: CellPipe
) -> None:
    path = write(
        tmp_path / "typed.ipynb",
        notebook(
            (["parameters"], "sizes = [1, 2]\nflag = True\nname = 'x'"),
            (["step:use"], "n = len(sizes) if flag else 0"),
        ),
    )
    received = len(RecordingEngine.received)
    form = SubmitForm(path, config=config, home=tmp_path / "home")
    assert form.parameter_widgets["flag"].value is True
    assert form.parameter_widgets["sizes"].value == "[1, 2]"
    form.parameter_widgets["sizes"].value = "[1,"
    form.submit()
    assert form.wait(timeout=5) is None
    assert "parameter 'sizes' is a list" in (form.error or "")
    assert "parameter &#x27;sizes&#x27; is a list" in form.message.value
    assert len(RecordingEngine.received) == received


def test_engines_gpu_types_with_free_counts_and_workers(
    steps_notebook: Path, tmp_path: Path, config: CellPipe
) -> None:
    node = {
        "metadata": {"name": "gpu-1", "labels": {"nvidia.com/gpu.product": A100}},
        "status": {"allocatable": {"nvidia.com/gpu": "4"}},
    }
    pod = {
        "spec": {
            "nodeName": "gpu-1",
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
        "status": {"phase": "Running"},
    }
    types = configured_types(config.gpu_types, config.gpu_resource)
    inventory = inventory_from_objects(
        [node], [pod], types, "nvidia.com/gpu", "nvidia.com/gpu.product"
    )
    form = SubmitForm(steps_notebook, config=config, home=tmp_path / "home", inventory=inventory)
    assert form.engine.options[:2] == ("local", "kfp-local")
    assert form.gpu_widgets["spread"][0].options == (
        ("any type", ""),
        ("A100 80 GB (3 free of 4)", A100),
    )
    assert form.workers.disabled and not form.use_cache.disabled
    form.engine.value = "pytorchjob" if "pytorchjob" in form.engine.options else "kfp-local"
    assert form.workers.disabled == (form.engine.value != "pytorchjob")
    assert str(steps_notebook) in form.header.value


def test_the_magic_shows_the_form(shell: InteractiveShell, steps_notebook: Path) -> None:
    result = shell.run_cell(f"%cellpipe submit --form --notebook {steps_notebook} -p n=3")
    assert result.success, result.error_in_exec
    form = result.result
    assert isinstance(form, SubmitForm)
    assert form.parameter_widgets["n"].value == 3
    bad = shell.run_cell(f"%cellpipe submit --form --notebook {steps_notebook} -p nope=3")
    assert "no such parameter" in str(bad.error_in_exec)
