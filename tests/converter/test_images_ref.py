"""Image references by the OCI distribution grammar (issue 16): what is one, and what is not."""

from __future__ import annotations

import pytest

from cellpipe.converter.images_ref import (
    ImageName,
    parse_reference,
    reference_problem,
    registry_problem,
)

DIGEST = "sha256:" + "a" * 64

VALID = {
    "python:3.11-slim": ImageName(None, "python", "3.11-slim"),
    "ubuntu": ImageName(None, "ubuntu"),
    "team/app": ImageName(None, "team/app"),
    "localhost/app:1": ImageName("localhost", "app", "1"),
    "127.0.0.1:5000/team/app:v1.0_rc-2": ImageName("127.0.0.1:5000", "team/app", "v1.0_rc-2"),
    "[::1]:5000/app": ImageName("[::1]:5000", "app"),
    "registry.example.com/a/b/c@" + DIGEST: ImageName(
        "registry.example.com", "a/b/c", None, DIGEST
    ),
    "ghcr.io/org/img:tag@" + DIGEST: ImageName("ghcr.io", "org/img", "tag", DIGEST),
    "my-registry.local:443/x__y.z---w": ImageName("my-registry.local:443", "x__y.z---w"),
}

INVALID = [
    "",
    "python:3.11\nRUN cat /kaniko/.docker/config.json",
    "localhost/a:b\nRUN id",
    "python:3.11 AS x",
    "python:3.11\r",
    "Python:3.11",
    "python:.hidden",
    "python:" + "x" * 129,
    "python@sha256:short",
    "registry.example.com/Team/app",
    "registry..example.com/app",
    "-registry.example.com/app",
    "app//name",
    "app/",
    "/app",
    "app-",
    "a" * 256,
    "python:3.11\t",
    "pýthon",
    "--build-arg=x",
]


@pytest.mark.parametrize("text", list(VALID))
def test_references_of_the_grammar_are_read_into_their_parts(text: str) -> None:
    assert parse_reference(text) == VALID[text]
    assert reference_problem(text) is None


@pytest.mark.parametrize("text", INVALID)
def test_anything_else_is_refused_with_what_is_wrong(text: str) -> None:
    problem = reference_problem(text)
    assert problem is not None and problem
    with pytest.raises(ValueError):
        parse_reference(text)


def test_a_line_break_is_named() -> None:
    assert reference_problem("python:3.11\nRUN id") == "an image reference holds no line break"


def test_registries_are_places_to_push_to() -> None:
    for good in ("localhost:5000", "127.0.0.1:5000/team", "registry.example.com/a/b/", "team"):
        assert registry_problem(good) is None, good
    for bad in ("", "/", "localhost:5000/team:tag", "reg.io/x@" + DIGEST, "r.io/a\nRUN id"):
        assert registry_problem(bad) is not None, bad
