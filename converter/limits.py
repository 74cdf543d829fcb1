"""What the compiler accepts, checked where the notebook is read, so that whatever comes later
(kfp's SDK, the YAML, the JSON, Kubernetes) never refuses what the compiler let through.

- Kubernetes quantities (`cpu:`, `memory:`, `shm:`, Kale's `limit:`, `metadata.cellpipe.resources`)
  by Kubernetes' own grammar, then in a form kfp's SDK accepts too, with the same value.
- Whole numbers (`gpu:`, `retries:`, `timeout:`) in ASCII digits, within bounds.
- Parameter values that JSON and Kubeflow Pipelines carry unchanged.
- Text that is Unicode (no lone surrogates), and syntax trees no deeper than the analysis reads.

Pure functions: each returns the accepted value or raises `Refused` with what to write instead.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

MAX_GPUS = 64  # per step: no node has more
MAX_RETRIES = 100
MAX_TIMEOUT_SECONDS = 366 * 24 * 3600  # a year (and a day)
# Kubernetes keeps a quantity's value in 64 bits: bytes for memory, millicores for CPU.
MAX_INT64 = 2**63 - 1
# Kubeflow Pipelines carries numbers as 64-bit floats (protobuf's Value): integers beyond this
# would arrive changed.
MAX_EXACT_INTEGER = 2**53 - 1
# How deep a syntax tree may be. The name analysis walks trees recursively; Python's own
# parser refuses more than 200 nested parentheses, and 200 levels analyse well inside the
# interpreter's recursion limit wherever the compiler is called from.
MAX_SYNTAX_DEPTH = 200
_MAX_QUANTITY_LENGTH = 64


class Refused(ValueError):
    """A value the compiler does not accept; the message says why and what to write."""


# --- Kubernetes quantities ------------------------------------------------------------------------

# apimachinery's resource.Quantity: <sign><number><suffix>, a number being digits with an
# optional decimal point, a suffix a binary SI one (Ki..Ei), a decimal SI one (n u m "" k M G
# T P E) or a decimal exponent (e3, E-2). ASCII digits only.
_QUANTITY = re.compile(
    r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?[0-9]+))?",
    re.ASCII,
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
# What kfp 2.16's PipelineTask.set_cpu_*/set_memory_* accept (pipeline_task.py), as full matches.
_KFP_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?", re.ASCII)
# kfp also takes K, which Kubernetes does not (its kilo is k): never written.
_KFP_MEMORY = re.compile(r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|Ki)?", re.ASCII)
# Units a memory size is written in, largest first: binary ones, then decimal ones kfp takes.
_MEMORY_UNITS = [
    ("Ei", 2**60),
    ("E", 10**18),
    ("Pi", 2**50),
    ("P", 10**15),
    ("Ti", 2**40),
    ("T", 10**12),
    ("Gi", 2**30),
    ("G", 10**9),
    ("Mi", 2**20),
    ("M", 10**6),
    ("Ki", 2**10),
]


def quantity_value(text: str) -> Fraction:
    """The exact value of a Kubernetes quantity; Refused if Kubernetes would not read it."""
    if len(text) > _MAX_QUANTITY_LENGTH:
        raise Refused(f"{_shown(text)} is too long for a Kubernetes quantity")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise Refused(f"{_shown(text)} is not a Kubernetes quantity")
    sign, number, suffix, exponent = match.groups()
    value = Fraction(number if not number.endswith(".") else number[:-1])
    if exponent is not None:
        power = int(exponent)
        if abs(power) > 40:
            raise Refused(f"{_shown(text)} is out of range for a Kubernetes quantity")
        value *= Fraction(10) ** power
    elif suffix in _BINARY:
        value *= _BINARY[suffix]
    else:
        value *= _DECIMAL[suffix or ""]
    return -value if sign == "-" else value


def _positive(text: str, what: str) -> Fraction:
    value = quantity_value(text)
    if value <= 0:
        raise Refused(f"{what} must be more than 0, not {_shown(text)}")
    return value


def cpu(text: str) -> str:
    """A CPU amount as kfp's SDK and Kubernetes both read it, with the value written.

    Kept as written where kfp accepts it (`2`, `0.5`, `500m`); else written in cores or
    millicores with the same value (`1e3` -> `1000`, `+2` -> `2`, `0.5k` -> `500`).
    """
    value = _positive(text, "a CPU amount")
    millicores = value * 1000
    if millicores.denominator != 1:
        raise Refused(
            f"{_shown(text)} is finer than a millicore, which Kubernetes cannot give; "
            "round it to millicores (500m is half a core)"
        )
    if millicores > MAX_INT64:
        raise Refused(f"{_shown(text)} is more CPU than Kubernetes can express")
    if _KFP_CPU.fullmatch(text):
        return text
    if value.denominator == 1:
        return str(value.numerator)
    return f"{millicores.numerator}m"


def memory(text: str) -> str:
    """A memory size (or any size in bytes) as kfp's SDK and Kubernetes both read it.

    Kept as written where kfp accepts it (`4Gi`, `512M`, `1000`); else written with the largest
    unit that keeps it whole, the same number of bytes (`1.5Gi` -> `1536Mi`, `10k` -> `10000`).
    """
    value = _positive(text, "a size")
    if value.denominator != 1:
        hint = (
            "; m means thousandths (milli): write M or Mi for megabytes"
            if text.endswith("m")
            else ""
        )
        raise Refused(f"{_shown(text)} is not a whole number of bytes{hint}")
    if value > MAX_INT64:
        raise Refused(f"{_shown(text)} is more bytes than Kubernetes can express (8Ei at most)")
    if _KFP_MEMORY.fullmatch(text):
        return text
    nbytes = value.numerator
    for unit, size in _MEMORY_UNITS:
        if nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return str(nbytes)


# --- whole numbers --------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def whole_number(text: str, least: int, most: int, unit: str = "") -> int:
    """`text` as a whole number from `least` to `most` (of `unit`), in ASCII digits."""
    if not _DIGITS.fullmatch(text):
        raise Refused(f"{_shown(text)} is not a whole number" + (f" of {unit}s" if unit else ""))
    number = int(text) if len(text) <= len(str(most)) + 1 else most + 1
    if number < least:
        raise Refused(f"it must be at least {_count(least, unit)}")
    if number > most:
        raise Refused(f"it must be at most {_count(most, unit)}")
    return number


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}{'' if number == 1 else 's'}" if unit else str(number)


# --- values Kubeflow Pipelines carries ------------------------------------------------------------


def carried_value_problem(value: Any, name: str) -> str | None:
    """Why `value`, the default of parameter `name`, cannot travel as it is (None: it can).

    JSON and Kubeflow Pipelines carry strings, finite numbers (whole numbers exactly up to
    2**53), booleans, and lists and dicts (with string keys) of them, and None (not inside a
    list or dict: kfp's SDK refuses it there); text must be Unicode. The answer names the
    part: `d`, `d[0]`, `d['key']`.
    """
    stack: list[tuple[str, Any]] = [(name, value)]
    while stack:
        where, item = stack.pop()
        if item is None and where != name:
            return (
                f"{where} is None, which Kubeflow Pipelines does not carry inside a list or a "
                "dict; leave it out or use a string"
            )
        problem = _item_problem(where, item)
        if problem is not None:
            return problem
        if isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, dict):
            for key, v in reversed(list(item.items())):
                if not isinstance(key, str):
                    return (
                        f"{where} has the key {key!r}, which is not a string (JSON's keys are "
                        f"strings): write {str(key)!r}"
                    )
                problem = text_problem(key)
                if problem is not None:
                    return f"{where} has a key that {problem}"
                stack.append((f"{where}[{_shown(key)}]", v))
    return None


def _item_problem(where: str, item: Any) -> str | None:
    if isinstance(item, bool) or item is None or isinstance(item, (list, dict)):
        return None
    if isinstance(item, int):
        if abs(item) <= MAX_EXACT_INTEGER:
            return None
        return (
            f"{where} = {_short(item)} is too large to travel exactly (pipeline parameters are "
            f"64-bit floats: whole numbers up to {MAX_EXACT_INTEGER}); write it as a string "
            "and convert it in a step"
        )
    if isinstance(item, float):
        if math.isfinite(item):
            return None
        return (
            f"{where} = {item!r} is not a finite number, which neither JSON nor Kubeflow "
            "Pipelines carries; give a finite number"
        )
    if isinstance(item, str):
        problem = text_problem(item)
        return None if problem is None else f"{where} {problem}"
    kind = type(item).__name__
    return (
        f"{where} holds a {kind}, which JSON cannot carry; use lists, dicts, strings, numbers, "
        "bools and None"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 30 else f"{text[:12]}...{text[-8:]} ({len(text)} characters)"


# --- text ---------------------------------------------------------------------------------------


def text_problem(text: str) -> str | None:
    """Why `text` cannot be written as UTF-8 (a lone surrogate), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        return (
            f"holds a lone surrogate ({bad!r}), which is not a character and cannot be written "
            "as UTF-8; remove it"
        )
    return None


def not_unicode(notebook: Mapping[str, Any]) -> list[tuple[int | None, str]]:
    """Each part of `notebook` that cellpipe reads and that holds text that is not Unicode (a
    lone surrogate, which JSON's `\\ud800` escapes can make), as (cell index or None, message).

    Such text can be neither written as UTF-8 nor parsed as Python: the notebook is refused
    before anything else reads it.
    """
    found: list[tuple[int | None, str]] = []
    metadata = notebook.get("metadata")
    if isinstance(metadata, Mapping):
        for key in ("cellpipe", "kubeflow_notebook"):
            problem = _first_bad_text(metadata.get(key), f"notebook metadata {key}")
            if problem is not None:
                found.append((None, problem))
    cells = notebook.get("cells")
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        cell_metadata = cell.get("metadata")
        parts = {
            "the cell's source": cell.get("source"),
            "the cell's id": cell.get("id"),
            "the cell's tags": cell_metadata.get("tags")
            if isinstance(cell_metadata, Mapping)
            else None,
        }
        for where, part in parts.items():
            problem = _first_bad_text(part, where)
            if problem is not None:
                found.append((index, problem))
    return found


def _first_bad_text(value: Any, where: str) -> str | None:
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return f"{path} {problem}"
        elif isinstance(item, Mapping):
            for key, child in item.items():
                stack.append((f"{path}.{without_surrogates(str(key))}", child))
                stack.append((f"{path} (a key)", key))
        elif isinstance(item, list):
            stack.extend((path, child) for child in item)
    return None


def without_surrogates(text: str) -> str:
    """`text` with each lone surrogate written as its escape (`\\ud800`)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown(text: str) -> str:
    """`text` quoted for a message, whatever it holds."""
    shown = repr(without_surrogates(text)) if text_problem(text) else repr(text)
    return shown if len(shown) <= 40 else f"{shown[:30]}...{shown[-6:]}"


# --- syntax trees -------------------------------------------------------------------------------


def too_deep(tree: ast.AST) -> int | None:
    """The line of a part of `tree` nested more than MAX_SYNTAX_DEPTH levels deep (found
    without recursion), or None."""
    stack: list[tuple[ast.AST, int, int]] = [(tree, 1, 1)]
    while stack:
        node, depth, line = stack.pop()
        line = getattr(node, "lineno", line)
        if depth > MAX_SYNTAX_DEPTH:
            return line
        if getattr(node, "end_lineno", None) == line:
            # Each level of nesting takes at least one character of source (`-`, `.b`, `[0]`,
            # `f(`): a short one-line part cannot reach the limit, and most code is skipped.
            width = (getattr(node, "end_col_offset", None) or 0) - getattr(node, "col_offset", 0)
            if depth + 2 * width + 8 <= MAX_SYNTAX_DEPTH:
                continue
        stack.extend((child, depth + 1, line) for child in ast.iter_child_nodes(node))
    return None
