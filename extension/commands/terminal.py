"""Text for a terminal: what a notebook wrote (step names, messages, what its steps printed)
cannot move the cursor, clear the screen, set the window title or write the clipboard.

`terminal_safe(text)` is the one function that makes user text safe to print: escape
sequences (CSI, OSC, ...) are removed whole, then every other control character but line
feeds and tabs (C0, DEL, C1, and the bidirectional overrides that reorder what is shown).
`TerminalSafe(stream)` applies it to everything written through it; the `cellpipe` program
prints through it, so every command's text is safe wherever it comes from. cellpipe's own
cursor movements and colours (the live display of `cellpipe run`, rich's styles) go to
`unfiltered(stream)`, through `console_for(stream)`, with user text made safe first.

Colour follows the conventions rich follows: none when NO_COLOR is set (no-color.org), colour
when FORCE_COLOR is set, otherwise colour only on a terminal (not TERM=dumb), none when piped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:  # rich is imported by the commands that print with it, not by `compile`
    from rich.console import Console
    from rich.text import Text

# A status's colour, the same words as `status` and the sidebar (launcher/vocabulary.py)
STATUS_STYLES = {
    "Succeeded": "green",
    "Failed": "bold red",
    "Cancelled": "yellow",
    "Running": "cyan",
    "Pending": "dim",
}

_ESCAPE_SEQUENCE = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]                 # CSI: cursor, erase, colours
    | \x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)  # OSC, DCS, SOS, PM, APC: up to BEL or ST
    | \x1b[ -/]*[0-~]                         # the other escape sequences (two or more bytes)
    | \x9b[0-?]*[ -/]*[@-~]                   # CSI in its one-character (C1) form
    """,
    re.VERBOSE,
)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with its escape sequences and control characters removed (line feeds and tabs
    kept)."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


class TerminalSafe:
    """A text stream that writes everything through `terminal_safe`; the rest of the
    stream (flush, isatty, fileno, encoding) is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self.unfiltered = stream

    def write(self, text: str) -> int:
        self.unfiltered.write(terminal_safe(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unfiltered, name)


def safe_stream(stream: TextIO) -> TextIO:
    """`stream` with everything written to it made safe for a terminal."""
    return cast(TextIO, TerminalSafe(stream))


def unfiltered(stream: TextIO) -> TextIO:
    """The stream under a `safe_stream` (for cellpipe's own control sequences), or `stream`."""
    inner: TextIO = getattr(stream, "unfiltered", stream)
    return inner


def wants_colour(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour what goes to `stream`: NO_COLOR (set, not empty) says no, then
    FORCE_COLOR (set, not empty) says yes; otherwise a terminal that is not TERM=dumb."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    interactive = bool(getattr(stream, "isatty", lambda: False)())
    return interactive and env.get("TERM", "") not in ("dumb", "unknown")


def console_for(stream: TextIO) -> Console:
    """A rich console writing to `stream` (under its safe filter: only text made safe with
    `terminal_safe` or `safe_text` may go through it), coloured as `wants_colour` says; its
    width is the terminal's, 80 when piped. No markup, no highlighting: user text is data."""
    from rich.console import Console

    colour = wants_colour(stream)
    interactive = bool(getattr(stream, "isatty", lambda: False)())
    return Console(
        file=unfiltered(stream),
        # a terminal with NO_COLOR stays a terminal (the live display), without colour
        force_terminal=True if colour else (None if interactive else False),
        no_color=not colour,
        color_system="auto" if colour else None,
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=True,
        # piped: 80 columns (or $COLUMNS), not the size of a terminal found on another stream
        width=None if interactive else int(os.environ.get("COLUMNS") or 80),
    )


def safe_text(text: str, style: str = "") -> Text:
    """User text (step names, what steps printed) as a rich Text: control sequences
    removed, never read as markup."""
    from rich.text import Text

    return Text(terminal_safe(text), style=style)


def status_text(status: str) -> Text:
    """A status in its colour."""
    return safe_text(status, STATUS_STYLES.get(status, ""))


def print_fitted_table(
    out: TextIO, whole: dict[str, int], last: str, rows: list[list[Text]]
) -> None:
    """A table in the console's width (80 columns piped): the `whole` columns never cut
    (each at least its width), the `last` one giving way, cut short with an ellipsis."""
    from rich.table import Table

    console = console_for(out)
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for name, width in whole.items():
        table.add_column(name, no_wrap=True, min_width=width)
    rest = console.width - sum(whole.values()) - 2 * len(whole)  # two spaces between columns
    table.add_column(last, no_wrap=True, overflow="ellipsis", max_width=max(rest, 8))
    for row in rows:
        table.add_row(*row)
    console.print(table, soft_wrap=False)
