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
    ca: str | None = None


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


def _connect_toml(port: int, ca: str, prot: str = "tls") -> str:
    return (f'[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
            f'[[files]]\nkind = "connect"\nname = "backend"\nhost = "127.0.0.1"\nport = {port}\n'
            f'prot = "{prot}"\nca = """\n{ca}"""\n')


def test_enarx_toml_ca_is_what_a_connect_file_trusts(tmp_path, sim_keep):
    from enarx_pkg import manifest

    authority = ca_mod.make_ca("backend CA")
    key, leaf = issued(sim_keep, authority, ["127.0.0.1"])
    server = TlsServer(*write_pair(tmp_path / "srv", key, [leaf]))
    try:
        model = manifest.loads(_connect_toml(server.port, authority.pem.decode()), "Enarx.toml")
        assert model.files[3].ca == authority.pem.decode()
        assert manifest.loads(manifest.to_toml(model), "again.toml").files[3] == model.files[3]  # round trip
        ident = identity.KeepIdentity(identity.self_contained(["keep.test"], PACKAGE, sim_keep.source))
        sock = socket.create_connection(("127.0.0.1", server.port))
        with sockets.terminated([(3, "connect", sock)], model.files, sockets.TlsSetup(ident)) as entries:
            entries[0][2].sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert server.BODY in entries[0][2].recv(4096)
        other = ca_mod.make_ca("another CA").pem.decode()  # the server does not chain to the CA named
        model = manifest.loads(_connect_toml(server.port, other), "Enarx.toml")
        with pytest.raises(VerificationError, match="connect file 'backend'"), \
                sockets.terminated([(3, "connect", socket.create_connection(("127.0.0.1", server.port)))],
                                   model.files, sockets.TlsSetup(ident)):
            pass
    finally:
        server.close()


@pytest.mark.parametrize(("ca", "prot", "message"), [
    ("not a certificate\n", "tls", "'ca' is not PEM certificates"),
    (None, "tcp", "'ca' applies only to a prot = \"tls\" connect file"),
])
def test_enarx_toml_ca_refusals(ca, prot, message):
    from enarx_pkg import manifest
    from enarx_pkg.manifest import ManifestError

    pem = ca or ca_mod.make_ca("x").pem.decode()
    with pytest.raises(ManifestError) as err:
        manifest.loads(_connect_toml(443, pem, prot), "Enarx.toml")
    assert message in str(err.value.diagnostics())


def test_keepside_setup_only_for_tls_files_and_names(sim_keep):
    from enarx_pkg.tls import keepside
    from enarx_pkg.tls.verify import find_evidence

    def evidence(rd: bytes) -> tuple[bytes, bytes]:
        return sim_keep.source(rd)[1:]

    plain = [F("stdin"), F("listen", prot="tcp")]
    assert keepside.setup_for(plain, PACKAGE, "sim", evidence) is None
    files = [F("stdin"), F("listen", prot="tls"), F("connect", host="db", prot="tls")]
    setup = keepside.setup_for(files, PACKAGE, "sim", evidence)
    assert setup is not None
    cert = setup.identity.certificate
    assert find_evidence(cert).package == PACKAGE and find_evidence(cert).tee == "sim"
    assert keepside.names_for(files) == ["localhost"]
    assert keepside.names_for(files, ["app.example", "app.example"]) == ["app.example"]
