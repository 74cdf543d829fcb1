"""Errors every front door (CLI, magics, widgets, server) shows the same way.

A `UserError` is a mistake the user can fix: one line (or a few) naming the notebook, the
cell, the step and what to change; printed, never a traceback. Its `reason` is a short
machine word the server answers with (and maps to an HTTP status in one place).
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""

    reason = "bad_request"

    def __init__(self, message: str, *, reason: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.details = details  # extra JSON for clients (the compile JSON of a notebook)


class NotFound(UserError):
    """No such run, step, build or notebook."""

    reason = "not_found"


class Conflict(UserError):
    """The thing exists but cannot do that now (a run still going on, one already ended)."""

    reason = "conflict"


class ClusterUnreachable(UserError):
    """The cluster (Kubernetes, Kubeflow Pipelines) could not be asked."""

    reason = "cluster_error"


class StoreError(UserError):
    """The run store cannot be used (damaged, or written by a newer cellpipe); the message
    names the file and what to do. The file is left as it is, never replaced."""

    reason = "store_unavailable"
