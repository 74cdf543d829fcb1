"""`cellpipe compile` imports what compiling needs and no more (issue 17: a compile that starts at
once). Not timed: the modules a fresh `cellpipe compile` process holds at its end are checked,
so that an import of the KFP client, the Kubernetes client or nbformat creeping back in fails
here instead of quietly costing a second on every compile (benchmarks/bench_compile.py times it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.converter.test_compile import GPU_NOTEBOOK
from tests.notebooks import write

# What the whole process must not import: kfp's client and kfp.kubernetes (and with them the
# Kubernetes client, google-auth, requests, jsonschema's format checkers), what the other
# commands need (nbformat, the engines), and the Jupyter server and the kernel.
NOT_IMPORTED = (
    "kubernetes",
    "kfp.client",
    "kfp.kubernetes",
    "google.auth",
    "requests",
    "urllib3",
    "jsonschema",
    "nbformat",
    "IPython",
    "tornado",
    "jupyter_server",
    "cellpipe.commands.run",
    "cellpipe.commands.submit",
    "cellpipe.commands.runs",
    "cellpipe.commands.build",
    "cellpipe.launcher.local_engine",
    "cellpipe.launcher.kfp_engine",
)

COMPILE = """
import contextlib, io, json, sys
from cellpipe.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    status = main(["compile", sys.argv[1], "-o", sys.argv[2]])
modules = sorted(sys.modules)
import kfp, kfp.client  # what kfp users reach for is still there after a compile
print(json.dumps({"status": status, "modules": modules, "client": kfp.Client is kfp.client.Client}))
"""


def test_a_compile_imports_no_client_and_nothing_of_the_other_commands(tmp_path: Path) -> None:
    notebook = write(tmp_path / "gpu.ipynb", GPU_NOTEBOOK)  # GPUs, secrets, volumes: pod settings
    process = subprocess.run(
        [sys.executable, "-c", COMPILE, str(notebook), str(tmp_path / "gpu.yaml")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    found = json.loads(process.stdout)
    assert found["status"] == 0
    assert "kubernetes" in (tmp_path / "gpu.yaml").read_text(encoding="utf-8")
    modules = found["modules"]
    assert "cellpipe.converter.kfp_ir" in modules  # it did compile
    imported = [m for m in modules for top in NOT_IMPORTED if m == top or m.startswith(top + ".")]
    assert imported == []
    assert found["client"]
