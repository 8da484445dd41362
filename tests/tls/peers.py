"""Peers for the in-keep TLS tests: a plaintext workload, the host's capturing relay, CA-issued keys."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

from enarx_pkg.attestation.policy import load_policy
from enarx_pkg.tls import ca as ca_mod
from enarx_pkg.tls import issue, keep, verify
from tests.conftest import REPO, free_port
from tests.tls.conftest import PACKAGE, SimKeep

MARKER = b"PLAINTEXT-MARKER-7f3a"
BIG = 8 << 20  # GET /big answers this many bytes of markers


def serve_workload(listener: socket.socket) -> None:
    """A keep-alive HTTP/1.1 server on the plaintext side, as the workload would run it."""
    def one(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n")[0]
                body = MARKER * (BIG // len(MARKER)) if b" /big " in line else MARKER + b" you sent " + line
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


class Relay:
    """The host's view: a TCP relay to the keep's public port that records every byte it moves."""

    def __init__(self, target: int) -> None:
        self.target, self.captured = target, bytearray()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._copy, args=(src, dst), daemon=True).start()

    def _copy(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                self.captured += data
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def issued(sim: SimKeep, authority: ca_mod.DeployCA, names: list[str]):
    """A key and the certificate the deploy CA issues for it once its CSR's evidence is appraised."""
    key = keep.new_key()
    csr = keep.certificate_request(key, names, keep.keep_evidence(key, PACKAGE, sim.source))
    with tempfile.TemporaryDirectory() as d:
        policy = load_policy(sim.policy(Path(d) / "p.toml"))
    _, record = verify.attest_csr(csr.public_bytes(serialization.Encoding.DER), policy, lambda nonce: None)
    return key, issue.issue(authority, csr, record, names)


@contextlib.contextmanager
def steward_serving(ca_dir: Path, policy: Path, *args: str, stdout: int | None = subprocess.DEVNULL,
                    stderr: int | None = subprocess.DEVNULL) -> Iterator[str]:
    """``enarx-pkg steward serve`` with the CA in ``ca_dir`` (ca.crt, ca.key) on a free loopback port,
    until it answers a challenge; its URL. Stopped (its process group) on exit."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "steward", "serve", "--ca", str(ca_dir / "ca.crt"),
                             "--ca-key", str(ca_dir / "ca.key"), "--policy", str(policy), *args,
                             "--listen", f"127.0.0.1:{port}"], cwd=REPO, stdout=stdout, stderr=stderr,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.post(url + "/v1/challenge", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "steward did not start"
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
