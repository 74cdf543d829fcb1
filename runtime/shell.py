"""A step's cells run as IPython runs them in a notebook, without a kernel.

IPython's own InteractiveShell runs each cell: `display()`, the value of a cell's last
expression, `get_ipython()`, line and cell magics and `!` lines behave as in Jupyter, and
matplotlib's inline backend shows the figures a cell made at its end. What a cell shows is kept
as nbformat outputs (stream, display_data, execute_result, error), as a kernel would send them,
so the launcher can give back the executed notebook.

Each cell is compiled under its own name (`iris.ipynb, cell 7`), so a traceback points at the
notebook. Outputs are bounded (OutputLimits): what is cut is said where it was cut.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from IPython.core.compilerop import CachingCompiler
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Type
from traitlets.config import Config

from .cells import CellError, CellRecord, Output

# ipykernel's default: figures are shown inline at the end of the cell that drew them.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@dataclass(frozen=True)
class OutputLimits:
    """How much of what a step shows is kept in the executed notebook (the log keeps every
    printed line): text per cell, one output's size, and all of a step's outputs."""

    stream_chars: int = 200_000
    output_bytes: int = 8 * 1024 * 1024
    step_bytes: int = 32 * 1024 * 1024


class _Collector:
    """Where the cell now running puts its outputs, within the limits."""

    def __init__(self, limits: OutputLimits) -> None:
        self.limits = limits
        self.outputs: list[Output] = []
        self.step_bytes = 0
        self.stream_chars: dict[str, int] = {}
        self.stream_cut: dict[str, int] = {}

    def start_cell(self) -> list[Output]:
        self.outputs = []
        self.stream_chars = {}
        self.stream_cut = {}
        return self.outputs

    def end_cell(self) -> None:
        for name, cut in self.stream_cut.items():
            self._append_stream(
                name,
                f"\n[cellpipe: {cut:,} more characters of {name} are not kept here; "
                "the step's log has them all]\n",
            )

    def stream(self, name: str, text: str) -> None:
        room = self.limits.stream_chars - self.stream_chars.get(name, 0)
        if len(text) > room:
            self.stream_cut[name] = self.stream_cut.get(name, 0) + len(text) - max(room, 0)
            text = text[: max(room, 0)]
        if text:
            self.stream_chars[name] = self.stream_chars.get(name, 0) + len(text)
            self._append_stream(name, text)

    def _append_stream(self, name: str, text: str) -> None:
        self.step_bytes += len(text)
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text  # consecutive writes are one output, as in Jupyter
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def rich(self, output: Output) -> None:
        """A display_data or execute_result output, or a note saying why it was left out."""
        size = sum(len(v) if isinstance(v, str) else len(repr(v)) for v in output["data"].values())
        over = (
            "one output's limit"
            if size > self.limits.output_bytes
            else "the step's limit for outputs"
            if self.step_bytes + size > self.limits.step_bytes
            else None
        )
        if over is not None:
            kinds = ", ".join(sorted(output["data"]))
            output = {
                **output,
                "data": {
                    "text/plain": f"[cellpipe: a {size:,}-byte output ({kinds}) is not kept "
                    f"here: over {over}]"
                },
                "metadata": {},
            }
            size = len(output["data"]["text/plain"])
        self.step_bytes += size
        self.outputs.append(output)

    def clear(self) -> None:
        self.outputs.clear()


class _Stream(io.TextIOBase):
    """sys.stdout or sys.stderr while a cell runs: kept as the cell's stream output, and
    echoed to where the step's output goes (its log)."""

    def __init__(self, name: str, collector: _Collector, echo: TextIO | None) -> None:
        self.name_ = name
        self.collector = collector
        self.echo = echo

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.collector.stream(self.name_, text)
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        if self.echo is not None:
            self.echo.flush()


class _Publisher(DisplayPublisher):
    """display(), figures, and rich reprs: display_data outputs of the cell running."""

    collector: _Collector | None = None

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: Any = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        if self.collector is None or update:  # an update of a display by id: nothing to add
            return
        self.collector.rich(
            {"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})}
        )

    def clear_output(self, wait: bool = False) -> None:
        if self.collector is not None:
            self.collector.clear()


class _Hook(DisplayHook):
    """A cell's last expression: its execute_result output."""

    collector: _Collector | None = None

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict: dict[str, Any], md_dict: Any = None) -> None:
        if self.collector is not None:
            self.collector.rich(
                {
                    "output_type": "execute_result",
                    "execution_count": self.prompt_count,
                    "data": dict(format_dict),
                    "metadata": dict(md_dict or {}),
                }
            )

    def finish_displayhook(self) -> None:
        sys.stdout.flush()


class _CellCompiler(CachingCompiler):
    """Names each cell's code after its place in the notebook, for tracebacks."""

    filename = "cell"

    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        return self.filename


class _StepShell(InteractiveShell):
    displayhook_class = Type(_Hook)
    display_pub_class = Type(_Publisher)

    def _showtraceback(self, etype: Any, evalue: Any, stb: Any) -> None:
        pass  # the step reports errors itself, with the runtime's frames left out

    def showsyntaxerror(self, *args: Any, **kwargs: Any) -> None:
        pass

    def showtraceback(self, *args: Any, **kwargs: Any) -> None:
        pass

    def enable_gui(self, gui: str | None = None) -> None:
        pass  # no event loop to integrate: figures are shown inline, or saved by the code


def matplotlib_inline() -> None:
    """Figures inline, as ipykernel sets it, unless the user chose a backend."""
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)


class CellRunner:
    """Runs cells in one namespace (a step's `__main__`) with IPython's semantics."""

    def __init__(
        self,
        namespace: dict[str, Any],
        notebook: str,
        limits: OutputLimits | None = None,
    ) -> None:
        matplotlib_inline()
        self.notebook = notebook
        self.collector = _Collector(limits or OutputLimits())
        # IPython's shell is untyped: used through Any, its parts this module made are typed
        self.shell: Any = _shell(namespace)
        self.compiler = _CellCompiler()  # type: ignore[no-untyped-call]
        self.shell.compile = self.compiler
        publisher: _Publisher = self.shell.display_pub
        hook: _Hook = self.shell.displayhook
        publisher.collector = hook.collector = self.collector

    def cell_filename(self, index: int) -> str:
        return f"{self.notebook}, cell {index + 1}"

    def run(
        self,
        cells: list[dict[str, Any]],
        records: list[CellRecord],
        step: str | None = None,
        on_cell: Callable[[CellRecord], None] | None = None,
    ) -> None:
        """Runs the cells in order, appending a record for each; a cell that raises ends
        the run with CellError after its record (with the error output) is appended."""
        for cell in cells:
            record = CellRecord(cell["index"], cell.get("id"), step=step)
            records.append(record)
            error = self._run_one(cell, record)
            if on_cell is not None:
                on_cell(record)
            if error is not None:
                raise CellError(error)

    def _run_one(self, cell: dict[str, Any], record: CellRecord) -> BaseException | None:
        record.outputs = self.collector.start_cell()
        self.compiler.filename = self.cell_filename(cell["index"])
        started = time.perf_counter()
        out, err = sys.stdout, sys.stderr
        sys.stdout = _Stream("stdout", self.collector, out)
        sys.stderr = _Stream("stderr", self.collector, err)
        try:
            result = self.shell.run_cell(cell["source"], store_history=True)
        finally:
            sys.stdout.flush()
            sys.stdout, sys.stderr = out, err
            self.collector.end_cell()
            record.seconds = time.perf_counter() - started
        error: BaseException | None = result.error_before_exec or result.error_in_exec
        if error is not None:
            record.failed = True
        return error


def _shell(namespace: dict[str, Any]) -> Any:
    """The one shell of this process (IPython's display() finds it as the instance)."""
    shell: Any
    if _StepShell.initialized():
        shell = _StepShell.instance()
        if shell.user_ns is not namespace:
            module = sys.modules["__main__"]
            shell.init_create_namespaces(user_module=module, user_ns=namespace)
            shell.init_user_ns()
        return shell
    config = Config()
    # No history database: it would start a thread (unsafe to fork) and write a file.
    config.HistoryManager.enabled = False
    # No Out/_N cache: it would keep every shown value alive for the step's whole life.
    config.InteractiveShell.cache_size = 0
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.xmode = "Plain"
    shell = _StepShell.instance(config=config, user_module=sys.modules["__main__"])
    if shell.user_ns is not namespace:
        shell.init_create_namespaces(user_module=sys.modules["__main__"], user_ns=namespace)
        shell.init_user_ns()
    return shell
