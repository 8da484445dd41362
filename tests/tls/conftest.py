"""Attested TLS test set-up: sim keeps that make keys and evidence as a keep does, and real ssl servers.

The servers are Python ``ssl`` servers on 127.0.0.1 (a free port each) that serve a certificate
made by :mod:`enarx_pkg.tls.keep`; they record every application byte they receive, so a test can
assert that a refused client sent nothing.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg.attestation.sim import SimPlatform
from enarx_pkg.tls import keep
from tests.conftest import REPO

PACKAGE = "sha256:" + hashlib.sha256(b"the package this keep runs").hexdigest()
OTHER_PACKAGE = "sha256:" + hashlib.sha256(b"another package").hexdigest()
MEASUREMENT = hashlib.sha384(b"enarx-pkg keep runtime (test)").digest()


@dataclass
class SimKeep:
    """A sim keep's attestation backend: a platform key, a measurement, a debug flag."""

    platform: SimPlatform = field(default_factory=SimPlatform.generate)
    measurement: bytes = MEASUREMENT
    debug: bool = False

    def source(self, report_data: bytes) -> tuple[str, bytes, bytes]:
        return "sim", self.platform.issue(report_data, self.measurement, debug=self.debug), b""

    def policy(self, path: Path, **sim: object) -> Path:
        section = {"insecure": True, "keys": [self.platform.fingerprint],
                   "measurements": [self.measurement.hex()]} | sim
        path.write_text(tomli_w.dumps({"tees": ["sim"], "sim": section}))
        return path

    def certificate(self, names: list[str], package: str = PACKAGE,
                    **kw: object) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = keep.new_key()
        return key, keep.self_contained_certificate(key, names, keep.keep_evidence(key, package, self.source),
                                                    **kw)  # type: ignore[arg-type]


def write_pair(directory: Path, key: ec.EllipticCurvePrivateKey, certs: list[x509.Certificate]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class TlsServer:
    """A Python ssl server on 127.0.0.1 answering one HTTP response per connection."""

    BODY = b"hello from the keep"

    def __init__(self, cert: Path, key: Path, *, client_ca: Path | None = None) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if client_ca is not None:
            self.ctx.load_verify_locations(client_ca)
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.handshakes = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                data = tls.recv(65536)
                self.received += data
                if data.startswith((b"GET", b"POST")):
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                % (len(self.BODY), self.BODY))
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sim_keep() -> SimKeep:
    return SimKeep()


@pytest.fixture
def serve_tls() -> Iterator[object]:
    servers: list[TlsServer] = []

    def start(cert: Path, key: Path, **kw: object) -> TlsServer:
        servers.append(TlsServer(cert, key, **kw))  # type: ignore[arg-type]
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``enarx-pkg ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "enarx_pkg", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
