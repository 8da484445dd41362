"""Put the keep's TLS in front of a run's ``prot = "tls"`` sockets (what the runtime calls in a keep).

The runtime opens every declared socket (``network.open_sockets``) and hands the list here; each
``tls`` entry is replaced by its plaintext side: a ``listen`` by :attr:`TlsListener.inner`, a
``connect`` by the workload's end of :func:`terminate.connect`. ``tcp`` entries pass unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from enarx_pkg.errors import TransportError, VerificationError
from enarx_pkg.tls import context, terminate
from enarx_pkg.tls.identity import KeepIdentity

Entry = tuple[int, str, socket.socket]  # (fd, kind, socket), as network.open_sockets yields them


class SocketFile(Protocol):
    """What is read of an Enarx.toml ``[[files]]`` entry (``manifest.model.File``)."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def prot(self) -> str | None: ...
    @property
    def ca(self) -> str | None: ...


@dataclass(frozen=True)
class TlsSetup:
    identity: KeepIdentity
    tls12: bool = False
    cafile: Path | None = None  # connect files without their own ``ca``: trust only this CA (default: system roots)
    limits: terminate.TlsLimits = field(default_factory=terminate.TlsLimits)


def _connect(sock: socket.socket, ctx: ssl.SSLContext, f: SocketFile, limits: terminate.TlsLimits) -> socket.socket:
    where = f"connect file {f.name!r} ({f.host}:{f.port})"
    try:
        return terminate.connect(sock, ctx, f.host or "", limits)
    except ssl.SSLCertVerificationError as exc:
        raise VerificationError(f"{where}: the TLS server's certificate is refused: {exc.verify_message}",
                                hint="name the server's CA in Enarx.toml if it is not publicly trusted") from None
    except (ssl.SSLError, OSError) as exc:
        raise TransportError(f"{where}: TLS handshake failed: {exc}") from None


def is_tls(f: SocketFile) -> bool:
    return f.kind in ("listen", "connect") and (f.prot or "tls") == "tls"


@contextlib.contextmanager
def terminated(entries: Sequence[Entry], files: Sequence[SocketFile], setup: TlsSetup) -> Iterator[list[Entry]]:
    """The entries with every ``tls`` socket replaced by its plaintext side; TLS runs until exit."""
    listeners: list[terminate.TlsListener] = []
    out: list[Entry] = []
    contexts: dict[str | None, ssl.SSLContext] = {}
    setup.identity.ensure()  # a deferred identity gets its certificate now: the sockets are bound and reported
    try:
        for fd, kind, sock in entries:
            f = files[fd]
            if not is_tls(f):
                out.append((fd, kind, sock))
            elif kind == "listen":
                listeners.append(terminate.TlsListener(sock, setup.identity.server_context, setup.limits).start())
                out.append((fd, kind, listeners[-1].inner))
            else:
                if f.ca not in contexts:
                    contexts[f.ca] = context.connect_context(
                        cafile=None if f.ca else setup.cafile, cadata=f.ca, key=setup.identity.key,
                        chain=setup.identity.chain, tls12=setup.tls12)
                out.append((fd, kind, _connect(sock, contexts[f.ca], f, setup.limits)))
        yield out
    finally:
        for listener in listeners:
            listener.close()
