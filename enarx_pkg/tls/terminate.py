"""TLS terminated inside the keep, in front of the workload's plaintext sockets.

For a ``listen`` + ``tls`` file the keep owns the public listening socket: it accepts, completes the
TLS handshake with the keep's key (bounded by a deadline and a cap on connections), then hands the
plaintext to the workload through :attr:`TlsListener.inner`, a local listening socket the runtime
gives the workload in place of the public one. For ``connect`` + ``tls`` the keep completes the
client handshake and the workload gets one end of a socket pair. Either way the host relays only
TLS records; the plaintext exists only in the keep.

The inner listener is an abstract-namespace Unix socket with a random name: nothing on disk, and
within a confidential VM the only other processes are the keep's own (a ``sim`` keep protects
nothing anyway). One thread per connection moves bytes (selector on both ends, 64 KiB at a time).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

CHUNK = 64 * 1024
WRITE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TlsLimits:
    max_connections: int = 256
    handshake_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0


def _pump(tls: ssl.SSLSocket, plain: socket.socket, idle_s: float | None) -> None:
    """Move bytes both ways until the workload closes, or nothing moves for ``idle_s`` (``None``: no limit).

    The client closing its side half-closes the workload's (it may still answer); the workload closing
    ends the connection with a TLS close_notify, so clients that read to the end see a clean end.
    The TLS socket is non-blocking: a readable socket may carry only handshake records (TLS 1.3
    session tickets, key updates) and no application data.
    """
    tls.setblocking(False)
    poll, timeout_ms = select.poll(), None if idle_s is None else int(idle_s * 1000)
    poll.register(tls, select.POLLIN)
    poll.register(plain, select.POLLIN)
    tls_fd, client_open = tls.fileno(), True
    try:
        while True:
            events = [(tls_fd, select.POLLIN)] if client_open and tls.pending() else poll.poll(timeout_ms)
            if not events:
                return
            for fd, _ in events:
                if fd == tls_fd:
                    client_open = _from_client(tls, plain)
                    if not client_open:
                        poll.unregister(tls)
                elif not _to_client(tls, plain):
                    return
    except (OSError, ssl.SSLError, ValueError):
        return
    finally:
        for s in (tls, plain):
            with contextlib.suppress(OSError):
                s.close()


def _from_client(tls: ssl.SSLSocket, plain: socket.socket) -> bool:
    """Forward what the TLS peer sent; False once it has closed."""
    try:
        data = tls.recv(CHUNK)
    except ssl.SSLWantReadError:
        return True
    if not data:
        plain.shutdown(socket.SHUT_WR)
        return False
    plain.sendall(data)
    return True


def _to_client(tls: ssl.SSLSocket, plain: socket.socket) -> bool:
    """Forward what the workload wrote; on its end, close the TLS session cleanly. False when done."""
    data = plain.recv(CHUNK)
    if not data:
        tls.settimeout(1.0)
        tls.unwrap()
        return False
    view = memoryview(data)
    while view:
        try:
            view = view[tls.send(view):]
        except ssl.SSLWantWriteError:
            if not select.select([], [tls], [], WRITE_TIMEOUT_S)[1]:
                raise TimeoutError("the TLS client stopped reading") from None
    return True


class TlsListener:
    """Terminates TLS on ``public`` (a bound, listening socket) in front of :attr:`inner`.

    ``context`` is called for every connection, so a renewed certificate applies to the next handshake.
    """

    def __init__(self, public: socket.socket, context: Callable[[], ssl.SSLContext],
                 limits: TlsLimits = TlsLimits()) -> None:
        self.public, self.context, self.limits = public, context, limits
        self.inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._address = b"\0enarx-tls-" + os.urandom(16).hex().encode()
        self.inner.bind(self._address)
        self.inner.listen(limits.max_connections)
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tls-accept", daemon=True)

    def start(self) -> TlsListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopped.set()
        for s in (self.public, self.inner):
            with contextlib.suppress(OSError):
                s.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.public.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()  # over the cap: refuse at once rather than queue
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """One connection: handshake (bounded), then pump; its slot is freed however it ends."""
        try:
            conn.settimeout(self.limits.handshake_timeout_s)
            try:
                tls = self.context().wrap_socket(conn, server_side=True)
            except Exception:  # a failed handshake (or no context): this connection only, never the listener
                conn.close()
                return
            try:
                plain = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                plain.connect(self._address)
            except OSError:
                tls.close()
                return
            tls.settimeout(self.limits.idle_timeout_s)
            _pump(tls, plain, self.limits.idle_timeout_s)
        finally:
            self._slots.release()


def connect(sock: socket.socket, context: ssl.SSLContext, server_hostname: str,
            limits: TlsLimits = TlsLimits()) -> socket.socket:
    """Complete a client handshake on ``sock`` (verified by ``context``); returns the workload's plaintext end.

    A server that fails verification raises ``ssl.SSLCertVerificationError`` here: the workload starts
    only with a verified connection.
    """
    sock.settimeout(limits.handshake_timeout_s)
    tls = context.wrap_socket(sock, server_hostname=server_hostname)
    tls.settimeout(None)  # the workload's own connection: it decides how long it stays idle
    workload_end, keep_end = socket.socketpair()
    threading.Thread(target=_pump, args=(tls, keep_end, None), name="tls-connect", daemon=True).start()
    return workload_end
