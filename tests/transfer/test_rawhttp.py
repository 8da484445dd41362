"""Blob GETs over the plain ``http.client`` transport: kept-alive connections, TLS, failures.

A tiny registry on 127.0.0.1 that only serves blobs, so each test controls the connection itself.
"""

from __future__ import annotations

import hashlib
import io
import os
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from enarx_pkg.errors import TransportError
from enarx_pkg.oci import Client, parse_registry
from enarx_pkg.oci.transport import Settings
from enarx_pkg.package import Descriptor
from tests.fixtures.certs import loopback_ca

BLOB = os.urandom(3 << 20)
DESC = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(BLOB).hexdigest(), len(BLOB))
FAST = Settings(backoff=0.01, retries=1, timeout=10)


class _Blobs(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    drop_after_each = False  # answer keep-alive, then close anyway: the client's idle connection goes stale

    def do_GET(self) -> None:
        self.server.connections.add(self.client_address)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(BLOB)))
        self.end_headers()
        self.wfile.write(BLOB)
        if self.drop_after_each:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Blobs)
    srv.connections = set()  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _fetch(client: Client) -> bytes:
    out = io.BytesIO()
    client.fetch_blob_to("r", DESC, out)
    return out.getvalue()


def test_kept_alive_connection_is_reused(server: ThreadingHTTPServer) -> None:
    with Client(f"http://127.0.0.1:{server.server_port}", settings=FAST) as c:
        assert _fetch(c) == BLOB and _fetch(c) == BLOB
    assert len(server.connections) == 1  # type: ignore[attr-defined]


def test_connection_closed_while_idle_is_replaced(server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Blobs, "drop_after_each", True)
    with Client(f"http://127.0.0.1:{server.server_port}", settings=Settings(retries=0, timeout=10)) as c:
        assert _fetch(c) == BLOB
        assert _fetch(c) == BLOB  # no retry budget: the stale connection is replaced, not retried
    assert len(server.connections) == 2  # type: ignore[attr-defined]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    crt, key = loopback_ca(tmp_path, "registry")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Blobs)
    srv.connections = set()  # type: ignore[attr-defined]
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_port, crt
    srv.shutdown()
    srv.server_close()


def test_blob_over_verified_tls(tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    port, crt = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(crt))
    with Client(parse_registry(f"https://127.0.0.1:{port}"), settings=FAST) as c:
        assert _fetch(c) == BLOB


def test_untrusted_tls_certificate_is_refused(tls_server: tuple[int, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = tls_server
    other, _ = loopback_ca(tmp_path, "someone-else")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with Client(parse_registry(f"https://127.0.0.1:{port}"), settings=FAST) as c, \
            pytest.raises(TransportError, match=r"TLS failure: the server's certificate is not trusted"):
        _fetch(c)
