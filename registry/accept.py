"""Content negotiation for manifest GET/HEAD: does an ``Accept`` header allow a media type (RFC 9110 §12.5.1)?

Media ranges are compared case-insensitively, the most specific range that matches decides, and a
``q=0`` range means "not acceptable". No Accept header (or an empty one) accepts anything.
"""

from __future__ import annotations

import math

MAX_RANGES = 64  # an Accept header is a handful of types; more is not a client we need to satisfy


def acceptable(accept: str, media_type: str) -> bool:
    """True if ``accept`` (all Accept header lines joined with commas) allows ``media_type``."""
    ranges = [r for r in (_parse(part) for part in accept.split(",")[:MAX_RANGES]) if r is not None]
    if not ranges:
        return True
    wanted = media_type.lower()
    kind = wanted.split("/", 1)[0]
    best: tuple[int, float] | None = None
    for value, q in ranges:
        specificity = 2 if value == wanted else 1 if value == f"{kind}/*" else 0 if value == "*/*" else -1
        if specificity >= 0 and (best is None or specificity > best[0]):
            best = (specificity, q)
    return best is not None and best[1] > 0


def _parse(part: str) -> tuple[str, float] | None:
    """``type/subtype;param=x;q=0.5`` -> ("type/subtype", 0.5); None for an empty element."""
    value, *params = (p.strip() for p in part.split(";"))
    if not value:
        return None
    q = 1.0
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "q":
            q = _qvalue(raw.strip())
    return value.lower(), q


def _qvalue(raw: str) -> float:
    try:
        q = float(raw)
    except ValueError:
        q = math.nan
    if not math.isfinite(q):
        return 1.0  # a malformed weight does not turn a type the client named into a refusal
    return min(max(q, 0.0), 1.0)
