"""The runtime's hand-off (enarx_pkg.tls.sockets): tls entries become plaintext, tcp entries pass through."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import httpx
import pytest

from enarx_pkg.attestation.policy import load_policy
from enarx_pkg.errors import VerificationError
from enarx_pkg.tls import ca as ca_mod
from enarx_pkg.tls import client, identity, sockets
from tests.tls.conftest import PACKAGE, TlsServer, write_pair
from tests.tls.peers import MARKER, Relay, issued, serve_workload


@dataclass(frozen=True)
class F:  # the fields of manifest.model.File that matter here
    kind: str
    name: str = "f"
    host: str | None = None
    port: int | None = None
    prot: str | None = None


def test_listen_tls_is_served_by_the_keep_identity_and_tcp_passes_through(tmp_path, sim_keep):
    ident = identity.KeepIdentity(identity.self_contained(["127.0.0.1"], PACKAGE, sim_keep.source))
    tls_sock, tcp_sock = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    files = [F("stdin"), F("stdout"), F("stderr"), F("listen"), F("listen", prot="tcp")]
    with sockets.terminated([(3, "listen", tls_sock), (4, "listen", tcp_sock)], files,
                            sockets.TlsSetup(ident)) as entries:
        assert entries[1] == (4, "listen", tcp_sock) and entries[0][2] is not tls_sock
        serve_workload(entries[0][2])
        relay = Relay(tls_sock.getsockname()[1])
        peer = client.AttestedPeer(load_policy(sim_keep.policy(tmp_path / "p.toml")), package=PACKAGE)
        with httpx.Client(transport=client.httpx_transport(peer)) as http:
            r = http.get(f"https://127.0.0.1:{relay.port}/")
        assert r.status_code == 200 and MARKER in r.content and MARKER not in relay.captured
    assert tls_sock.fileno() == -1  # closed with the run


def test_connect_tls_refuses_an_untrusted_server_with_a_typed_error(tmp_path, sim_keep):
    authority = ca_mod.make_ca("other CA")
    key, leaf = issued(sim_keep, authority, ["127.0.0.1"])
    server = TlsServer(*write_pair(tmp_path / "srv", key, [leaf]))
    ident = identity.KeepIdentity(identity.self_contained(["keep.test"], PACKAGE, sim_keep.source))
    files = [F("stdin"), F("stdout"), F("stderr"), F("connect", name="db", host="127.0.0.1", port=server.port)]
    try:
        with pytest.raises(VerificationError, match="connect file 'db'"), \
                sockets.terminated([(3, "connect", socket.create_connection(("127.0.0.1", server.port)))], files,
                                   sockets.TlsSetup(ident)):
            pass
        (tmp_path / "ca.pem").write_bytes(authority.pem)  # the CA file Enarx.toml names
        with sockets.terminated([(3, "connect", socket.create_connection(("127.0.0.1", server.port)))], files,
                                sockets.TlsSetup(ident, cafile=tmp_path / "ca.pem")) as entries:
            plain = entries[0][2]
            plain.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert server.BODY in plain.recv(4096)
    finally:
        server.close()


def test_renewal_is_due_two_thirds_from_issue_not_from_backdated_not_before(sim_keep):
    from datetime import timedelta

    ident = identity.KeepIdentity(identity.self_contained(["keep.test"], PACKAGE, sim_keep.source,
                                                          lifetime=timedelta(minutes=3)))
    cert = ident.certificate
    assert cert.not_valid_before_utc < cert.not_valid_after_utc - timedelta(minutes=7)  # backdated 5 min
    due = ident.renewal_due()
    assert cert.not_valid_after_utc - timedelta(seconds=62) <= due <= cert.not_valid_after_utc - timedelta(seconds=58)
    assert ident.tick() is False


def test_renewer_thread_renews_and_reports(sim_keep, monkeypatch):
    from datetime import timedelta

    monkeypatch.setattr(identity, "MIN_RENEWAL", timedelta(0))
    ident = identity.KeepIdentity(identity.self_contained(["keep.test"], PACKAGE, sim_keep.source,
                                                          lifetime=timedelta(seconds=3)))
    first, said = ident.certificate, []
    renewer = identity.Renewer(ident, said.append).start()
    try:
        deadline = time.monotonic() + 20
        while ident.certificate is first and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        renewer.stop()
    assert ident.certificate is not first and said and said[0].startswith("TLS certificate renewed")
