"""Access logs for the servers (registry, host agent): one line per HTTP request, NCSA Common or Combined.

``with_access_log(app, "combined")`` wraps any ASGI app; ``"off"`` returns it unchanged. Lines go to
standard output (one ``write`` each, so worker processes sharing it do not interleave within a line).
Everything taken from the request is escaped, so a client cannot forge log lines, and credentials
are never logged: no Authorization header, and the query string is left out.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TextIO

FORMATS = ("common", "combined", "off")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_access_log(app: ASGIApp, fmt: str, stream: TextIO | None = None) -> ASGIApp:
    """``app`` logging each request in ``fmt`` (common, combined), or ``app`` itself for ``off``."""
    if fmt not in FORMATS:
        raise ValueError(f"access log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return app if fmt == "off" else AccessLog(app, fmt == "combined", stream)


class AccessLog:
    """ASGI middleware: after each HTTP response, one Common/Combined Log Format line."""

    def __init__(self, app: ASGIApp, combined: bool, stream: TextIO | None = None) -> None:
        self.app, self.combined, self.stream = app, combined, stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = {"status": 0, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            (self.stream or sys.stdout).write(line(scope, seen["status"], seen["bytes"], self.combined) + "\n")
            (self.stream or sys.stdout).flush()


def line(scope: Scope, status: int, size: int, combined: bool) -> str:
    """One log line; status 0 (no response was sent: the client went away) is logged as ``-``."""
    client = scope.get("client")
    host = _escape(str(client[0])) if client else "-"
    when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    path = _escape(scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or scope.get("path", ""))
    request = f'{_escape(scope.get("method", "-"))} {path} HTTP/{_escape(scope.get("http_version", "1.1"))}'
    out = f'{host} - - [{when}] "{request}" {status or "-"} {size or "-"}'
    if combined:
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        out += f' "{_escape(headers.get(b"referer", b"-").decode("latin-1"))}"'
        out += f' "{_escape(headers.get(b"user-agent", b"-").decode("latin-1"))}"'
    return out


def _escape(text: str) -> str:
    return "".join(c if " " <= c < "\x7f" and c not in '"\\' else f"\\x{ord(c):02x}" for c in text[:2000])
