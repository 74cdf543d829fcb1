"""The commands of `cellpipe` and `%cellpipe`: a parsed command line turned into launcher
calls (cellpipe.launcher), the result presented as text or JSON.

Two front doors use them: the `cellpipe` program (cellpipe.cli: argv, exit statuses) and the
`%cellpipe` magic (cellpipe.magics: the kernel's notebook, rich views of `Outcome.data`). The
work itself is the launcher's; nothing here is needed by the server or the widgets.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any, TextIO

from .outcome import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR, Outcome

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USER_ERROR", "Outcome", "command", "execute"]

Command = Callable[..., Outcome]


# Each command's module and function. Only the module of the command asked for is imported:
# `cellpipe compile` never pays for what `run`, `submit` or `runs` import (nbformat, the
# Kubernetes and KFP clients).
COMMANDS: dict[str, tuple[str, str]] = {
    "compile": ("compile", "compile_command"),
    "run": ("run", "run_command"),
    "build": ("build", "build_command"),
    "requirements": ("build", "requirements_command"),
    "submit": ("submit", "submit_command"),
    "runs": ("runs", "runs_command"),
    "status": ("runs", "status_command"),
    "logs": ("runs", "logs_command"),
    "cancel": ("runs", "cancel_command"),
    "delete": ("runs", "delete_command"),
    "gpus": ("runs", "gpus_command"),
    "tune": ("tune", "tune_command"),
    "serve": ("serve", "serve_command"),
}


def command(name: str) -> Command:
    """The function of command `name`: `(args, out, err, **presentation) -> Outcome`."""
    module, function = COMMANDS[name]
    found: Command = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return found


def execute(args: argparse.Namespace, out: TextIO, err: TextIO, **presentation: Any) -> Outcome:
    """Run the parsed command `args.command`; UserError for what the user must change."""
    return command(args.command)(args, out, err, **presentation)
