"""Pure checks of attested TLS certificates and CSRs: bytes and a policy in, verified facts out.

Refusals are typed: the evidence, its binding to the key, or the policy → :class:`EvidenceError`
(exit 78); the certificate's name, validity window or package digest → :class:`VerificationError`
(exit 77). Nothing here does I/O; :mod:`enarx_pkg.tls.client` fetches certificates from peers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from enarx_pkg._internal import canonical
from enarx_pkg.attestation import Collateral, verify_evidence
from enarx_pkg.attestation._errors import EvidenceError
from enarx_pkg.attestation.policy import Appraisal, Policy, appraise
from enarx_pkg.errors import VerificationError
from enarx_pkg.tls import binding
from enarx_pkg.tls.extension import AppraisedKeep, KeepEvidence

MAX_CERT_BYTES = 512 * 1024


def policy_digest(policy: Policy) -> str:
    """``sha256:`` of the policy's canonical JSON: the same rules give the same digest, whatever the layout."""
    doc = {"tees": list(policy.tees), "debug": policy.debug, "tcb_status": list(policy.tcb_status),
           "collateral": dict(policy.collateral),
           "sections": {t: dict(s) for t, s in policy.sections.items() if s}}
    return "sha256:" + hashlib.sha256(canonical.dumps(doc)).hexdigest()


@dataclass(frozen=True)
class TlsAppraisal:
    """A self-contained certificate that passed: who it names, until when, and what was appraised."""

    subject: str
    names: tuple[str, ...]
    not_after: datetime
    evidence: KeepEvidence
    claims: Any = field(repr=False)
    appraisal: Appraisal

    def to_dict(self) -> dict[str, Any]:
        from enarx_pkg.attestation.files import to_jsonable

        return {"subject": self.subject, "names": list(self.names), "not_after": self.not_after.isoformat(),
                "package": self.evidence.package, "tee": self.evidence.tee,
                "evidence_digest": "sha256:" + hashlib.sha256(self.evidence.evidence).hexdigest(),
                "claims": to_jsonable(self.claims), **self.appraisal.to_dict()}


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse a DER certificate from an untrusted peer (size-bounded)."""
    if len(der) > MAX_CERT_BYTES:
        raise EvidenceError("tls.certificate", f"certificate is {len(der)} bytes, over {MAX_CERT_BYTES}")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise EvidenceError("tls.certificate", f"not a DER X.509 certificate: {exc}") from exc


def check_validity(cert: x509.Certificate, at: datetime | None = None) -> None:
    now = at or datetime.now(UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= now <= end:
        state = "expired" if now > end else "not yet valid"
        raise VerificationError(f"tls.validity: certificate for {_subject(cert)} is {state} "
                                f"(valid {start.isoformat()} to {end.isoformat()}, now {now.isoformat()})")


def check_name(cert: x509.Certificate, name: str) -> None:
    names = binding.names_of(cert)
    if not any(binding.name_matches(n, name) for n in names):
        raise VerificationError(f"tls.name: certificate names {', '.join(names) or 'nothing'}, not {name}",
                                hint="connect with the name the keep was deployed under (--name)")


def find_evidence(cert: x509.Certificate | x509.CertificateSigningRequest) -> KeepEvidence:
    """The :class:`KeepEvidence` extension of a certificate or CSR (still unverified)."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(KeepEvidence.oid))
    except x509.ExtensionNotFound:
        raise EvidenceError("tls.evidence_extension", f"no keep evidence (extension {KeepEvidence.oid}): "
                            "not a self-contained attested certificate") from None
    except (ValueError, x509.DuplicateExtension) as exc:
        raise EvidenceError("tls.certificate", f"unreadable extensions: {exc}") from exc
    return KeepEvidence.from_der(getattr(ext.value, "value", b""))


def appraise_evidence(ext: KeepEvidence, spki: bytes, policy: Policy, *, collateral: Collateral | None = None,
                      at: datetime | None = None) -> tuple[Any, Appraisal]:
    """Verify the evidence, that its report_data binds ``spki`` and the package, then appraise it (every check)."""
    certs: list[bytes] = []
    if ext.tee == "snp" and ext.aux:
        from enarx_pkg.attestation.snp import parse_cert_table

        certs = parse_cert_table(ext.aux)
    claims = verify_evidence(ext.tee, ext.evidence, certs=certs, collateral=collateral, at=at)
    expected = binding.report_data(ext.nonce, spki, ext.package)
    if claims.report_data != expected:
        raise EvidenceError("tls.binding", "the evidence's report_data does not bind this key and package "
                            "(evidence made for another key, or by another keep)")
    return claims, appraise(claims, policy, expected_report_data=expected)


def check_package(ext: KeepEvidence, package: str | Sequence[str] | None) -> None:
    allowed = [package] if isinstance(package, str) else list(package or [])
    if allowed and ext.package not in allowed:
        raise VerificationError(f"tls.package: the keep runs {ext.package}, not {' or '.join(allowed)}")


def verify_self_contained(cert_der: bytes, policy: Policy, *, package: str | None = None, name: str | None = None,
                          at: datetime | None = None, collateral: Collateral | None = None) -> TlsAppraisal:
    """Every check of a self-contained certificate; returns the appraisal or raises the first refusal."""
    cert = load_certificate(cert_der)
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise EvidenceError("tls.signature", "the certificate is not self-signed by its own key") from exc
    check_validity(cert, at)
    if name is not None:
        check_name(cert, name)
    ext = find_evidence(cert)
    claims, appraisal = appraise_evidence(ext, binding.spki_der(cert.public_key()), policy,
                                          collateral=collateral, at=at)
    appraisal.raise_for_failure()
    check_package(ext, package)
    return TlsAppraisal(_subject(cert), tuple(binding.names_of(cert)), cert.not_valid_after_utc, ext, claims,
                        appraisal)


def attest_csr(csr_der: bytes, policy: Policy, consume_nonce: Callable[[bytes], None], *,
               packages: Sequence[str] = (), collateral: Collateral | None = None,
               at: datetime | None = None) -> tuple[x509.CertificateSigningRequest, AppraisedKeep]:
    """Check a keep's CSR (signature, challenge, evidence, binding, policy, package) for an issuer.

    ``consume_nonce`` raises unless the CSR's nonce is a challenge this issuer gave out and has not
    seen back before, so replayed evidence is refused.
    """
    csr = load_csr(csr_der)
    ext = find_evidence(csr)
    consume_nonce(ext.nonce)
    claims, appraisal = appraise_evidence(ext, binding.spki_der(csr.public_key()), policy,
                                          collateral=collateral, at=at)
    appraisal.raise_for_failure()
    check_package(ext, packages)
    record = AppraisedKeep(ext.tee, claims.measurement, "sha256:" + hashlib.sha256(ext.evidence).hexdigest(),
                          ext.package, policy_digest(policy))
    return csr, record


def load_csr(der: bytes) -> x509.CertificateSigningRequest:
    """Parse a CSR from an untrusted keep and check its self-signature (proof the keep holds the key)."""
    if len(der) > MAX_CERT_BYTES:
        raise EvidenceError("tls.csr", f"CSR is {len(der)} bytes, over {MAX_CERT_BYTES}")
    try:
        csr = x509.load_der_x509_csr(der)
        valid = csr.is_signature_valid
    except ValueError as exc:
        raise EvidenceError("tls.csr", f"not a DER certificate signing request: {exc}") from exc
    if not valid:
        raise EvidenceError("tls.csr", "the CSR's signature does not verify under its own key")
    return csr


def appraised_keep_of(cert: x509.Certificate) -> AppraisedKeep | None:
    """The issuer's :class:`AppraisedKeep` record in a CA-issued certificate, if any."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(AppraisedKeep.oid))
    except x509.ExtensionNotFound:
        return None
    return AppraisedKeep.from_der(getattr(ext.value, "value", b""))


@dataclass(frozen=True)
class IssuedAppraisal:
    """A CA-issued keep certificate (chain and name verified by TLS) and what its issuer appraised."""

    subject: str
    issuer: str
    names: tuple[str, ...]
    not_after: datetime
    record: AppraisedKeep
    policy_matched: bool  # the record's policy digest is that of the --policy given

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "issuer": self.issuer, "names": list(self.names),
                "not_after": self.not_after.isoformat(), "policy_matched": self.policy_matched,
                **self.record.to_dict()}


def check_issued(cert_der: bytes, *, policy: Policy | None = None, package: str | None = None) -> IssuedAppraisal:
    """The appraisal record of a certificate whose chain was verified: its policy digest and package."""
    cert = load_certificate(cert_der)
    record = appraised_keep_of(cert)
    if record is None:
        raise EvidenceError("tls.appraised_extension", f"no appraisal record (extension {AppraisedKeep.oid}): "
                            "not issued by an enarx-pkg deploy CA or steward")
    if policy is not None and record.policy_digest != policy_digest(policy):
        raise EvidenceError("tls.policy_digest", f"the issuer appraised the keep under policy "
                            f"{record.policy_digest}, not under --policy ({policy_digest(policy)})")
    if package is not None and record.package != package:
        raise VerificationError(f"tls.package: the keep runs {record.package}, not {package}")
    return IssuedAppraisal(_subject(cert), cert.issuer.rfc4514_string(), tuple(binding.names_of(cert)),
                           cert.not_valid_after_utc, record, policy is not None)


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(no subject)"
