"""``enarx-pkg steward serve`` (a real process on loopback) certifies only attested keeps.

The keep side is :func:`enarx_pkg.tls.enroll.request_certificate`, with sim evidence made as a keep
makes it. A good keep's certificate chains to the CA and is accepted by curl and openssl s_client.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enarx_pkg.attestation.policy import load_policy
from enarx_pkg.errors import VerificationError
from enarx_pkg.tls import ca as ca_mod
from enarx_pkg.tls import enroll, keep
from enarx_pkg.tls.verify import appraised_keep_of, policy_digest
from tests.tls.conftest import OTHER_PACKAGE, PACKAGE, SimKeep, write_pair
from tests.tls.peers import steward_serving


@dataclass
class Steward:
    url: str
    ca_cert: Path
    policy: Path
    keep: SimKeep


@pytest.fixture(scope="module")
def steward(tmp_path_factory) -> Iterator[Steward]:
    d = tmp_path_factory.mktemp("steward")
    ca_mod.init_ca(d / "ca.crt", d / "ca.key")
    sim = SimKeep()
    policy = sim.policy(d / "policy.toml")
    with steward_serving(d, policy, "--name", "localhost", "--name", "*.keeps.test", "--package", PACKAGE,
                         "--lifetime", "1h") as url:
        yield Steward(url, d / "ca.crt", policy, sim)


def _csr(steward: Steward, key, names, sim: SimKeep | None = None, package: str = PACKAGE) -> bytes:
    nonce = base64.b64decode(httpx.post(steward.url + "/v1/challenge").json()["nonce"])
    ev = keep.keep_evidence(key, package, (sim or steward.keep).source, nonce)
    return keep.certificate_request(key, names, ev).public_bytes(serialization.Encoding.DER)


def _post(steward: Steward, csr: bytes) -> httpx.Response:
    return httpx.post(steward.url + "/v1/certificates", content=csr, headers={"Content-Type": "application/pkcs10"})


def test_attested_keep_gets_a_certificate_that_chains_to_the_ca(steward, tmp_path, serve_tls):
    key = keep.new_key()
    issued = enroll.request_certificate(steward.url, key, ["localhost"], PACKAGE, steward.keep.source,
                                        ca=x509.load_pem_x509_certificate(steward.ca_cert.read_bytes()))
    leaf = issued.certificate
    record = appraised_keep_of(leaf)
    assert record is not None and record.package == PACKAGE and record.tee == "sim"
    assert record.policy_digest == policy_digest(load_policy(steward.policy))
    assert record.measurement == steward.keep.measurement.hex()
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() <= 3600 + 300
    cert_path, key_path = write_pair(tmp_path, key, [leaf])
    server = serve_tls(cert_path, key_path)
    chk = subprocess.run(["openssl", "verify", "-CAfile", str(steward.ca_cert), str(cert_path)],
                         capture_output=True, text=True)
    assert chk.returncode == 0, chk.stderr
    curl = subprocess.run(["curl", "-sS", "--cacert", str(steward.ca_cert), "--resolve",
                           f"localhost:{server.port}:127.0.0.1", f"https://localhost:{server.port}/"],
                          capture_output=True, text=True, timeout=30)
    assert curl.returncode == 0 and curl.stdout == server.BODY.decode(), curl.stderr
    s_client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername",
                               "localhost", "-verify_hostname", "localhost", "-CAfile", str(steward.ca_cert),
                               "-verify_return_error", "-brief"], input="", capture_output=True, text=True,
                              timeout=30)
    assert s_client.returncode == 0 and "Verification: OK" in s_client.stderr, s_client.stderr


def test_replayed_evidence_is_refused(steward):
    csr = _csr(steward, keep.new_key(), ["localhost"])
    assert _post(steward, csr).status_code == 200
    again = _post(steward, csr)  # the same CSR, evidence and nonce, sent a second time
    assert again.status_code == 403 and "steward.challenge" in again.json()["error"]
    assert "BEGIN CERTIFICATE" not in again.text


def test_nonce_the_steward_never_gave_is_refused(steward):
    key = keep.new_key()
    ev = keep.keep_evidence(key, PACKAGE, steward.keep.source)  # the keep's own nonce, not a challenge
    r = _post(steward, keep.certificate_request(key, ["localhost"], ev).public_bytes(serialization.Encoding.DER))
    assert r.status_code == 403 and "steward.challenge" in r.json()["error"]


def test_debug_keep_is_refused(steward):
    debug = SimKeep(platform=steward.keep.platform, debug=True)  # same trusted platform, debug keep
    with pytest.raises(VerificationError, match="debug"):
        enroll.request_certificate(steward.url, keep.new_key(), ["localhost"], PACKAGE, debug.source)


def test_unpinned_platform_is_refused(steward):
    with pytest.raises(VerificationError, match=r"sim\.key"):
        enroll.request_certificate(steward.url, keep.new_key(), ["localhost"], PACKAGE, SimKeep().source)


def test_package_the_steward_does_not_certify_is_refused(steward):
    with pytest.raises(VerificationError, match=r"tls\.package"):
        enroll.request_certificate(steward.url, keep.new_key(), ["localhost"], OTHER_PACKAGE, steward.keep.source)


def test_name_outside_the_allowed_ones_is_refused(steward):
    with pytest.raises(VerificationError, match=r"steward\.names"):
        enroll.request_certificate(steward.url, keep.new_key(), ["bank.test"], PACKAGE, steward.keep.source)
    ok = enroll.request_certificate(steward.url, keep.new_key(), ["a.keeps.test"], PACKAGE, steward.keep.source)
    assert ok.certificate.subject.rfc4514_string() == "CN=a.keeps.test"


def test_csr_whose_evidence_binds_another_key_is_refused(steward):
    mine, theirs = keep.new_key(), keep.new_key()
    nonce = base64.b64decode(httpx.post(steward.url + "/v1/challenge").json()["nonce"])
    ev = keep.keep_evidence(theirs, PACKAGE, steward.keep.source, nonce)
    r = _post(steward, keep.certificate_request(mine, ["localhost"], ev).public_bytes(serialization.Encoding.DER))
    assert r.status_code == 403 and "tls.binding" in r.json()["error"]


def test_garbage_and_oversized_bodies(steward):
    assert _post(steward, b"not a csr").status_code == 403
    assert _post(steward, os.urandom(600 * 1024)).status_code == 413
    assert httpx.post(steward.url + "/v1/challenge").status_code == 200


def test_detached_keep_renews_before_expiry_with_the_same_key(steward, tmp_path):
    import socket
    import ssl

    from enarx_pkg.tls import identity, terminate

    ca = x509.load_pem_x509_certificate(steward.ca_cert.read_bytes())
    ident = identity.KeepIdentity(identity.from_steward(steward.url, ["localhost"], PACKAGE, steward.keep.source, ca))
    first = ident.certificate
    public = socket.create_server(("127.0.0.1", 0))
    listener = terminate.TlsListener(public, ident.server_context).start()
    port = public.getsockname()[1]

    def served_serial() -> int:
        ctx = ssl.create_default_context(cafile=str(steward.ca_cert))
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    try:
        assert served_serial() == first.serial_number
        assert ident.tick() is False  # not due yet: nothing asked of the steward
        assert ident.tick(now=first.not_valid_after_utc - (first.not_valid_after_utc - first.not_valid_before_utc) / 4)
        renewed = ident.certificate
        assert renewed.serial_number != first.serial_number
        assert renewed.public_key().public_numbers() == first.public_key().public_numbers()  # the same key
        assert served_serial() == renewed.serial_number  # the next handshake uses the new certificate
    finally:
        listener.close()


def test_renewal_failure_keeps_the_old_certificate_and_says_why(steward):
    from enarx_pkg.tls import identity

    calls: list[int] = []

    def flaky(key):
        calls.append(1)
        if len(calls) > 1:
            return identity.from_steward(steward.url, ["bank.test"], PACKAGE, steward.keep.source)(key)
        return identity.from_steward(steward.url, ["localhost"], PACKAGE, steward.keep.source)(key)

    ident = identity.KeepIdentity(flaky)
    first = ident.certificate
    with pytest.raises(VerificationError, match=r"steward\.names"):
        ident.tick(now=first.not_valid_after_utc)
    assert ident.certificate is first


@pytest.fixture(scope="module")
def issued_server(steward, tmp_path_factory):
    from tests.tls.conftest import TlsServer

    key = keep.new_key()
    issued = enroll.request_certificate(steward.url, key, ["localhost"], PACKAGE, steward.keep.source)
    server = TlsServer(*write_pair(tmp_path_factory.mktemp("issued"), key, [issued.certificate]))
    yield server
    server.close()


def _attest_issued(server, *extra: str):
    from tests.tls.conftest import cli

    return cli("attest", "tls", f"127.0.0.1:{server.port}", "--name", "localhost", *extra)


def test_attest_tls_cacert_accepts_and_prints_the_issuers_record(steward, issued_server):
    out = _attest_issued(issued_server, "--cacert", str(steward.ca_cert), "--policy", str(steward.policy),
                         "--package", PACKAGE)
    assert out.returncode == 0, out.stderr
    digest = policy_digest(load_policy(steward.policy))
    assert f"policy: {digest} (the --policy given)" in out.stdout and f"package: {PACKAGE}" in out.stdout
    assert "tee sim" in out.stdout and out.stdout.rstrip().endswith("accepted")


@pytest.mark.parametrize(("extra", "code", "check"), [
    (["--package", OTHER_PACKAGE], 77, "tls.package"),
    (["--name", "bank.test"], 77, "tls.name"),
    (["--policy", "OTHER"], 78, "tls.policy_digest"),
    (["--ca", "OTHER"], 77, "tls.chain"),
])
def test_attest_tls_cacert_refusals(steward, issued_server, tmp_path, extra, code, check):
    cacert = steward.ca_cert
    if extra == ["--policy", "OTHER"]:
        extra = ["--policy", str(SimKeep().policy(tmp_path / "other.toml"))]  # another policy than the issuer's
    if extra == ["--ca", "OTHER"]:
        ca_mod.init_ca(tmp_path / "other.crt", tmp_path / "other.key")
        cacert, extra = tmp_path / "other.crt", []
    out = _attest_issued(issued_server, "--cacert", str(cacert), *extra)
    assert out.returncode == code and check in out.stderr, out.stderr
    assert "accepted" not in out.stdout and bytes(issued_server.received) == b""


def test_keep_uses_the_steward_its_enarx_toml_names_else_a_self_contained_certificate(steward):
    from enarx_pkg.tls import identity
    from enarx_pkg.tls.verify import find_evidence

    ca = x509.load_pem_x509_certificate(steward.ca_cert.read_bytes())
    via_steward = identity.KeepIdentity(identity.for_keep(["localhost"], PACKAGE, steward.keep.source,
                                                          steward=steward.url, steward_ca=ca))
    via_steward.certificate.verify_directly_issued_by(ca)
    alone = identity.KeepIdentity(identity.for_keep(["localhost"], PACKAGE, steward.keep.source))
    assert alone.certificate.issuer == alone.certificate.subject
    assert find_evidence(alone.certificate).package == PACKAGE
