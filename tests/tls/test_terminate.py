"""TLS terminated in the keep (enarx_pkg.tls.terminate) in front of a plaintext workload socket.

Real parts: the listener and pump threads, a plaintext HTTP "workload" accepting on the inner socket,
a byte-capturing TCP relay standing in for the host's port mapping, and real clients (curl, openssl
s_client, httpx). The relay's capture must never hold the plaintext marker.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from enarx_pkg.attestation.policy import load_policy
from enarx_pkg.tls import ca as ca_mod
from enarx_pkg.tls import client, context, terminate
from tests.tls.conftest import PACKAGE, SimKeep, TlsServer, write_pair
from tests.tls.peers import BIG, MARKER, Relay, issued, serve_workload


@dataclass
class Keep:
    ca_file: Path
    authority: ca_mod.DeployCA
    key: object
    leaf: x509.Certificate
    sim: SimKeep


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Keep:
    d = tmp_path_factory.mktemp("keep")
    authority = ca_mod.make_ca("test deploy CA")
    (d / "ca.crt").write_bytes(authority.pem)
    sim = SimKeep()
    key, leaf = issued(sim, authority, ["keep.test", "127.0.0.1"])
    return Keep(d / "ca.crt", authority, key, leaf, sim)


@contextlib.contextmanager
def tls_keep(ctx: ssl.SSLContext, **limits: object) -> Iterator[tuple[terminate.TlsListener, Relay]]:
    public = socket.create_server(("127.0.0.1", 0))
    listener = terminate.TlsListener(public, lambda: ctx, terminate.TlsLimits(**limits)).start()  # type: ignore[arg-type]
    serve_workload(listener.inner)
    relay = Relay(public.getsockname()[1])
    try:
        yield listener, relay
    finally:
        listener.close()
        relay.sock.close()


def _curl(relay: Relay, ca_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--cacert", str(ca_file), "--resolve", f"keep.test:{relay.port}:127.0.0.1",
                           "-H", "X-Secret: " + MARKER.decode(), *extra, f"https://keep.test:{relay.port}/"],
                          capture_output=True, text=True, timeout=30)


def test_curl_through_the_host_relay_sees_the_workload_and_the_host_sees_no_plaintext(deployed):
    with tls_keep(context.server_context(deployed.key, [deployed.leaf])) as (_, relay):
        out = _curl(relay, deployed.ca_file)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(MARKER.decode() + " you sent GET / HTTP/1.1")
        time.sleep(0.2)
        assert len(relay.captured) > 500 and MARKER not in relay.captured and b"GET /" not in relay.captured


def test_large_response_streams_through_and_stays_encrypted(deployed):
    with tls_keep(context.server_context(deployed.key, [deployed.leaf])) as (_, relay):
        out = subprocess.run(["curl", "-sS", "--cacert", str(deployed.ca_file), "--resolve",
                              f"keep.test:{relay.port}:127.0.0.1", f"https://keep.test:{relay.port}/big"],
                             capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert len(out.stdout) == BIG // len(MARKER) * len(MARKER) and out.stdout.startswith(MARKER)
        time.sleep(0.2)
        assert len(relay.captured) > BIG and MARKER not in relay.captured


def test_openssl_s_client_verifies_the_chain(deployed):
    with tls_keep(context.server_context(deployed.key, [deployed.leaf])) as (_, relay):
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{relay.port}", "-servername", "keep.test",
                              "-verify_hostname", "keep.test", "-CAfile", str(deployed.ca_file),
                              "-verify_return_error", "-brief"], input="", capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0 and "Verification: OK" in out.stderr and "TLSv1.3" in out.stderr, out.stderr


def test_httpx_keep_alive_requests_on_one_connection(deployed):
    ctx = ssl.create_default_context(cafile=str(deployed.ca_file))
    with tls_keep(context.server_context(deployed.key, [deployed.leaf])) as (_, relay), \
            httpx.Client(verify=ctx) as http:
        for i in range(20):
            r = http.get(f"https://127.0.0.1:{relay.port}/n{i}")
            assert r.status_code == 200 and f"GET /n{i} ".encode() in r.content
        assert MARKER not in relay.captured


def test_self_contained_certificate_through_the_attested_httpx_hook(tmp_path, deployed):
    sim = deployed.sim
    key, cert = sim.certificate(["127.0.0.1"])
    peer = client.AttestedPeer(load_policy(sim.policy(tmp_path / "p.toml")), package=PACKAGE)
    with tls_keep(context.server_context(key, [cert])) as (_, relay), \
            httpx.Client(transport=client.httpx_transport(peer)) as http:
        r = http.get(f"https://127.0.0.1:{relay.port}/attested")
        assert r.status_code == 200 and MARKER in r.content
        assert MARKER not in relay.captured


def test_tls12_only_when_allowed(deployed):
    for tls12, ok in ((False, False), (True, True)):
        with tls_keep(context.server_context(deployed.key, [deployed.leaf], tls12=tls12)) as (_, relay):
            out = _curl(relay, deployed.ca_file, "--tlsv1.2", "--tls-max", "1.2")
            assert (out.returncode == 0) is ok, out.stderr


def test_mtls_listener_requires_a_client_certificate(tmp_path, deployed):
    ctx = context.server_context(deployed.key, [deployed.leaf], client_ca=deployed.authority.pem)
    with tls_keep(ctx) as (_, relay):
        assert _curl(relay, deployed.ca_file).returncode != 0
        other_key, other_leaf = issued(deployed.sim, deployed.authority, ["client.test"])
        cert, key = write_pair(tmp_path, other_key, [other_leaf])
        out = _curl(relay, deployed.ca_file, "--cert", str(cert), "--key", str(key))
        assert out.returncode == 0 and MARKER.decode() in out.stdout, out.stderr


def test_handshake_deadline_and_connection_cap(deployed):
    ctx = context.server_context(deployed.key, [deployed.leaf])
    with tls_keep(ctx, max_connections=2, handshake_timeout_s=0.5) as (listener, relay):
        port = listener.public.getsockname()[1]
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]  # never say hello
        time.sleep(0.1)
        third = socket.create_connection(("127.0.0.1", port))
        third.settimeout(5)
        assert third.recv(1) == b""  # over the cap: closed at once
        for s in idle:
            s.settimeout(5)
            assert s.recv(1) == b""  # handshake deadline passed: closed
        assert _curl(relay, deployed.ca_file).returncode == 0  # slots were released


def test_connect_tls_verifies_the_server_and_presents_the_keep_certificate(tmp_path, deployed):
    srv_key, srv_leaf = issued(deployed.sim, deployed.authority, ["127.0.0.1"])
    server = TlsServer(*write_pair(tmp_path / "srv", srv_key, [srv_leaf]), client_ca=deployed.ca_file)
    try:
        ctx = context.connect_context(cafile=deployed.ca_file, key=deployed.key, chain=[deployed.leaf])  # type: ignore[arg-type]
        plain = terminate.connect(socket.create_connection(("127.0.0.1", server.port)), ctx, "127.0.0.1")
        with plain:
            plain.sendall(b"GET / HTTP/1.1\r\nX: " + MARKER + b"\r\n\r\n")
            assert server.BODY in plain.recv(4096)
        assert MARKER in bytes(server.received)
        # the system roots do not know the deploy CA: refused before the workload gets a socket
        with pytest.raises(ssl.SSLCertVerificationError):
            terminate.connect(socket.create_connection(("127.0.0.1", server.port)), context.connect_context(),
                              "127.0.0.1")
    finally:
        server.close()


def test_a_failing_handshake_frees_its_slot_and_the_listener_goes_on(deployed):
    ctx = context.server_context(deployed.key, [deployed.leaf])
    calls: list[int] = []

    def flaky() -> ssl.SSLContext:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no certificate yet")
        return ctx

    public = socket.create_server(("127.0.0.1", 0))
    listener = terminate.TlsListener(public, flaky, terminate.TlsLimits(max_connections=1)).start()
    serve_workload(listener.inner)
    try:
        port = public.getsockname()[1]
        first = socket.create_connection(("127.0.0.1", port))
        first.settimeout(5)
        assert first.recv(1) == b""  # closed, not hung
        out = subprocess.run(["curl", "-sS", "--cacert", str(deployed.ca_file), "--resolve",
                              f"keep.test:{port}:127.0.0.1", f"https://keep.test:{port}/"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and MARKER.decode() in out.stdout, out.stderr  # the one slot was freed
    finally:
        listener.close()


def test_a_cafile_that_is_missing_or_a_directory_says_which(tmp_path: Path) -> None:
    from enarx_pkg.errors import InputError

    with pytest.raises(InputError, match="is a directory, not a PEM file"):
        context.connect_context(cafile=tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        context.connect_context(cafile=tmp_path / "gone.pem")
