"""The kaniko builder's Job and context, validated against the Kubernetes schemas (no cluster
can run here: what is checked is exactly what `kubectl apply` would receive)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"


def test_the_kaniko_build_is_a_valid_configmap_and_job_holding_the_context(
    tmp_path: Path,
) -> None:
    notebook = Path(shutil.copy(ROOT / "examples" / "iris_cellpipe.ipynb", tmp_path))
    out = tmp_path / "build"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cellpipe.cli",
            "build",
            str(notebook),
            "--builder",
            "kaniko",
            "--registry",
            "registry.example.com/team",
            "-o",
            str(out),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env={"CELLPIPE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout)
    assert built["builder"] == "kaniko" and built["cached"] is False
    assert built["image"].startswith("registry.example.com/team/iris-demo:")
    config_map, job = yaml.safe_load_all((out / "build.yaml").read_text())
    for manifest in (config_map, job):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        assert len(manifest["metadata"]["name"]) <= 63
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert f"--destination={built['image']}" in container["args"]
    # The ConfigMap carries exactly the context written beside it
    context = base64.b64decode(config_map["binaryData"]["context.tar.gz"])
    assert context == (out / "context.tar.gz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        names = tar.getnames()
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert "code/cellpipe/bundle.json" in names and "requirements.txt" in names
    assert "code/cellpipe/lib/cellpipe/runtime/kfp_entry.py" in names
    assert "FROM python:3.11-slim" in dockerfile and "python3 -m venv /cellpipe/venv" in dockerfile


# --- no writes through links (issue 16) --------------------------------------------------------


def _kaniko_build(notebook: Path, out: Path | None = None) -> None:
    from cellpipe.launcher.build import BuildRequest, build_image
    from cellpipe.launcher.config import CellPipe
    from cellpipe.launcher.notebooks import prepare_file

    prepared = prepare_file(notebook, CellPipe(), local_only=True)
    request = BuildRequest(
        prepared.pipeline,
        notebook,
        prepared.notebook,
        "registry.example.com/team",
        builder="kaniko",
        output_dir=out,
    )
    build_image(request)


def test_the_kaniko_builder_does_not_write_through_a_link(tmp_path: Path) -> None:
    import pytest

    from cellpipe.launcher.build import BuildError
    from tests.notebooks import notebook, write

    folder = tmp_path / "cloned"
    (folder / "cellpipe-build").mkdir(parents=True)
    path = write(folder / "nb.ipynb", notebook((["step:a"], "x = 1")))
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    # Given a cloned folder whose cellpipe-build/build.yaml links out of it
    (folder / "cellpipe-build" / "build.yaml").symlink_to("../../outside.txt")

    # Then the build refuses, naming the link, and writes nothing
    with pytest.raises(BuildError, match=r"cellpipe-build/build\.yaml is a symbolic link"):
        _kaniko_build(path)
    assert outside.read_text() == "precious\n"
    assert sorted(p.name for p in (folder / "cellpipe-build").iterdir()) == ["build.yaml"]

    # And a cellpipe-build folder that is a link out is refused the same way
    (folder / "cellpipe-build" / "build.yaml").unlink()
    (folder / "cellpipe-build").rmdir()
    (tmp_path / "elsewhere").mkdir()
    (folder / "cellpipe-build").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BuildError, match=r"cellpipe-build is a symbolic link"):
        _kaniko_build(path)
    assert list((tmp_path / "elsewhere").iterdir()) == []

    # While a plain folder is written, files replaced as new ones
    out = tmp_path / "out"
    _kaniko_build(path, out)
    _kaniko_build(path, out)
    assert sorted(p.name for p in out.iterdir()) == ["build.yaml", "context.tar.gz"]
