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
