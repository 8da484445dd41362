"""Validation of everything a request names: repositories, tags, digests (OCI distribution regexes).

Nothing built from request data touches the filesystem before passing these checks.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
VERSION_TAG_RE = re.compile(r"^v?\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.-]+)?$")
MAX_NAME = 255


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(NAME_RE.match(name))


def valid_tag(tag: str) -> bool:
    return bool(TAG_RE.match(tag))


def digest_problem(digest: str) -> str | None:
    """None if ``digest`` is a usable sha256 digest, else why not (for the DIGEST_INVALID message)."""
    if DIGEST_RE.match(digest):
        return None
    if not ANY_DIGEST_RE.match(digest):
        return f"malformed digest {digest[:100]!r}"
    algo = digest.split(":", 1)[0]
    if algo != "sha256":
        return f"unsupported digest algorithm {algo[:20]!r}: this registry accepts sha256 only"
    return f"malformed sha256 digest {digest[:100]!r}: expected 64 lowercase hex digits"


def is_version_tag(tag: str) -> bool:
    """Version tags (1.2.3, v1.0.0-rc.1) are immutable; moving tags (latest, sha256-<hex>) are not."""
    return bool(VERSION_TAG_RE.match(tag))


def matches(pattern: str, name: str) -> bool:
    """Scope patterns: ``myorg/app`` exactly, ``myorg/*`` anything below myorg, ``*`` everything."""
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return name.startswith(pattern[:-1])
    return pattern == name
