"""How `cellpipe run` shows its steps: a live table on a terminal, plain lines otherwise.

The engines call a listener with ("started" | "finished" | "cached", StepRecord). Plain lines
suit logs and CI; on a terminal the table of all steps is redrawn in place, with a clock
ticking for the steps that are running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol, TextIO

from .terminal import terminal_safe, unfiltered


class StepLike(Protocol):
    name: str
    status: str
    seconds: float | None


_MARKS = {"Succeeded": "ok", "Failed": "FAIL", "Cancelled": "skip"}


class PlainProgress:
    """One line when a step starts and one when it ends."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, event: str, step: StepLike) -> None:
        name = terminal_safe(step.name)
        if event == "started":
            line = f"  ... {name}"
        elif event == "cached":
            line = f"  ok  {name} (cached)"
        else:
            line = f"  {_MARKS.get(step.status, '?'):<3} {name}{_seconds(step.seconds)}"
        print(line, file=self.out, flush=True)

    def close(self) -> None:
        pass


class TerminalProgress:
    """All steps at once, redrawn in place (ANSI cursor movement) as they change."""

    TICK_SECONDS = 0.2

    def __init__(self, out: TextIO, step_names: Sequence[str]) -> None:
        self.out = out
        self.names = [terminal_safe(n) for n in step_names]
        self.width = max((len(n) for n in self.names), default=0)
        self.started: dict[str, float] = {}
        self.finished: dict[str, str] = {}
        self.lock = threading.Lock()
        self.drawn = 0
        self.stop = threading.Event()
        self._draw()
        self.ticker = threading.Thread(target=self._tick, name="cellpipe-progress", daemon=True)
        self.ticker.start()

    def __call__(self, event: str, step: StepLike) -> None:
        name = terminal_safe(step.name)
        with self.lock:
            if event == "started":
                self.started[name] = time.monotonic()
            elif event == "cached":
                self.finished[name] = f"ok   {name:<{self.width}}  cached"
            else:
                mark = _MARKS.get(step.status, "?")
                self.finished[name] = f"{mark:<4} {name:<{self.width}} {_seconds(step.seconds)}"
            self._draw()

    def close(self) -> None:
        self.stop.set()
        self.ticker.join()
        with self.lock:
            self._draw()

    def _tick(self) -> None:
        while not self.stop.wait(self.TICK_SECONDS):
            with self.lock:
                if set(self.started) - set(self.finished):
                    self._draw()

    def _line(self, name: str) -> str:
        if name in self.finished:
            return self.finished[name]
        if name in self.started:
            elapsed = time.monotonic() - self.started[name]
            return f"...  {name:<{self.width}}  {elapsed:.1f} s"
        return f" -   {name:<{self.width}}"

    def _draw(self) -> None:
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        lines = "".join(f"\x1b[2K  {self._line(n)}\n" for n in self.names)
        out = unfiltered(self.out)  # cellpipe's own cursor moves; the names are made safe
        out.write(up + lines)
        out.flush()
        self.drawn = len(self.names)


def _seconds(seconds: float | None) -> str:
    return f" {seconds:.2f} s" if seconds is not None else ""


def progress_for(out: TextIO, step_names: Sequence[str]) -> PlainProgress | TerminalProgress:
    interactive = getattr(out, "isatty", lambda: False)()
    return TerminalProgress(out, step_names) if interactive else PlainProgress(out)
