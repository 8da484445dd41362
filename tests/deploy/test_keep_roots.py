"""The TLS roots a keep trusts are the ones it measured, read once, never the host's ``/etc/ssl`` later.

The keep sends the sealed registry credential over TLS, and a workload's ``connect`` + ``tls`` files
verify their servers against the system roots. Those roots are files on the host's disk. Each test
is one move of a hostile host against a real keep process, which it runs in a private mount
namespace (so the change is seen by that keep alone, never by the machine): its CA added to the
store or its OpenSSL configuration changed before the keep starts (the measurement must change, so
a policy pinning the genuine one refuses the keep), or its CA added after the keep was measured,
while the host serves the keep's HTTPS registry with a certificate from that CA (the keep must refuse
the connection: no request, no credential reaches the host).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from enarx_pkg._internal import seal
from enarx_pkg.host.pool import KEEP_CWD, KEEP_ENV, KeepCommand
from tests.deploy.rawkeep import NSENTER, UNSHARE, Keep, attested, needs_private_mounts
from tests.fixtures.certs import loopback_ca

STORE = Path(ssl.get_default_verify_paths().openssl_cafile).resolve()
OPENSSL_CNF = (Path(ssl.get_default_verify_paths().openssl_cafile).parent / "openssl.cnf").resolve()
PASSWORD = "registry-password-51c0e9"  # the deployer's sealed pull credential
MOUNT = "mount --bind \"$1\" \"$2\" && shift 2 && exec env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 LANG=C.UTF-8 \"$@\""


pytestmark = needs_private_mounts


def host_ca(tmp: Path) -> tuple[Path, Path]:
    """The host's own CA, whose certificate also serves 127.0.0.1 (certificate PEM, key PEM)."""
    return loopback_ca(tmp, "host-ca")


def with_host_ca(tmp: Path, crt: Path) -> Path:
    """The system store with the host's CA appended."""
    store = tmp / "store.pem"
    store.write_bytes(STORE.read_bytes() + b"\n" + crt.read_bytes())
    return store


def start_keep(data: Path, mount: tuple[Path, Path] | None = None) -> subprocess.Popen[bytes]:
    """A real keep in a private mount namespace; ``mount`` (source, target) is bound there before it starts."""
    argv = KeepCommand("sim", str(data)).argv()
    if mount is not None:
        argv = ["sh", "-c", MOUNT, "sh", str(mount[0]), str(mount[1]), *argv]
    return subprocess.Popen([str(UNSHARE), "--mount", "--propagation", "private", *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=KEEP_ENV, cwd=KEEP_CWD)


def measured(data: Path, mount: tuple[Path, Path] | None = None) -> str:
    keep = Keep(start_keep(data, mount))
    try:
        return keep.measurement()
    finally:
        keep.stop()


@pytest.mark.parametrize("target", [STORE, OPENSSL_CNF], ids=["trust store", "openssl.cnf"])
def test_a_host_change_to_the_tls_files_changes_the_measurement(tmp_path: Path, target: Path) -> None:
    crt, _ = host_ca(tmp_path)
    same, changed = tmp_path / "same", tmp_path / "changed"
    same.write_bytes(target.read_bytes())
    changed.write_bytes(target.read_bytes() + b"\n" + (crt.read_bytes() if target == STORE else b"# host\n"))
    data = tmp_path / "data"
    genuine = measured(data)
    assert measured(data, (same, target)) == genuine  # the namespace and the mount alone change nothing
    assert measured(data, (changed, target)) != genuine, f"{target} is read by the keep but not measured"


@contextmanager
def hostile_registry(crt: Path, key: Path) -> Iterator[tuple[int, list[str]]]:
    """The host's HTTPS registry on 127.0.0.1, certified by its own CA: records every request it gets and
    asks for Basic credentials, to collect the keep's."""
    heard: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            heard.append(f"{self.command} {self.path} {self.headers.get('Authorization', '')}")
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port, heard
    finally:
        server.shutdown()
        server.server_close()


def test_a_ca_the_host_adds_after_the_measurement_is_not_trusted(tmp_path: Path) -> None:
    crt, key = host_ca(tmp_path)
    store, data = with_host_ca(tmp_path, crt), tmp_path / "data"
    session_key = os.urandom(32)
    with hostile_registry(crt, key) as (port, heard):
        keep = Keep(start_keep(data))
        try:
            measurement = keep.measurement()
            # measured: now the host adds its CA to the store this keep sees
            subprocess.run([str(NSENTER), "--target", str(keep.proc.pid), "--mount", "mount", "--bind", str(store),
                            str(STORE)], check=True)
            assert crt.read_bytes() in Path(f"/proc/{keep.proc.pid}/root{STORE}").read_bytes()  # the trap is set
            envelope = seal.Envelope(f"https://127.0.0.1:{port}", "probe", "sha256:" + "a" * 64, session_key,
                                     credential=("deployer", PASSWORD))
            keep.send(seal.R_PROVISION, seal.seal_envelope(envelope, attested(keep, data, measurement)))
            kind, frame = keep.receive()
            assert keep.proc.wait(timeout=120) == 1
        finally:
            keep.stop()
    assert kind == seal.R_FRAME
    frame_type, payload = seal.Channel(session_key, keep_side=False).open(frame)
    error = json.loads(payload)
    assert frame_type == seal.ERROR and error["kind"] == "TransportError", error
    assert "not trusted" in error["message"] and PASSWORD not in error["message"]
    assert heard == []  # the TLS handshake failed: not one request, so no credential, reached the host
