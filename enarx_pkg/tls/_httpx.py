"""httpx glue for :class:`enarx_pkg.tls.client.AttestedPeer`: a network backend that checks after start_tls.

httpx has no certificate callback, but httpcore's connection pool takes a network backend; ours
wraps the default one and checks the peer's certificate right after the handshake, before the
request is written. ``HTTPTransport`` builds its pool in ``__init__`` (httpx 0.28), so the pool is
rebuilt here with the same limits and our backend.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from enarx_pkg.tls.client import AttestedPeer


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, peer: AttestedPeer) -> None:
        self._inner, self._peer = inner, peer

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(ssl_context, server_hostname, timeout)
        try:
            obj = stream.get_extra_info("ssl_object")
            self._peer.check(obj.getpeercert(True) if obj else None, server_hostname)
        except BaseException:
            stream.close()
            raise
        return stream


class _Backend(httpcore.NetworkBackend):
    def __init__(self, peer: AttestedPeer) -> None:
        self._inner, self._peer = httpcore.SyncBackend(), peer

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options), self._peer)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AttestingTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (no proxy) whose TLS peers must pass an :class:`AttestedPeer`."""

    def __init__(self, peer: AttestedPeer, context: ssl.SSLContext, *,
                 limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)) -> None:
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(peer))
