"""Reading untrusted input (an HTTP body, a file, a JSON document) without letting it decide how much memory
we use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enarx_pkg.errors import InputError, NotFoundError


def read(response: Any, limit: int) -> bytes | None:
    """The body of a streamed ``httpx.Response``, or ``None`` as soon as it passes ``limit`` bytes.

    Counted as it arrives (after content decoding, so a compressed bomb stops early too), never
    buffered whole first the way ``response.read()`` / ``.content`` / ``.json()`` would.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def request_body(request: Any, limit: int) -> bytes | None:
    """The body of a Starlette ``Request``, or ``None`` once it passes ``limit`` (or declares more).

    Servers (the registry, the host agent) use this for every body they keep in memory.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def file(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a file a user named, read no further than ``limit``: a missing one is not found (66);
    a directory, an unreadable file or one over ``limit`` is invalid input (65). ``what`` names it
    in the message (``policy file``, ``--key``), which never repeats the content."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise NotFoundError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > limit:
        raise InputError(f"{what} {path}: larger than {limit} bytes")
    return data


def json_object(data: bytes, where: str, limit: int) -> dict[str, Any]:
    """Parse untrusted JSON into an object, with a size limit and a clear error."""
    if len(data) > limit:
        raise InputError(f"{where}: {len(data)} bytes is over the {limit}-byte limit")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj
