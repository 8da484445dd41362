"""Issuing from the deploy CA: the deployer-as-Steward path (a CSR over the sealed channel) and the limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from enarx_pkg.attestation.policy import Policy
from enarx_pkg.errors import UsageError, VerificationError
from enarx_pkg.tls import ca as ca_mod
from enarx_pkg.tls import issue, keep
from enarx_pkg.tls.verify import appraised_keep_of, policy_digest
from tests.tls.conftest import PACKAGE

POLICY = Policy.from_mapping({"tees": ["sim"], "sim": {"insecure": True, "keys": ["sha256:" + "a" * 64]}}, "p")


def _csr(names: list[str]) -> tuple[object, bytes]:
    key = keep.new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(keep.subject_for(names))
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return key, builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_sealed_csr_gets_a_short_lived_leaf_with_the_record():
    authority = ca_mod.make_ca("deploy CA")
    record = issue.record_for("sim", "ab" * 48, b"the evidence", PACKAGE, POLICY)
    _, csr = _csr(["app.example"])
    leaf = issue.issue_sealed_csr(authority, csr, record, ["app.example"], lifetime=timedelta(hours=2))
    leaf.verify_directly_issued_by(authority.certificate)
    assert appraised_keep_of(leaf) == record and record.policy_digest == policy_digest(POLICY)
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc) <= timedelta(hours=2, minutes=5)


def test_sealed_csr_asking_for_other_names_is_refused():
    authority = ca_mod.make_ca("deploy CA")
    record = issue.record_for("sim", "ab" * 48, b"e", PACKAGE, POLICY)
    _, csr = _csr(["bank.example"])
    with pytest.raises(VerificationError, match=r"tls\.names"):
        issue.issue_sealed_csr(authority, csr, record, ["app.example"])


def test_tampered_csr_is_refused():
    authority = ca_mod.make_ca("deploy CA")
    record = issue.record_for("sim", "ab" * 48, b"e", PACKAGE, POLICY)
    _, csr = _csr(["app.example"])
    bad = bytearray(csr)
    bad[-5] ^= 1  # the signature
    with pytest.raises(VerificationError, match=r"tls\.csr"):
        issue.issue_sealed_csr(authority, bytes(bad), record, ["app.example"])


def test_lifetime_bounds_and_ca_expiry():
    authority = ca_mod.make_ca("short CA", days=1)
    record = issue.record_for("sim", "ab" * 48, b"e", PACKAGE, POLICY)
    _, csr = _csr(["app.example"])
    with pytest.raises(UsageError):
        issue.issue_sealed_csr(authority, csr, record, ["app.example"], lifetime=timedelta(days=365))
    leaf = issue.issue_sealed_csr(authority, csr, record, ["app.example"], lifetime=timedelta(days=60))
    assert leaf.not_valid_after_utc <= authority.certificate.not_valid_after_utc  # never outlives its CA
