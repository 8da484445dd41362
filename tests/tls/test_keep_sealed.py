"""The keep's side of ``deploy --tls-ca`` (keep/tls.py) and the envelope's TLS request, with real keys,
a real deploy CA and the real session channel; the end-to-end runs are in tests/network/test_detach_tls.py."""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives import serialization

from enarx_pkg._internal import seal
from enarx_pkg.errors import InputError, TransportError, UsageError, VerificationError
from enarx_pkg.keep.tls import SealedIssuer
from enarx_pkg.tls import ca as ca_mod
from enarx_pkg.tls import identity, issue, keep
from enarx_pkg.tls.extension import AppraisedKeep
from tests.tls.conftest import PACKAGE

RECORD = AppraisedKeep("sim", "00" * 48, "sha256:" + "1" * 64, PACKAGE, "sha256:" + "2" * 64)


def _issuer(timeout: float = 5.0) -> tuple[SealedIssuer, list[tuple[int, bytes]]]:
    sent: list[tuple[int, bytes]] = []
    return SealedIssuer(lambda kind, data: sent.append((kind, data)), ["localhost"], timeout), sent


def _answer(authority: ca_mod.DeployCA, csr_der: bytes, names: list[str]) -> bytes:
    cert = issue.issue_sealed_csr(authority, csr_der, RECORD, names)
    return cert.public_bytes(serialization.Encoding.PEM) + authority.pem


def test_the_csr_goes_out_and_the_issued_chain_is_served_with_a_ready_frame() -> None:
    authority = ca_mod.make_ca("test CA")
    issuer, sent = _issuer()
    ident = identity.KeepIdentity(issuer.obtain, deferred=True)
    issuer.request(ident.key)
    [(kind, csr)] = sent
    assert kind == seal.TLS_CSR and not ident.wait_ready(0)  # deferred: nothing obtained yet
    issuer.deliver(_answer(authority, csr, ["localhost"]))
    ident.ensure()
    assert ident.certificate.issuer == authority.certificate.subject and len(ident.chain) == 2
    kind, ready = sent[-1]
    assert kind == seal.TLS_READY
    assert json.loads(ready)["not_after"] == ident.certificate.not_valid_after_utc.isoformat()


def test_a_certificate_for_another_key_is_refused_and_no_ready_frame_leaves() -> None:
    authority = ca_mod.make_ca("test CA")
    issuer, sent = _issuer()
    issuer.request(keep.new_key())
    other = keep.certificate_request(keep.new_key(), ["localhost"], None).public_bytes(serialization.Encoding.DER)
    issuer.deliver(_answer(authority, other, ["localhost"]))
    with pytest.raises(VerificationError, match="another key"):
        identity.KeepIdentity(issuer.obtain)
    assert [k for k, _ in sent] == [seal.TLS_CSR]


def test_a_certificate_for_other_names_is_refused() -> None:
    authority = ca_mod.make_ca("test CA")
    issuer, _ = _issuer()
    key = keep.new_key()
    issuer.request(key)
    csr = keep.certificate_request(key, ["bank.example"], None).public_bytes(serialization.Encoding.DER)
    issuer.deliver(_answer(authority, csr, ["bank.example"]))
    with pytest.raises(VerificationError, match="certified"):
        issuer.obtain(key)


def test_an_unasked_or_second_certificate_is_refused() -> None:
    issuer, _ = _issuer()
    with pytest.raises(VerificationError, match="did not ask for"):
        issuer.deliver(b"pem")
    issuer.request(keep.new_key())
    issuer.deliver(b"pem")
    with pytest.raises(VerificationError, match="second"):
        issuer.deliver(b"pem")


def test_no_certificate_in_time_is_a_transport_error() -> None:
    issuer, _ = _issuer(timeout=0.2)
    key = keep.new_key()
    issuer.request(key)
    with pytest.raises(TransportError, match="no TLS certificate"):
        issuer.obtain(key)


def test_first_then_renews_from_the_later_source_or_says_there_is_none() -> None:
    key = keep.new_key()
    first_cert = keep.self_signed_certificate(key, ["localhost"])
    later_cert = keep.self_signed_certificate(key, ["localhost"])
    renewing = identity.first_then(lambda k: [first_cert], lambda k: [later_cert])
    assert [renewing(key)[0], renewing(key)[0]] == [first_cert, later_cert]
    once = identity.first_then(lambda k: [first_cert], None)
    once(key)
    with pytest.raises(UsageError, match="no renewal source"):
        once(key)


def test_the_envelope_carries_the_tls_request_and_refuses_a_malformed_one() -> None:
    env = seal.Envelope("http://r", "p", "sha256:" + "a" * 64, os.urandom(32),
                        tls=seal.TlsRequest(("localhost", "127.0.0.1"), csr=True))
    assert seal.Envelope.from_bytes(env.to_bytes()) == env and b"tls12" not in env.to_bytes()
    tls12 = seal.Envelope("http://r", "p", "sha256:" + "a" * 64, os.urandom(32), tls=seal.TlsRequest(tls12=True))
    assert seal.Envelope.from_bytes(tls12.to_bytes()).tls == seal.TlsRequest((), csr=False, tls12=True)
    plain = seal.Envelope("http://r", "p", "sha256:" + "a" * 64, os.urandom(32))
    assert b'"tls"' not in plain.to_bytes() and seal.Envelope.from_bytes(plain.to_bytes()).tls is None
    bad = json.loads(env.to_bytes()) | {"tls": {"names": ["x"] * 33, "csr": True}}
    with pytest.raises(InputError, match="tls"):
        seal.Envelope.from_bytes(json.dumps(bad).encode())


def test_a_keep_that_sends_a_certificate_frame_is_refused() -> None:
    """Certificates travel to the keep only; a TLS_CERT frame in the keep's log is a protocol breach."""
    from enarx_pkg import keeps

    key = os.urandom(32)
    frame = seal.Channel(key, keep_side=True).seal(seal.TLS_CERT, b"pem")
    with pytest.raises(VerificationError, match="tls-cert"):
        keeps.read_frames(seal.record(seal.R_FRAME, frame), seal.Channel(key, keep_side=False), "h",
                          lambda b: None, lambda b: None, keeps.Logs())
