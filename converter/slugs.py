"""Safe names: one function that makes a DNS-1123 label of any text, for every name cellpipe
gives (pipelines, KFP tasks, Kubernetes objects, kaniko builds).

Like kubespawner's slugs: a readable slug of the text, then a hash of the whole text, so that
two texts that slug alike ("Train Model!", "train model") never collide and a long one is cut
without losing what tells it apart. Names that people choose and that are pinned in compiled
pipelines (a pipeline's name, a step's task name) keep the slug alone (`suffix=""`); a name
that must be told apart by something other than the text (a build by its image tag) takes
that as its `suffix`.

Pure: the launcher imports it from here (the converter never imports the launcher).
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
HASH_LENGTH = 8
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def is_dns_label(name: str) -> bool:
    """A valid DNS-1123 label: at most 63 lowercase letters, digits and inner dashes."""
    return len(name) <= MAX_LABEL and bool(_DNS_LABEL.match(name))


def safe_name(
    text: str,
    *,
    salt: str = "",
    suffix: str | None = None,
    limit: int = MAX_LABEL,
    hash_length: int = HASH_LENGTH,
    fallback: str = "x",
    letter_first: bool = True,
) -> str:
    """A DNS-1123 label for `text`: its slug, then a hash of the text (and `salt`).

    `safe_name("Train model!", salt=run_id)` -> `train-model-3f2a9c1e`. Different
    (text, salt) pairs give different names; the result is at most `limit` characters.

    Args:
        text: any text; its slug is lowercase ASCII letters, digits and single dashes.
        salt: hashed with the text, so the same text in another run gets another name.
        suffix: what follows the slug instead of the hash (an image tag); `""`: nothing
            follows it (a readable name that the text alone makes unique).
        limit: the longest the name may be.
        hash_length: how many hex digits of the hash follow the slug.
        fallback: the slug of a text without a letter or a digit.
        letter_first: a slug starting with a digit gets `x-` before it (the names of
            Services and Pods must start with a letter).
    """
    if suffix is None:
        suffix = hashlib.sha256(f"{text}\0{salt}".encode()).hexdigest()[:hash_length]
    readable = _NOT_SLUG.sub("-", text.lower()).strip("-") or fallback
    if letter_first and not readable[:1].isalpha():
        readable = f"x-{readable}".rstrip("-")
    room = limit - len(suffix) - 1 if suffix else limit
    readable = readable[:room].rstrip("-")
    return f"{readable}-{suffix}" if suffix else readable


__all__ = ["is_dns_label", "safe_name"]
