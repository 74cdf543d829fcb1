"""The cluster engines through the launcher API (what the server and the widgets call), and
through the SubmitForm, against the fake KFP API over real HTTP (or a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellpipe.launcher.cluster import SubmitOptions
from cellpipe.launcher.config import CellPipe
from cellpipe.launcher.errors import Conflict, UserError
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.store import open_store
from cellpipe.launcher.submitting import SubmitChoices, plan_submit
from cellpipe.launcher.tracking import Runs
from cellpipe.widgets import SubmitForm
from tests.cluster.conftest import IMAGE, Kfp
from tests.cluster.test_kfp_submit import train_notebook


def test_the_launcher_submits_records_follows_cancels_and_deletes_a_kfp_run(
    tmp_path: Path, home: Path, kfp: Kfp
) -> None:
    fake = kfp.fake_only()
    config = CellPipe(kfp_host=kfp.host)
    prepared = prepare_file(train_notebook(tmp_path), config)
    # Given the launcher's submit, with a parameter and an image already built
    choices = SubmitChoices(
        SubmitOptions("kfp"), parameters=prepared.text_parameters(["epochs=5"]), image=IMAGE
    )
    store = open_store(home)
    said: list[str] = []
    # When it runs
    record = plan_submit(prepared, choices, config, store, home).run(said.append)
    # Then the run is recorded with what was sent, and KFP has it
    assert record.engine == "kfp" and record.status == "Pending"
    assert record.parameters == {"epochs": 5, "rate": 0.1} and record.image == IMAGE
    assert said[-1] == "submitting to kfp"
    assert store.get(record.run_id) is not None and record.compiled
    kfp_id = record.external["run_id"]
    assert kfp_id in fake.runs
    # And the launcher's Runs follow it, by a prefix of its id
    runs = Runs(config, home=home, store=store)
    fake.set_run(kfp_id, "RUNNING", {"load data": ("SUCCEEDED", "p1")})
    found, problem = runs.refresh(runs.find(record.run_id[:20]))
    assert problem is None and found.status == "Running"
    assert found.steps["load data"].status == "Succeeded"
    with pytest.raises(Conflict, match="cancel it first"):
        runs.delete(found)
    assert runs.cancel(found).status == "Cancelled"
    with pytest.raises(Conflict, match="already ended: Cancelled"):
        runs.cancel(found)
    deleted = runs.delete(found)
    assert any(kfp_id in what for what in deleted)
    assert kfp_id not in fake.runs and store.get(record.run_id) is None


def test_the_launcher_refuses_what_is_wrong_before_anything_is_sent(
    tmp_path: Path, home: Path, kfp: Kfp
) -> None:
    config = CellPipe(kfp_host=kfp.host)
    prepared = prepare_file(train_notebook(tmp_path), config)
    store = open_store(home)
    no_registry = SubmitChoices(SubmitOptions("kfp"))
    with pytest.raises(UserError, match="a cluster pulls the image from a registry") as refused:
        plan_submit(prepared, no_registry, config, store, home)
    assert refused.value.reason == "no_registry"
    bad_gpus = SubmitChoices(SubmitOptions("kfp"), gpus=["nope=1"], image=IMAGE)
    with pytest.raises(UserError) as refused:
        plan_submit(prepared, bad_gpus, config, store, home)
    assert refused.value.reason == "bad_gpus"
    unknown = SubmitChoices(SubmitOptions("rayjob"), image=IMAGE)
    with pytest.raises(UserError, match="no cluster engine 'rayjob'"):
        plan_submit(prepared, unknown, config, store, home)
    assert store.list() == []


def test_the_form_submits_through_the_launcher_and_shows_its_refusal(
    tmp_path: Path, home: Path, kfp: Kfp
) -> None:
    nb = train_notebook(tmp_path)
    form = SubmitForm(nb, config=CellPipe(kfp_host=kfp.host), home=home)
    form.poll_seconds = 0.1
    form.engine.value = "kfp"
    form.parameter_widgets["epochs"].value = 7
    # no registry and no image: a cluster cannot pull what would be built; said in the form
    form.submit_button.click()
    form.wait(timeout=30)
    assert "a cluster pulls the image from a registry" in (form.error or "")
    assert open_store(home).list() == []
    assert not form.submit_button.disabled
