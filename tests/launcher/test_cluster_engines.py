"""The cluster engines built by name: `for_submit` and `for_tracking` read the submit's options
and the configuration (an option wins over the configuration), `gpu_asks` says what a run asks
of the cluster's GPUs, and the engine registry names every engine, cellpipe's own and those
other packages register by entry point."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from cellpipe.converter import CompileOptions, load_pipeline
from cellpipe.launcher import plugins
from cellpipe.launcher.cluster import SubmitOptions, SubmitRequest
from cellpipe.launcher.config import CellPipe
from cellpipe.launcher.gpus import GpuAsk
from cellpipe.launcher.k8s import KubeSettings
from cellpipe.launcher.kfp_engine import KfpEngine
from cellpipe.launcher.store import RunStore, open_store
from cellpipe.launcher.training import TrainingEngine, TrainingError
from cellpipe.launcher.vocabulary import (
    CLUSTER_ENGINES,
    ENGINES,
    KFP_ENGINE,
    LOCAL_ENGINES,
    TRAINING_ENGINES,
)
from tests.notebooks import notebook, write

A100 = "NVIDIA-A100-SXM4-80GB"
KUBE = KubeSettings("/configs/kubeconfig", "team-context", None)
TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]


@pytest.fixture(autouse=True)
def no_kfp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engines read these when nothing else says; the tests say everything."""
    for name in ("KF_PIPELINES_ENDPOINT", "CELLPIPE_KFP_TOKEN", "CELLPIPE_KFP_COOKIE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> RunStore:
    return open_store(home)


def configured(**settings: Any) -> CellPipe:
    return CellPipe(config=Config({"CellPipe": settings}))


CONFIG = {
    "kfp_host": "https://configured.example.com/pipeline",
    "kfp_token": "configured-token",
    "namespace": "configured-team",
    "gpu_resource": "example.com/gpu",
    "gpu_label": "example.com/gpu.product",
    "gpu_tolerations": TOLERATIONS,
}


def request_for(tmp_path: Path, unnamed: tuple[str, ...] = ("load",)) -> SubmitRequest:
    """A pipeline of three steps, two with GPUs; those of `unnamed` name no GPU resource
    (the converter names one; a GPU request without one counts under the configured one)."""
    nb = write(
        tmp_path / "train.ipynb",
        notebook(
            (["step:load", "gpu:1"], "data = list(range(10))"),
            (["step:train", f"gpu:2:{A100}"], "model = sum(data)"),
            (["step:report"], "print(model)"),
        ),
    )
    pipeline = load_pipeline(nb, CompileOptions())
    assert not pipeline.errors, pipeline.errors
    for name in unnamed:
        resources = pipeline.step(name).resources
        resources.gpu = dataclasses.replace(resources.gpu, resource=None)
    return SubmitRequest(
        pipeline=pipeline,
        notebook=nb,
        parameters={},
        options=CompileOptions(),
        images={s.name: "registry.example.com/team/train:1" for s in pipeline.steps},
        namespace="team-a",
        run_id="20250101-120000-abcdef12",
    )


# --- kfp -----------------------------------------------------------------------------------


def test_kfp_for_submit_takes_the_options_over_the_configuration(
    store: RunStore, home: Path
) -> None:
    # Given a configuration and a submit that names its own address and namespace
    config = configured(**CONFIG)
    options = SubmitOptions(
        engine=KFP_ENGINE,
        namespace="my-profile",
        kube=KUBE,
        host="https://given.example.com/pipeline",
        experiment="nightly",
        ui_url="https://ui.example.com/_/pipeline",
    )
    # When the engine is built for the submit
    engine = KfpEngine.for_submit(KFP_ENGINE, options, config, store, home)
    # Then the options win, and the rest comes from the configuration
    settings = engine.settings
    assert settings.host == "https://given.example.com/pipeline"
    assert settings.namespace == "my-profile"
    assert settings.token == "configured-token"
    assert (settings.experiment, settings.ui_url) == ("nightly", options.ui_url)
    assert settings.kube == KUBE
    assert (engine.store, engine.home, engine.name) == (store, home, KFP_ENGINE)
    assert engine.location == "cluster"


def test_kfp_for_submit_falls_back_on_the_configuration_then_the_environment(
    store: RunStore, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = SubmitOptions(engine=KFP_ENGINE)
    engine = KfpEngine.for_submit(KFP_ENGINE, options, configured(**CONFIG), store, home)
    assert engine.settings.host == CONFIG["kfp_host"]
    assert engine.settings.namespace == "configured-team"
    assert engine.settings.experiment is None  # the notebook's, else Default, when planned
    # nothing configured: kfp.Client's own variable, and the token from the environment
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", "https://env.example.com")
    monkeypatch.setenv("CELLPIPE_KFP_TOKEN", "env-token")
    engine = KfpEngine.for_submit(KFP_ENGINE, options, configured(), store, home)
    assert engine.settings.host == "https://env.example.com"
    assert engine.settings.token == "env-token"
    assert engine.settings.namespace is None


def test_kfp_for_tracking_uses_the_configured_address_and_the_given_kubernetes(
    store: RunStore, home: Path
) -> None:
    engine = KfpEngine.for_tracking(KFP_ENGINE, configured(**CONFIG), KUBE, store, home)
    assert isinstance(engine, KfpEngine)
    assert engine.settings.host == CONFIG["kfp_host"]
    assert engine.settings.token == "configured-token"
    assert engine.settings.kube == KUBE
    assert engine.settings.namespace is None  # a run's namespace is kept with the run
    assert (engine.store, engine.home) == (store, home)


def test_kfp_gpu_asks_are_the_steps_with_the_configured_resource(
    tmp_path: Path, store: RunStore, home: Path
) -> None:
    config = configured(**CONFIG)
    engine = KfpEngine.for_submit(KFP_ENGINE, SubmitOptions(engine=KFP_ENGINE), config, store, home)
    assert engine.gpu_asks(request_for(tmp_path)) == [
        GpuAsk("step 'load'", 1, None, "example.com/gpu"),
        GpuAsk("step 'train'", 2, A100, "nvidia.com/gpu"),
    ]
    # an engine built by hand counts GPUs under the default resource
    assert KfpEngine(store=store, home=home).gpu_asks(request_for(tmp_path))[0].resource == (
        "nvidia.com/gpu"
    )


# --- training ------------------------------------------------------------------------------


def test_training_for_submit_takes_the_options_and_the_configured_gpus(
    store: RunStore, home: Path
) -> None:
    options = SubmitOptions(
        engine="tfjob",
        namespace="my-team",
        kube=KUBE,
        step="train",
        workers=3,
        gpus_per_worker=4,
        gpu_type=A100,
        pvc="shared-data",
        storage_size="20Gi",
        storage_class="nfs",
        runtime="torch-custom",
    )
    engine = TrainingEngine.for_submit("tfjob", options, configured(**CONFIG), store, home)
    assert (engine.name, engine.kind.kind, engine.location) == ("tfjob", "TFJob", "cluster")
    training = engine.options
    assert (training.step, training.workers, training.gpus_per_worker) == ("train", 3, 4)
    assert (training.gpu_type, training.pvc) == (A100, "shared-data")
    assert (training.storage_size, training.storage_class) == ("20Gi", "nfs")
    assert training.runtime == "torch-custom"
    assert training.gpu_resource == "example.com/gpu"
    assert training.gpu_label == "example.com/gpu.product"
    assert training.gpu_tolerations == TOLERATIONS
    # the option's namespace wins over the configured one
    assert engine.kube == KubeSettings("/configs/kubeconfig", "team-context", "my-team")
    assert (engine.store, engine.home) == (store, home)


def test_training_for_submit_defaults_come_from_the_configuration(
    store: RunStore, home: Path
) -> None:
    options = SubmitOptions(engine="pytorchjob", kube=KUBE)
    engine = TrainingEngine.for_submit("pytorchjob", options, configured(**CONFIG), store, home)
    assert engine.kube.namespace == "configured-team"
    assert engine.options.gpus_per_worker is None  # the step's own GPU choice
    assert engine.options.storage_size == "10Gi"
    assert engine.options.runtime == "torch-distributed"
    # nothing configured: the configuration's defaults, and kubectl's namespace
    engine = TrainingEngine.for_submit("pytorchjob", options, configured(), store, home)
    assert engine.kube == KUBE
    assert engine.options.gpu_resource == "nvidia.com/gpu"
    assert engine.options.gpu_label == "nvidia.com/gpu.product"
    assert engine.options.gpu_tolerations is None


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({"workers": 0}, "^workers must be at least 1$"),
        ({"gpus_per_worker": -1}, "^gpus per worker cannot be negative$"),
    ],
)
def test_training_for_submit_refuses_what_cannot_be_asked(
    choices: dict[str, int], message: str, store: RunStore, home: Path
) -> None:
    options = SubmitOptions(engine="mpijob", **choices)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match=message):
        TrainingEngine.for_submit("mpijob", options, configured(), store, home)


def test_training_for_tracking_follows_the_run_with_the_given_kubernetes(
    store: RunStore, home: Path
) -> None:
    engine = TrainingEngine.for_tracking("trainjob", configured(**CONFIG), KUBE, store, home)
    assert isinstance(engine, TrainingEngine)
    assert (engine.name, engine.kind.kind) == ("trainjob", "TrainJob")
    assert engine.kube == KUBE
    assert (engine.store, engine.home) == (store, home)


def test_training_gpu_asks_are_the_planned_workers_and_the_steps_before(
    tmp_path: Path, store: RunStore, home: Path
) -> None:
    options = SubmitOptions(engine="pytorchjob", step="train", workers=3)
    engine = TrainingEngine.for_submit("pytorchjob", options, configured(**CONFIG), store, home)
    asks = engine.gpu_asks(request_for(tmp_path, unnamed=("load", "train")))
    assert asks == [
        GpuAsk("each of the 3 workers of step 'train'", 2, A100, "example.com/gpu"),
        GpuAsk("step 'load'", 1, None, "example.com/gpu"),
    ]
    # a resource the step names wins over the configured one
    asks = engine.gpu_asks(request_for(tmp_path, unnamed=()))
    assert {ask.resource for ask in asks} == {"nvidia.com/gpu"}
    assert engine.last_plan is not None and engine.last_plan.namespace == "team-a"
    # --gpus-per-worker over the step's tag
    options.gpus_per_worker = 8
    engine = TrainingEngine.for_submit("pytorchjob", options, configured(**CONFIG), store, home)
    assert engine.gpu_asks(request_for(tmp_path))[0].count == 8
    # a plan that cannot be made says so
    options.step = "nope"
    engine = TrainingEngine.for_submit("pytorchjob", options, configured(), store, home)
    with pytest.raises(TrainingError, match="no such step"):
        engine.gpu_asks(request_for(tmp_path))


# --- the registry --------------------------------------------------------------------------


def test_the_registry_names_every_engine_and_each_imports_to_its_class() -> None:
    classes = plugins.engine_classes()
    assert set(ENGINES) <= set(classes)
    for name in ENGINES:
        cls = plugins.load_class(classes[name])
        assert isinstance(cls, type), name
        location = getattr(cls, "location", "here")
        assert location == ("cluster" if name in CLUSTER_ENGINES else "here"), name
        if name in CLUSTER_ENGINES:
            assert callable(cls.for_submit) and callable(cls.for_tracking), name
            assert callable(cls.gpu_asks), name
    assert plugins.load_class(classes[KFP_ENGINE]) is KfpEngine
    for name in TRAINING_ENGINES:
        assert plugins.load_class(classes[name]) is TrainingEngine
    for name in LOCAL_ENGINES:
        assert not hasattr(plugins.load_class(classes[name]), "for_submit"), name


FAKE_ENGINE = """
from typing import ClassVar


class FakeEngine:
    location: ClassVar[str] = "cluster"
    name = "fakejob"

    @classmethod
    def for_submit(cls, name, options, config, store, home):
        return cls()
"""


@pytest.fixture
def registered_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package installed beside the tests (a dist-info on sys.path) that registers the
    engine `fakejob` under the `cellpipe.engines` entry point group."""
    site = tmp_path / "site"
    info = site / "cellpipe_fake_engine-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cellpipe-fake-engine\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[cellpipe.engines]\nfakejob = cellpipe_fake_engine:FakeEngine\n"
    )
    (site / "cellpipe_fake_engine.py").write_text(FAKE_ENGINE)
    monkeypatch.syspath_prepend(str(site))
    plugins.engine_classes.cache_clear()
    yield "fakejob"
    plugins.engine_classes.cache_clear()
    sys.modules.pop("cellpipe_fake_engine", None)


def test_an_engine_registered_by_entry_point_shows_up_by_name(registered_engine: str) -> None:
    classes = plugins.engine_classes()
    assert classes[registered_engine] == "cellpipe_fake_engine.FakeEngine"
    assert set(ENGINES) <= set(classes)  # cellpipe's own are still there
    cls = plugins.load_class(classes[registered_engine])
    assert cls.__name__ == "FakeEngine" and cls.location == "cluster"
    # the configuration offers it as a cluster engine, built by name as cellpipe's own are
    config = CellPipe(config=Config({"CellPipe": {"engines": classes}}))
    assert config.engine_location(registered_engine) == "cluster"
    assert isinstance(
        config.engine_class(registered_engine).for_submit(
            registered_engine, SubmitOptions(engine=registered_engine), config, None, None
        ),
        cls,
    )
