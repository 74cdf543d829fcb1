"""How `cellpipe run` shows its steps as they go: each step's line when it ends, in its
status's colour, with what the step printed under it; on a terminal a live list of the steps
still running (a clock each) and waiting stays under them until the run ends.

The engines call a listener with ("started" | "finished" | "cached", StepRecord). Statuses
are the vocabulary's words (`Succeeded`, `Failed`, `Cancelled`), as `status` and the sidebar
say them. What a step printed is read by `printed(step)` (launcher/run_logs.step_output);
without it, or with `quiet`, the lines stand alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .terminal import STATUS_STYLES, console_for, safe_text, terminal_safe

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live


class StepLike(Protocol):
    name: str
    status: str
    seconds: float | None


Printed = Callable[[Any], str]  # a finished step -> what it printed

STATUS_WIDTH = len("Succeeded")  # the longest status word
OUTPUT_INDENT = "      "
MAX_OUTPUT_LINES = 200  # more of a step's output: `cellpipe logs RUN --step STEP`


class StepLines:
    """The lines of a run's steps, made once for both displays: a finished step's line and
    what it printed, indented under it."""

    def __init__(
        self,
        console: Console,
        step_names: Sequence[str],
        printed: Printed | None = None,
        quiet: bool = False,
    ) -> None:
        self.console = console
        self.width = max((len(terminal_safe(n)) for n in step_names), default=0)
        self.printed = None if quiet else printed

    def line(self, status: str, name: str, note: str) -> RenderableType:
        from rich.text import Text

        text = Text("  ")
        text.append(f"{status:<{STATUS_WIDTH}}", STATUS_STYLES.get(status, ""))
        text.append(
            f"  {terminal_safe(name):<{self.width}}" if note else f"  {terminal_safe(name)}"
        )
        if note:
            text.append(f"  {note}", "dim")
        return text

    def finished(self, event: str, step: StepLike) -> list[RenderableType]:
        note = "cached" if event == "cached" else _seconds(step.seconds)
        shown = [self.line(step.status, step.name, note)]
        output = self.output(step)
        if output:
            shown.append(safe_text(output))
        return shown

    def output(self, step: StepLike) -> str:
        if self.printed is None:
            return ""
        text = self.printed(step).rstrip()
        if not text:
            return ""
        lines = text.splitlines()
        more = len(lines) - MAX_OUTPUT_LINES
        kept = lines[-MAX_OUTPUT_LINES:] if more > 0 else lines
        head = (
            [f"... {more} lines before these (cellpipe logs RUN --step NAME)"] if more > 0 else []
        )
        return "".join(f"{OUTPUT_INDENT}{line}\n" for line in [*head, *kept]).rstrip("\n")


class PlainProgress:
    """A line when a step starts, and its line and output when it ends: for logs and CI."""

    def __init__(
        self,
        out: TextIO,
        step_names: Sequence[str] = (),
        printed: Printed | None = None,
        quiet: bool = False,
    ) -> None:
        self.out = out
        self.console = console_for(out)
        self.lines = StepLines(self.console, step_names, printed, quiet)
        self.lock = threading.Lock()

    def __call__(self, event: str, step: StepLike) -> None:
        with self.lock:
            if event == "started":
                self.console.print(self.lines.line("Running", step.name, ""))
            else:
                for shown in self.lines.finished(event, step):
                    self.console.print(shown)
            self.out.flush()

    def close(self) -> None:
        pass


class TerminalProgress:
    """Finished steps printed as they end, with their output; under them, redrawn in place
    (rich's Live), the steps running (with a clock) and those waiting."""

    REFRESH_PER_SECOND = 5

    def __init__(
        self,
        out: TextIO,
        step_names: Sequence[str],
        printed: Printed | None = None,
        quiet: bool = False,
    ) -> None:
        from rich.live import Live

        self.console = console_for(out)
        self.lines = StepLines(self.console, step_names, printed, quiet)
        self.waiting = list(step_names)
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()
        self.live: Live = Live(
            get_renderable=self._unfinished,
            console=self.console,
            refresh_per_second=self.REFRESH_PER_SECOND,
            transient=True,
        )
        self.live.start()

    def __call__(self, event: str, step: StepLike) -> None:
        with self.lock:  # the state only: Live's own thread reads it to redraw
            if event == "started":
                self.started[step.name] = time.monotonic()
                return
            self.started.pop(step.name, None)
            if step.name in self.waiting:
                self.waiting.remove(step.name)
        self.live.refresh()  # the live part without this step before its line is printed
        for shown in self.lines.finished(event, step):  # printed above the live part
            self.live.console.print(shown)

    def close(self) -> None:
        self.live.stop()

    def _unfinished(self) -> RenderableType:
        from rich.console import Group

        with self.lock:
            now = time.monotonic()
            shown = [
                self.lines.line(
                    "Running" if name in self.started else "Pending",
                    name,
                    f"{now - self.started[name]:.1f} s" if name in self.started else "",
                )
                for name in self.waiting
            ]
        return Group(*shown)


def _seconds(seconds: float | None) -> str:
    return f"{seconds:.2f} s" if seconds is not None else ""


def progress_for(
    out: TextIO,
    step_names: Sequence[str],
    printed: Printed | None = None,
    quiet: bool = False,
) -> PlainProgress | TerminalProgress:
    """The live display on a terminal; plain lines when the output is piped or a file."""
    interactive = getattr(out, "isatty", lambda: False)()
    if interactive:
        return TerminalProgress(out, step_names, printed, quiet)
    return PlainProgress(out, step_names, printed, quiet)
