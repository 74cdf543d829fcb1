"""Builders found by name: cellpipe's own, those other packages register by entry point, and
those configuration names (`c.CellPipe.builders`). The doubles here build nothing and push
nothing (`builds_here = False`), so no registry is read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cellpipe.converter import build_pipeline
from cellpipe.launcher.build import BuildError, BuildRequest, build_image, builder_class
from cellpipe.launcher.builders import BuiltImage, Progress, build_cache
from cellpipe.launcher.images import ImagePlan
from cellpipe.launcher.plugins import BUILDER_GROUP, builder_classes
from cellpipe.launcher.vocabulary import BUILDERS, BUILDERS_HERE, KANIKO_BUILDER
from tests.notebooks import notebook, write

REGISTRY = "registry.example.com/team"
BASE = "python:3.11-slim"
HERE = f"{__name__}.RecordingBuilder"

made: list[RecordingBuilder] = []  # every RecordingBuilder constructed, in order


class RecordingBuilder:
    """A builder double: keeps what it was given and says it wrote one file."""

    builds_here = False

    def __init__(self, plan: ImagePlan, cache: Path, say: Progress, request: BuildRequest) -> None:
        self.plan, self.cache, self.say, self.request = plan, cache, say, request
        self.built = False
        made.append(self)

    def build(self) -> BuiltImage:
        self.built = True
        self.say(f"recording {self.plan.reference}")
        return BuiltImage(None, 0, [f"recorded/{self.plan.tag}"])


def not_a_builder() -> None:
    """A function, where a builder class is expected."""


@pytest.fixture(autouse=True)
def fresh_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No builder made before, the registry's entry points read again, a home of its own."""
    monkeypatch.setenv("CELLPIPE_HOME", str(tmp_path / "home"))
    made.clear()
    builder_classes.cache_clear()
    yield
    builder_classes.cache_clear()
    made.clear()


def request_for(tmp_path: Path, builder: str) -> BuildRequest:
    nb = notebook(
        (["step:load"], "numbers = list(range(3))"),
        (["step:total"], "total = sum(numbers)"),
    )
    path = write(tmp_path / "sums.ipynb", nb)
    pipeline = build_pipeline(nb, str(path))
    assert not pipeline.errors, pipeline.errors
    return BuildRequest(pipeline, path, nb, registry=REGISTRY, builder=builder, base=BASE)


def register_entry_point(folder: Path, name: str, target: str) -> Path:
    """An installed distribution (as pip leaves one) whose entry point registers `target`."""
    info = folder / "cellpipe_fake_builders-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cellpipe-fake-builders\nVersion: 1.0\n"
    )
    module, _, attr = target.rpartition(".")
    (info / "entry_points.txt").write_text(f"[{BUILDER_GROUP}]\n{name} = {module}:{attr}\n")
    return folder


def test_a_builder_named_by_configuration_builds_each_image(tmp_path: Path) -> None:
    # Given a builder that only configuration names
    request = request_for(tmp_path, "recording")
    said: list[str] = []

    # When the pipeline's image is built with it
    results = build_image(request, said.append, builders={"recording": HERE})

    # Then the double built the one image, got what every builder gets, and its files are shown
    assert [builder.built for builder in made] == [True]
    (builder,) = made
    assert builder.request is request
    assert builder.cache == build_cache() == tmp_path / "home" / "build-cache"
    assert builder.plan.base == BASE and builder.plan.base_digest == ""  # not read: not built here
    (result,) = results
    assert result.builder == "recording" and result.image == builder.plan.reference
    assert result.image.startswith(f"{REGISTRY}/sums:")
    assert result.files == [f"recorded/{builder.plan.tag}"]
    assert result.digest is None and result.pushed_bytes == 0 and result.cached is False
    assert result.steps == ["load", "total"]
    assert f"recording {result.image}" in said


def test_a_builder_registered_by_an_entry_point_is_used_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a package installed with an entry point in the builders' group
    monkeypatch.syspath_prepend(str(register_entry_point(tmp_path / "site", "recording", HERE)))

    # When a build names it
    (result,) = build_image(request_for(tmp_path, "recording"))

    # Then the registry knows it beside cellpipe's own, and it built the image
    assert builder_classes()["recording"] == HERE
    assert set(BUILDERS) <= set(builder_classes())
    assert len(made) == 1 and made[0].built
    assert result.builder == "recording"


def test_configuration_replaces_a_builder_of_cellpipe(tmp_path: Path) -> None:
    (result,) = build_image(request_for(tmp_path, KANIKO_BUILDER), builders={KANIKO_BUILDER: HERE})

    assert len(made) == 1 and result.builder == KANIKO_BUILDER
    assert result.files == [f"recorded/{made[0].plan.tag}"]
    assert not (tmp_path / "cellpipe-build").exists()  # cellpipe's kaniko wrote nothing


def test_an_unknown_builder_is_a_build_error_naming_the_known_ones(tmp_path: Path) -> None:
    request = request_for(tmp_path, "podman")

    with pytest.raises(BuildError) as raised:
        build_image(request, builders={"recording": HERE})

    assert str(raised.value) == (
        "unknown builder 'podman': use one of append, engine, kaniko, recording"
    )
    assert made == []


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("cellpipe_nowhere.Builder", "cannot be loaded"),
        (f"{__name__}.Missing", "cannot be loaded"),
        (f"{__name__}.not_a_builder", "is not a builder class"),
        (f"{__name__}.BuiltImage", "is not a builder class"),  # a class, but not a builder
    ],
)
def test_a_name_that_leads_to_no_builder_class_is_a_build_error(
    tmp_path: Path, target: str, says: str
) -> None:
    with pytest.raises(BuildError, match=f"the builder 'odd' \\({target}\\) {says}"):
        build_image(request_for(tmp_path, "odd"), builders={"odd": target})


def test_cellpipe_builders_say_where_they_build_as_the_vocabulary_does() -> None:
    for name in BUILDERS:
        assert builder_class(name).builds_here is (name in BUILDERS_HERE), name


def test_the_kaniko_builder_writes_its_job_beside_the_notebook(tmp_path: Path) -> None:
    said: list[str] = []

    (result,) = build_image(request_for(tmp_path, KANIKO_BUILDER), said.append)

    out = tmp_path / "cellpipe-build"
    assert result.files == [str(out / "build.yaml"), str(out / "context.tar.gz")]
    assert all(Path(file).is_file() for file in result.files)
    assert result.digest is None and result.cached is False
    assert any(str(out) in line and "kaniko" in line for line in said)
