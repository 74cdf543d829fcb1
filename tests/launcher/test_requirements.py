"""What an image needs: requirements pinned to the kernel's environment, local modules, files."""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

from cellpipe.converter import CompileOptions, Pipeline, build_pipeline, read_notebook
from cellpipe.launcher.images import BUNDLE, LIB, WORKDIR, plan_image
from cellpipe.launcher.requirements import find_requirements
from tests.notebooks import notebook, write

NOTEBOOK = notebook(
    (["imports"], "import os, json\nimport numpy as np\nfrom sklearn import tree\nimport helpers"),
    (["step:load"], "%pip install 'tqdm>=4'\nrows = open('data/small.csv').read()"),
    (["step:big"], "big = open('data/big.bin', 'rb').read()\nimport not_a_real_module_xyz"),
    metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "cellpipe": {"requirements": ["numpy>=1.20"]},
    },
)


def prepared(tmp_path: Path) -> tuple[Pipeline, dict[str, Any], Path]:
    path = write(tmp_path / "work.ipynb", NOTEBOOK)
    (tmp_path / "helpers.py").write_text("VALUE = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "small.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data" / "big.bin").write_bytes(b"\0" * 2_000_000)
    (tmp_path / "requirements.txt").write_text("# pinned by hand\nscikit-learn\n--index-url x\n")
    raw = read_notebook(path)
    pipeline = build_pipeline(raw, str(path), CompileOptions(local_only=True))
    return pipeline, raw, path


def test_requirements_come_from_every_source_with_a_reason(tmp_path: Path) -> None:
    pipeline, raw, path = prepared(tmp_path)
    found = find_requirements(pipeline, raw, path, max_file_bytes=1_000_000)
    by_name = {r.name: r for r in found.requirements}
    # The notebook's own list wins over the pin read from the kernel's environment
    assert by_name["numpy"].spec == "numpy>=1.20"
    assert by_name["numpy"].source == "metadata.cellpipe.requirements"
    # requirements.txt wins over the import's pin; its pip options are warned about
    assert by_name["scikit-learn"].spec == "scikit-learn"
    assert any("--index-url x" in w for w in found.warnings)
    # %pip install lines are requirements too
    assert by_name["tqdm"].spec == "tqdm>=4"
    # The runtime's own needs, pinned to what cellpipe runs with
    assert by_name["kfp"].spec == f"kfp=={md.version('kfp')}"
    # The standard library is left out; the local module and the small file go into the image
    assert "os" not in by_name and "json" not in by_name
    assert [m.path for m in found.local_modules] == ["helpers.py"]
    assert [f.path for f in found.files] == ["data/small.csv"]
    # Nothing dropped silently: the big file and the missing module are each one warning
    assert any("data/big.bin (2.0 MB" in w and "volume:PVC:PATH" in w for w in found.warnings)
    assert any("'not_a_real_module_xyz' is not installed" in w for w in found.warnings)


def test_an_import_is_pinned_to_the_version_in_the_kernels_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "nb.ipynb", notebook((["step:a"], "import yaml\nx = 1")))
    raw = read_notebook(path)
    pipeline = build_pipeline(raw, str(path), CompileOptions(local_only=True))
    found = find_requirements(pipeline, raw, path)
    pyyaml = next(r for r in found.requirements if r.name == "pyyaml")
    assert pyyaml.spec == f"PyYAML=={md.version('PyYAML')}"
    assert pyyaml.source.startswith("import yaml (cell 1)")


def test_the_image_holds_the_bundle_the_runtime_and_the_files(tmp_path: Path) -> None:
    pipeline, raw, path = prepared(tmp_path)
    found = find_requirements(pipeline, raw, path, max_file_bytes=1_000_000)
    base, registry = "127.0.0.1:5000/base:1", "127.0.0.1:5000/t"
    plan = plan_image(pipeline, path, found, base, registry)
    assert json.loads(plan.code_files[BUNDLE])["steps"]["load"]["name"] == "load"
    assert f"{LIB}/cellpipe/runtime/step.py" in plan.code_files
    assert plan.code_files[f"{WORKDIR}/helpers.py"] == b"VALUE = 1\n"
    assert f"{WORKDIR}/data/small.csv" in plan.code_files
    assert f"{WORKDIR}/data/big.bin" not in plan.code_files
    assert plan.reference.startswith("127.0.0.1:5000/t/work:")
    # The tag is a content hash: the same content gives the same tag, an edit another
    again = plan_image(pipeline, path, found, base, registry)
    assert again.tag == plan.tag
    (tmp_path / "helpers.py").write_text("VALUE = 2\n")
    edited = plan_image(pipeline, path, found, base, registry)
    assert edited.tag != plan.tag and edited.deps_key == plan.deps_key


def test_cellpipe_requirements_shows_what_was_found_and_why(tmp_path: Path) -> None:
    import subprocess
    import sys

    _, _, path = prepared(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "requirements", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    shown = json.loads(result.stdout)
    assert {r["name"] for r in shown["requirements"]} >= {"numpy", "scikit-learn", "tqdm", "kfp"}
    text = subprocess.run(
        [sys.executable, "-m", "cellpipe.cli", "requirements", str(path), "--max-file-size", "5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "data/big.bin" in text and "helpers.py" in text and "metadata.cellpipe" in text
