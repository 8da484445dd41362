"""Check that a server can listen before it announces itself or writes anything.

uvicorn reports a busy port only after start-up (and exits 3); a server that printed
"listening" or created a token first would mislead. Binding once here, with the same
``SO_REUSEADDR`` uvicorn sets, tells the user up front and names the address.
"""

from __future__ import annotations

import socket

from enarx_pkg.errors import TransportError


def check_free(host: str, port: int, what: str) -> None:
    """Raise :class:`TransportError` (exit 69) unless ``host:port`` can be bound now."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise TransportError(f"{what} cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            reason = "the address is already in use" if exc.errno == 98 else exc.strerror or str(exc)
            raise TransportError(f"{what} cannot listen on {host}:{port}: {reason}",
                                 hint="stop whatever is listening there, or pick another port") from None
