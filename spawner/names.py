"""Safe names for the objects a spawner makes from user and server names.

Like kubespawner's slugs.py: a readable slug of the names, then a hash of the exact names, so
that two users whose names slug alike ("Alice", "alice", "ålice") never share a container or a
volume, a long name is cut without losing what tells it apart, and the same user always gets
the same name back (their volume is found again). Valid as Docker container and volume names
and as DNS-1123 labels.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

MAX_NAME = 63
HASH_LENGTH = 8
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns_label(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_DNS_LABEL.match(name))


def slug(text: str) -> str:
    """Lowercase ASCII letters, digits and single dashes ("Ålice.Smith" -> "alice-smith")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def safe_name(prefix: str, *names: str, limit: int = MAX_NAME) -> str:
    """`prefix-slug-hash`: e.g. safe_name("jupyter", "Alice", "") -> "jupyter-alice-1c0a2f3b".

    The hash covers every name exactly (and which position it is in), so different name
    tuples give different results; the slug only helps people read it."""
    digest = hashlib.sha256(json.dumps([prefix, *names]).encode()).hexdigest()[:HASH_LENGTH]
    readable = "-".join(part for part in (slug(name) for name in names) if part)
    room = limit - len(prefix) - HASH_LENGTH - 2
    readable = readable[: max(room, 0)].strip("-")
    return "-".join(part for part in (prefix, readable, digest) if part)
