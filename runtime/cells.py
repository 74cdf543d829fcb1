"""What a cell left behind when it ran: its outputs, and the error that ended a step.

Kept apart from the shell (runtime/shell.py) so that reading reports, and the compiler's
imports of the runtime, do not import IPython.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Output = dict[str, Any]  # one nbformat output


@dataclass
class CellRecord:
    """One cell as it ran: its outputs and seconds; `failed` on the cell that raised."""

    index: int
    id: str | None
    outputs: list[Output] = field(default_factory=list)
    seconds: float = 0.0
    failed: bool = False
    step: str | None = None  # the step whose process ran it (None: the imports/functions)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "outputs": self.outputs,
            "seconds": round(self.seconds, 6),
            "failed": self.failed,
        }


class CellError(Exception):
    """A cell raised: the exception as the cell raised it, and the cells run so far."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def error_output(error: BaseException, traceback_text: str) -> Output:
    return {
        "output_type": "error",
        "ename": type(error).__name__,
        "evalue": str(error),
        "traceback": traceback_text.splitlines(),
    }
