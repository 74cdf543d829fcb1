"""A Python with KServe's model server, for the serving tests and benchmarks/bench_serve.py.

kserve 0.21 pins pandas < 3 and psutil < 6, and the test environment has pandas 3 (the
values of issue 17 are mapped copy-on-write under pandas 3), so kserve cannot join `.[test]`
without downgrading pandas under every other test. It gets a virtual environment of its own
(`pip install kserve==KSERVE_VERSION`, from PyPI as CI has it), made once and kept in
build/serve-venv-KSERVE_VERSION: kserve and its own pins first on its path, then this test
environment's packages (cellpipe, scikit-learn, joblib: the versions that saved the models),
as `pip install 'cellpipe[serve]'` gives one environment with both. The launcher starts the
model server in it through CELLPIPE_SERVE_PYTHON, the documented way to serve from another
environment.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import sysconfig
from pathlib import Path

KSERVE_VERSION = "0.21.0"
ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / f"serve-venv-{KSERVE_VERSION}"


def serve_python() -> str:
    """The serve environment's Python, made first if need be (a lock for parallel tests)."""
    python = VENV / "bin" / "python"
    ready = VENV / ".ready"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f"{VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", f"kserve=={KSERVE_VERSION}"],
                check=True,
                timeout=900,
            )
            _see_this_environment(python)
            ready.touch()
    return str(python)


def _see_this_environment(python: Path) -> None:
    """This environment's site-packages after the serve environment's own (its .pth files
    read too, so the editable cellpipe imports there)."""
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(own) / "zz-cellpipe-tests.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
