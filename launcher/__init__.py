"""cellpipe.launcher: every side effect (engines, run records; builders and inventory later)."""

from .local_engine import LocalEngine, RunRequest
from .store import RunRecord, RunStore, StepRecord, cellpipe_home

__all__ = ["LocalEngine", "RunRecord", "RunRequest", "RunStore", "StepRecord", "cellpipe_home"]
