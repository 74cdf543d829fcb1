"""Image references by the grammar of the OCI distribution reference (the one Docker, podman,
containerd and kaniko read: github.com/distribution/reference, regexp.go):

    reference      := name [ ":" tag ] [ "@" digest ]
    name           := [ domain "/" ] path-component ( "/" path-component )*   (at most 255)
    domain         := host [ ":" port ]      host: domain-name | IPv4 | "[" IPv6 "]"
    path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest         := algorithm ":" hex (32 or more)

Pure (no I/O): the converter checks `image:` tags with it, and the launcher every reference
it is given (base images, `--image`, registries) before it is used anywhere, so that no text
that is not one reference (a line break and a second Dockerfile instruction, an option) gets
into a Dockerfile, a manifest or a command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_MAX = 255  # the grammar's limit on a name (domain and path), without tag and digest

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)


@dataclass(frozen=True)
class ImageName:
    """A reference's parts, as written: `domain` None for Docker Hub's short names."""

    domain: str | None
    path: str
    tag: str | None = None
    digest: str | None = None


def parse_reference(text: str) -> ImageName:
    """The parts of `text`, a reference by the grammar above; ValueError saying what is wrong.

    The first component is the domain when it looks like one (a `.`, a `:` port, `localhost`,
    or a capital letter), as Docker reads it: `team/app` is Docker Hub's `team/app`."""
    if not isinstance(text, str) or not text:
        raise ValueError("an image reference cannot be empty")
    bad = next((ch for ch in text if ch.isspace() or not ch.isprintable() or ord(ch) > 126), None)
    if bad is not None:
        raise ValueError(f"an image reference holds no {_named(bad)}")
    name, at, digest = text.partition("@")
    if at and not _DIGEST_RE.fullmatch(digest):
        raise ValueError(f"{digest!r} is not a digest (ALGORITHM:HEX, e.g. sha256:...)")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise ValueError(
                f"{tag!r} is not a tag (letters, digits, '_', '.', '-'; at most 128, not "
                "starting with '.' or '-')"
            )
    if len(name) > NAME_MAX:
        raise ValueError(f"the name is longer than {NAME_MAX} characters")
    first, slash_found, rest = name.partition("/")
    domain = None
    if slash_found and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    ):
        domain, name = first, rest
        if not _DOMAIN_RE.fullmatch(domain):
            raise ValueError(f"{domain!r} is not a registry host (HOST or HOST:PORT)")
    if not _PATH_RE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a repository path (lowercase letters and digits, parts joined "
            "by '/', '.', '_' or '-')"
        )
    return ImageName(domain, name, tag, digest or None)


def reference_problem(text: str) -> str | None:
    """None when `text` is one image reference; else what is wrong with it, for people."""
    try:
        parse_reference(text)
    except ValueError as exc:
        return str(exc)
    return None


def registry_problem(text: str) -> str | None:
    """None when `text` is a place to push images to, HOST[:PORT][/PATH] (images are named
    TEXT/PIPELINE:TAG under it); else what is wrong with it."""
    if not isinstance(text, str) or not text.strip("/"):
        return "a registry cannot be empty"
    try:
        parsed = parse_reference(f"{text.rstrip('/')}/image")
    except ValueError as exc:
        return str(exc)
    if parsed.tag is not None or parsed.digest is not None:
        return "a registry is HOST[:PORT][/PATH], without a tag or digest"
    return None


def _named(ch: str) -> str:
    if ch == "\n" or ch == "\r":
        return "line break"
    if ch.isspace():
        return "space"
    return f"character {ch!r}"
