"""Issuing a keep's TLS certificate from its attested CSR (the deployer as Steward, or ``steward serve``).

Call :func:`enarx_pkg.tls.verify.attest_csr` first: only its :class:`AppraisedKeep` record, which
exists only for an appraised CSR, can be issued for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from enarx_pkg.attestation.policy import Policy
from enarx_pkg.errors import UsageError, VerificationError
from enarx_pkg.tls.ca import DeployCA
from enarx_pkg.tls.extension import AppraisedKeep
from enarx_pkg.tls.keep import CLOCK_SKEW, leaf_extensions, subject_for

DEFAULT_LIFETIME = timedelta(hours=24)
MAX_LIFETIME = timedelta(days=90)


def issue(ca: DeployCA, csr: x509.CertificateSigningRequest, attested: AppraisedKeep, names: Sequence[str], *,
          lifetime: timedelta = DEFAULT_LIFETIME, now: datetime | None = None) -> x509.Certificate:
    """A short-lived leaf for the CSR's key, naming ``names``, carrying ``attested`` as an extension."""
    if not timedelta(minutes=1) <= lifetime <= MAX_LIFETIME:
        raise UsageError(f"certificate lifetime {lifetime} is outside 1 minute .. {MAX_LIFETIME.days} days")
    now = now or datetime.now(UTC)
    end = min(now + lifetime, ca.certificate.not_valid_after_utc)
    builder = (x509.CertificateBuilder().subject_name(subject_for(names)).issuer_name(ca.certificate.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - CLOCK_SKEW).not_valid_after(end))
    for ext, critical in leaf_extensions(names):
        builder = builder.add_extension(ext, critical=critical)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(attested.oid),
                                                               attested.to_der()), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def record_for(tee: str, measurement: str, evidence: bytes, package: str, policy: Policy) -> AppraisedKeep:
    """The :class:`AppraisedKeep` record of a keep the deployer attested (its evidence and policy appraised)."""
    from enarx_pkg.tls.verify import policy_digest

    return AppraisedKeep(tee, measurement, "sha256:" + hashlib.sha256(evidence).hexdigest(), package,
                        policy_digest(policy))


def issue_sealed_csr(ca: DeployCA, csr_der: bytes, attested: AppraisedKeep, names: Sequence[str], *,
                     lifetime: timedelta = DEFAULT_LIFETIME) -> x509.Certificate:
    """The deployer as Steward: a CSR that came over the sealed channel of a keep it attested.

    The channel (keyed to the attested keep key) is what binds the CSR to the keep, so no second
    evidence is needed; the CSR's own signature must still verify, and it must ask for ``names``.
    """
    from enarx_pkg.tls.binding import names_of
    from enarx_pkg.tls.verify import load_csr

    csr = load_csr(csr_der)
    asked = sorted(names_of(csr))
    if asked and asked != sorted(n.lower() for n in names):
        raise VerificationError(f"tls.names: the keep asked for {', '.join(asked)}, the deployer certifies "
                                f"{', '.join(names)}")
    return issue(ca, csr, attested, names, lifetime=lifetime)
