"""Blob GETs over the plain ``http.client`` transport: kept-alive connections, TLS, failures.

A tiny registry on 127.0.0.1 that only serves blobs, so each test controls the connection itself.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import ipaddress
import os
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enarx_pkg.errors import TransportError
from enarx_pkg.oci import Client, parse_registry
from enarx_pkg.oci.transport import Settings
from enarx_pkg.package import Descriptor

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


def _cert(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    crt, key = _cert(tmp_path, "registry")
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
    other, _ = _cert(tmp_path, "someone-else")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with Client(parse_registry(f"https://127.0.0.1:{port}"), settings=FAST) as c, \
            pytest.raises(TransportError, match=r"TLS failure: the server's certificate is not trusted"):
        _fetch(c)
