"""The same check as a library hook: plain ``ssl`` sockets and httpx clients refuse before sending a byte."""

from __future__ import annotations

import socket

import httpx
import pytest

from enarx_pkg.attestation.policy import load_policy
from enarx_pkg.errors import AttestationError, VerificationError
from enarx_pkg.tls import client
from tests.tls.conftest import OTHER_PACKAGE, PACKAGE, SimKeep, write_pair

SECRET = b"Authorization: Bearer s3cret-token-for-the-keep-only"


@pytest.fixture
def keep_server(tmp_path, serve_tls, sim_keep):
    key, cert = sim_keep.certificate(["127.0.0.1", "keep.test"])
    return serve_tls(*write_pair(tmp_path / "srv", key, [cert]))


def test_httpx_client_talks_to_an_attested_keep(tmp_path, keep_server, sim_keep):
    peer = client.AttestedPeer(load_policy(sim_keep.policy(tmp_path / "p.toml")), package=PACKAGE)
    with httpx.Client(transport=client.httpx_transport(peer)) as http:
        for _ in range(3):  # new connections each time (the server closes): the cached appraisal is reused
            r = http.get(f"https://127.0.0.1:{keep_server.port}/", headers={"X-Secret": SECRET.decode()})
            assert r.status_code == 200 and r.content == keep_server.BODY
    assert keep_server.handshakes == 3 and SECRET in bytes(keep_server.received)


def test_httpx_client_sends_nothing_to_a_keep_the_policy_refuses(tmp_path, keep_server):
    stranger = SimKeep()  # the policy pins another platform
    peer = client.AttestedPeer(load_policy(stranger.policy(tmp_path / "p.toml")))
    with httpx.Client(transport=client.httpx_transport(peer)) as http, \
            pytest.raises(AttestationError, match=r"sim\.key"):
        http.post(f"https://127.0.0.1:{keep_server.port}/", content=SECRET)
    assert bytes(keep_server.received) == b""


def test_httpx_client_refuses_another_package(tmp_path, keep_server, sim_keep):
    peer = client.AttestedPeer(load_policy(sim_keep.policy(tmp_path / "p.toml")), package=OTHER_PACKAGE)
    with httpx.Client(transport=client.httpx_transport(peer)) as http, pytest.raises(VerificationError,
                                                                                    match=r"tls\.package"):
        http.post(f"https://127.0.0.1:{keep_server.port}/", content=SECRET)
    assert bytes(keep_server.received) == b""


def test_ssl_socket_hook(tmp_path, keep_server, sim_keep):
    peer = client.AttestedPeer(load_policy(sim_keep.policy(tmp_path / "p.toml")))
    tls, appraisal = client.wrap(socket.create_connection(("127.0.0.1", keep_server.port)), peer, "keep.test")
    with tls:
        assert tls.version() == "TLSv1.3" and appraisal.evidence.package == PACKAGE
        tls.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert keep_server.BODY in tls.recv(4096)


def test_ssl_socket_hook_refuses_wrong_name_and_closes(tmp_path, keep_server, sim_keep):
    peer = client.AttestedPeer(load_policy(sim_keep.policy(tmp_path / "p.toml")))
    sock = socket.create_connection(("127.0.0.1", keep_server.port))
    with pytest.raises(VerificationError, match=r"tls\.name"):
        client.wrap(sock, peer, "bank.test")
    assert sock.fileno() == -1 and bytes(keep_server.received) == b""
