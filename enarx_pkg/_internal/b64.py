"""Standard base64 for JSON wire formats (DSSE envelopes, sigstore bundles, sealed envelopes)."""

from __future__ import annotations

import base64
from typing import Any

from enarx_pkg.errors import InputError


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(value: Any, where: str) -> bytes:
    """Decode standard base64 strictly; anything else is malformed input named by ``where``."""
    if not isinstance(value, str):
        raise InputError(f"{where}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise InputError(f"{where}: not valid base64") from None
