"""Every image reference cellpipe is given is checked by the OCI reference grammar before it is
used: a line break in a base image would add a Dockerfile instruction (one that reads the
kaniko push secret), so none reaches a Dockerfile, a Job or an engine (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cellpipe.launcher.config import CellPipe
from cellpipe.launcher.errors import UserError
from cellpipe.launcher.images import plan_image
from cellpipe.launcher.notebooks import prepare_file
from cellpipe.launcher.registry import ImageRef, RegistryError
from cellpipe.launcher.requirements import Requirements
from cellpipe.launcher.running import engine_here
from tests.notebooks import notebook, write

ROOT = Path(__file__).resolve().parents[2]
EVIL = "python:3.11-slim\nRUN cat /kaniko/.docker/config.json"


def errors_of(path: Path, **choices: str) -> list[str]:
    prepared = prepare_file(path, CellPipe(), local_only=True, **choices)
    return [e.for_people("nb.ipynb") for e in prepared.pipeline.errors]


def test_a_base_image_from_the_notebook_that_is_no_reference_is_a_compile_error(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "nb.ipynb",
        notebook((["step:a"], "x = 1"), metadata={"cellpipe": {"base_image": EVIL}}),
    )
    [error] = errors_of(path)
    assert "the base image" in error and "line break" in error
    assert "metadata.cellpipe.base_image" in error


def test_a_base_or_registry_given_as_an_option_is_checked_the_same(tmp_path: Path) -> None:
    path = write(tmp_path / "nb.ipynb", notebook((["step:a"], "x = 1")))
    assert "line break" in errors_of(path, base_image=EVIL)[0]
    [error] = errors_of(path, registry="registry.example.com/team\nRUN id")
    assert "the registry" in error and "HOST[:PORT][/PATH]" in error
    assert errors_of(path, base_image="127.0.0.1:5000/base:1", registry="127.0.0.1:5000/t") == []


def test_an_image_tag_that_is_no_reference_is_an_error_on_its_cell(tmp_path: Path) -> None:
    path = write(tmp_path / "nb.ipynb", notebook((["step:a", "image:Python:3.11"], "x = 1")))
    [error] = errors_of(path)
    assert error.startswith("nb.ipynb: cell 1") and "image:REF" in error


def test_the_kaniko_dockerfile_takes_only_a_reference(tmp_path: Path) -> None:
    from cellpipe.launcher.build_engine import dockerfile
    from cellpipe.launcher.build_kaniko import kaniko_dockerfile

    path = write(tmp_path / "nb.ipynb", notebook((["step:a"], "x = 1")))
    pipeline = prepare_file(path, CellPipe(), local_only=True).pipeline
    plan = plan_image(pipeline, path, Requirements("python", "3.11.0"), EVIL, "r.example.com/t")
    for write_dockerfile in (kaniko_dockerfile, dockerfile):
        with pytest.raises(UserError, match=r"the base image .* line break"):
            write_dockerfile(plan)


def test_cellpipe_build_refuses_a_bad_base_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "nb.ipynb", notebook((["step:a"], "x = 1")))
    out = tmp_path / "out"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cellpipe.cli", "build", str(path), "--builder", "kaniko"),
            *("--registry", "registry.example.com/team", "--base", EVIL, "-o", str(out)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"CELLPIPE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2, result.stderr
    assert "is not an image reference" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_the_registry_client_and_the_engines_take_only_references() -> None:
    with pytest.raises(RegistryError):
        ImageRef.parse("localhost/a:b\nRUN id")
    assert ImageRef.parse("python:3.11") == ImageRef("docker.io", "library/python", "3.11")
    with pytest.raises(UserError, match="--image"):
        engine_here("kfp-local", CellPipe(), image="localhost/a:b --privileged")
