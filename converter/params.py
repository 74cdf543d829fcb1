"""Parameter values given at run time (`-p NAME=VALUE`), typed by the parameter's default."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .limits import carried_value_problem
from .model import Parameter


class ParameterError(ValueError):
    """A value that does not fit its parameter; the message says what to write."""


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


NONE_TEXT = "None"  # papermill's `-p NAME None`: an optional parameter's None


def typed_value(parameter: Parameter, text: str) -> Any:
    """`text` as the type of `parameter`'s default.

    An optional parameter (`name = None` in the parameters cell) takes `None` too, written
    `None` as papermill's `-p` reads it; any other text is read as its type (str by default).
    """
    kind = parameter.type
    if parameter.optional and text.strip() == NONE_TEXT:
        return None
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError(text)
        value = json.loads(text)
    except ValueError:
        raise ParameterError(
            f"parameter {parameter.name!r} is {_article(kind)}{_or_none(parameter)} (its "
            f"default is {parameter.default!r}); {text!r} is not one"
        ) from None
    expected = list if kind == "list" else dict
    if not isinstance(value, expected):
        raise ParameterError(
            f"parameter {parameter.name!r} is {_article(kind)} in JSON (its default is "
            f"{json.dumps(parameter.default)}); {text!r} is not one"
        )
    return value


def _or_none(parameter: Parameter) -> str:
    return f" or {NONE_TEXT}" if parameter.optional else ""


def _carried(parameter: Parameter, value: Any) -> Any:
    """`value`, if JSON and Kubeflow Pipelines carry it unchanged (`nan`, `inf`, integers past
    2**53 and lone surrogates they do not)."""
    problem = carried_value_problem(value, parameter.name)
    if problem is not None:
        raise ParameterError(f"parameter {problem}")
    return value


def _article(kind: str) -> str:
    return {"int": "an int", "float": "a float", "bool": "a bool (true or false)"}.get(
        kind, f"a {kind}"
    )


def parameter_values(
    parameters: dict[str, Parameter], assignments: Iterable[str]
) -> dict[str, Any]:
    """Defaults, overridden by each `NAME=VALUE` (split at the first '=')."""
    values = {name: p.default for name, p in parameters.items()}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep:
            raise ParameterError(f"-p {assignment!r}: write -p NAME=VALUE")
        if name not in parameters:
            known = ", ".join(parameters) or "none (the notebook has no parameters cell)"
            raise ParameterError(f"-p {name}: no such parameter; the parameters are {known}")
        values[name] = _carried(parameters[name], typed_value(parameters[name], text))
    return values


def given_values(parameters: dict[str, Parameter], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, overridden by `{name: value}` from JSON (a REST body, a widget's fields).

    Text is read as `-p NAME=TEXT` reads it; any other value must already be of the
    parameter's type (an int is a float too; a str parameter takes any value as its JSON text).
    """
    values = {name: p.default for name, p in parameters.items()}
    for name, value in given.items():
        if name not in parameters:
            known = ", ".join(parameters) or "none (the notebook has no parameters cell)"
            raise ParameterError(f"{name!r}: no such parameter; the parameters are {known}")
        values[name] = _carried(parameters[name], _json_value(parameters[name], value))
    return values


def _json_value(parameter: Parameter, value: Any) -> Any:
    if value is None and parameter.optional:
        return None
    if isinstance(value, str):
        return typed_value(parameter, value)
    kind = parameter.type
    if kind == "str":
        return json.dumps(value)
    fits = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list),
        "dict": isinstance(value, dict),
    }.get(kind, False)
    if not fits:
        raise ParameterError(
            f"parameter {parameter.name!r} is {_article(kind)} (its default is "
            f"{json.dumps(parameter.default)}); {json.dumps(value)} is not one"
        )
    return float(value) if kind == "float" else value
