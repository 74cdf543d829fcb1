"""How a command ended: its exit status and what it printed as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # a step failed, a submit did not reach its engine, the cluster refused
EXIT_USER_ERROR = 2


@dataclass
class Outcome:
    """How a command ended: its exit status and what `--format json` prints (None: nothing)."""

    status: int
    data: Any = None
