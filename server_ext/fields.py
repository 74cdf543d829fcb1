"""The JSON fields the REST API reads, each with the one type it takes.

A request is checked against this table before anything else is done with it: a field of
another type, or a number out of range (`1e308`, NaN, which Python's JSON reader accepts), is a
400 naming the field and what it takes, never a fault deeper in. A field that is absent or
null takes its default. Fields a route does not read are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cellpipe.launcher.errors import UserError

MAX_FILE_MB = 1_000_000  # `max_file_size`: a file baked into an image is at most this (1 TB)

Check = Callable[[Any], str | None]  # None: the value fits; else what the field must be


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be text"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a JSON object"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _whole(minimum: int, maximum: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        if value < minimum:  # as cluster.number_field says it
            return "cannot be negative" if minimum == 0 else f"must be at least {minimum}"
        if value > maximum:
            return f"must be at most {maximum:,}"
        return None

    return check


def _megabytes(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number of MB"
    if not math.isfinite(value) or not 0 <= value <= MAX_FILE_MB:
        return f"must be a number of MB from 0 to {MAX_FILE_MB:,}"
    return None


FIELDS: dict[str, Check] = {
    "path": _text,
    "content": _object,
    "yaml": _flag,
    "registry": _text,
    "base_image": _text,
    "engine": _text,
    "parameters": _object,
    "use_cache": _flag,
    "require_gpus": _flag,
    "builder": _text,
    "base": _text,
    "max_file_size": _megabytes,
    # what a cluster engine takes (as `cellpipe submit`'s options)
    "kfp_host": _text,
    "gpus": _object,
    "image": _text,
    "namespace": _text,
    "experiment": _text,
    "step": _text,
    "workers": _whole(1, 10_000),
    "gpus_per_worker": _whole(0, 1_000),
    "gpu_type": _text,
    "pvc": _text,
    "storage_size": _text,
    "storage_class": _text,
    "runtime": _text,
}

ROUTE_FIELDS: dict[str, tuple[str, ...]] = {
    "compile": ("path", "content", "yaml", "registry", "base_image"),
    "runs": (
        "path",
        "content",
        "engine",
        "parameters",
        "use_cache",
        "require_gpus",
        "registry",
        "base_image",
        "builder",
        "image",
        "kfp_host",
        "gpus",
        "namespace",
        "experiment",
        "step",
        "workers",
        "gpus_per_worker",
        "gpu_type",
        "pvc",
        "storage_size",
        "storage_class",
        "runtime",
    ),
    "builds": ("path", "content", "registry", "builder", "base", "max_file_size"),
}


def check_fields(body: dict[str, Any], route: str) -> None:
    """Every field `route` reads, of the type it takes; a UserError (400) naming the first
    that is not."""
    for name in ROUTE_FIELDS[route]:
        value = body.get(name)
        if value is None:
            continue
        problem = FIELDS[name](value)
        if problem is not None:
            raise UserError(f"'{name}' {problem}", reason="bad_request")
