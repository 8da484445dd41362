"""Blob bodies over a plain ``http.client`` connection, behind httpx's own transport interface.

httpx (through httpcore and h11) reads a body 64 KiB at a time and turns each piece into a parsed
event; for a 256 MiB blob that is ~4000 trips through Python and a fifth of a pull's time. Here the
body is read with ``read1`` in pieces of up to ``PIECE`` bytes, one ``recv`` each. Only requests
marked ``extensions={RAW: True}`` (blob GETs) come here, and they come as ordinary
``httpx.Request`` objects and leave as ordinary ``httpx.Response`` objects: the auth retries,
redirect rules and origin checks in :mod:`enarx_pkg.oci.transport` apply to them unchanged, and
every failure is raised as the httpx exception the caller already handles.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable, Iterator

import httpx

RAW = "enarx_pkg.raw"
PIECE = 1 << 20
Origin = tuple[str, str, int]


class RawTransport(httpx.BaseTransport):
    """One keep-alive ``http.client`` connection per origin, reused when its last body was read to the end."""

    def __init__(self, timeout: float, tls: Callable[[], ssl.SSLContext]) -> None:
        self.timeout, self._tls = timeout, tls
        self._idle: dict[Origin, http.client.HTTPConnection] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        conn = self._idle.pop(key, None)
        if conn is not None:
            try:  # a kept-alive connection the server has since closed fails here: a GET is safe to resend
                return self._exchange(key, conn, request)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                pass
        return self._exchange(key, self._connect(key), request)

    def _exchange(self, key: Origin, conn: http.client.HTTPConnection, request: httpx.Request) -> httpx.Response:
        if conn.sock is None:
            try:  # TCP and TLS (certificate and host name checked) up front, so they fail as httpx's would
                conn.connect()
            except OSError as exc:
                conn.close()
                raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from None
        try:
            conn.putrequest(request.method, request.url.raw_path.decode("ascii"), skip_host=True,
                            skip_accept_encoding=True)
            for name, value in request.headers.raw:
                if name.lower() != b"accept-encoding":
                    conn.putheader(name.decode("latin-1"), value.decode("latin-1"))
            conn.putheader("Accept-Encoding", "identity")  # a blob's digest covers its bytes as stored
            conn.endheaders(request.read() or None)
            resp = conn.getresponse()
        except BaseException as exc:
            conn.close()
            raise _httpx_error(exc, request) from None
        stream = _Body(resp, conn, request, lambda: self._release(key, conn))
        return httpx.Response(resp.status, headers=resp.getheaders(), stream=stream, request=request,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": resp.reason.encode("latin-1")})

    def _connect(self, key: Origin) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls())
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _release(self, key: Origin, conn: http.client.HTTPConnection) -> None:
        old = self._idle.pop(key, None)
        if old is not None and old is not conn:
            old.close()
        self._idle[key] = conn

    def close(self) -> None:
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()


class _Body(httpx.SyncByteStream):
    """The response body as it comes off the socket; the connection is kept only if it was read to the end."""

    def __init__(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection, request: httpx.Request,
                 release: Callable[[], None]) -> None:
        self.resp, self.conn, self.request, self.release = resp, conn, request, release
        self.done = self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                data = self.resp.read1(PIECE)
            except BaseException as exc:
                self.conn.close()
                raise _httpx_error(exc, self.request) from None
            if not data:
                if self.resp.length == 0:  # read to its Content-Length: http.client leaves it open until told
                    self.resp.close()
                self.done = self.resp.isclosed()
                return
            yield data

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.done and not self.resp.will_close:
            self.release()
        else:
            self.resp.close()
            self.conn.close()


def _httpx_error(exc: BaseException, request: httpx.Request) -> BaseException:
    """The httpx exception for a socket or protocol failure, so callers retry it as they would httpx's own."""
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(f"timed out: {exc}", request=request)
    if isinstance(exc, http.client.IncompleteRead):
        return httpx.RemoteProtocolError("peer closed the connection before the end of the body", request=request)
    if isinstance(exc, (http.client.HTTPException, ssl.SSLError)):
        return httpx.RemoteProtocolError(f"{type(exc).__name__}", request=request)
    if isinstance(exc, OSError):
        return httpx.ReadError(f"{type(exc).__name__}", request=request)
    return exc
