"""Text for a terminal: what a notebook wrote (step names, messages, what its steps printed)
cannot move the cursor, clear the screen, set the window title or write the clipboard.

`terminal_safe(text)` is the one function that makes user text safe to print: escape
sequences (CSI, OSC, ...) are removed whole, then every other control character but line
feeds and tabs (C0, DEL, C1, and the bidirectional overrides that reorder what is shown).
`TerminalSafe(stream)` applies it to everything written through it; the `cellpipe` program
prints through it, so every command's text is safe wherever it comes from. cellpipe's own
cursor movements (the live table of `cellpipe run`) go to `unfiltered(stream)`.
"""

from __future__ import annotations

import re
from typing import Any, TextIO, cast

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
