"""The keep's side of attested TLS: a fresh key, evidence binding it, a self-contained certificate or a CSR.

The private key is made here and never leaves the process that calls this (inside the keep). Evidence
comes from an :data:`EvidenceSource` (the keep's backend: ``sim`` or a real TEE collector).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from enarx_pkg.errors import InputError
from enarx_pkg.tls import binding
from enarx_pkg.tls.extension import NONCE_BYTES, KeepEvidence

# report_data -> (tee, evidence, aux): what the keep's attestation backend produces
EvidenceSource = Callable[[bytes], tuple[str, bytes, bytes]]
SELF_CONTAINED_LIFETIME = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=5)


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key (what every TLS client accepts), generated in this process."""
    return ec.generate_private_key(ec.SECP256R1())


def keep_evidence(key: ec.EllipticCurvePrivateKey, package: str, source: EvidenceSource,
                  nonce: bytes | None = None) -> KeepEvidence:
    """Evidence whose report_data binds ``key``'s public half and ``package`` (and a nonce: fresh, or a challenge)."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    rd = binding.report_data(nonce, binding.spki_der(key.public_key()), package)
    tee, evidence, aux = source(rd)
    return KeepEvidence(tee, nonce, package, evidence, aux)


def subject_for(names: Sequence[str]) -> x509.Name:
    if not names:
        raise InputError("a TLS certificate needs at least one name (DNS name or IP address)")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])


def _builder(key: ec.EllipticCurvePrivateKey, names: Sequence[str], lifetime: timedelta,
             now: datetime | None) -> x509.CertificateBuilder:
    now = now or datetime.now(UTC)
    subject = subject_for(names)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + lifetime))
    for ext, critical in leaf_extensions(names):
        builder = builder.add_extension(ext, critical=critical)
    return builder


def self_contained_certificate(key: ec.EllipticCurvePrivateKey, names: Sequence[str], evidence: KeepEvidence, *,
                               lifetime: timedelta = SELF_CONTAINED_LIFETIME,
                               now: datetime | None = None) -> x509.Certificate:
    """A certificate self-signed by ``key`` carrying ``evidence`` (RA-TLS style)."""
    builder = _builder(key, names, lifetime, now)
    builder = builder.add_extension(x509.UnrecognizedExtension(evidence_oid(), evidence.to_der()), critical=False)
    return builder.sign(key, hashes.SHA256())


def self_signed_certificate(key: ec.EllipticCurvePrivateKey, names: Sequence[str], *,
                            lifetime: timedelta = SELF_CONTAINED_LIFETIME) -> x509.Certificate:
    """A plain self-signed certificate, proving nothing: what ``run`` serves outside a keep (as Enarx
    does without a Steward)."""
    return _builder(key, names, lifetime, None).sign(key, hashes.SHA256())


def certificate_request(key: ec.EllipticCurvePrivateKey, names: Sequence[str],
                        evidence: KeepEvidence | None) -> x509.CertificateSigningRequest:
    """A CSR for ``names`` carrying ``evidence`` (bound to a Steward's challenge) as a requested extension;
    ``None`` for a CSR sent over the deployer's sealed channel, which the keep's attestation already binds."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_for(names))
    builder = builder.add_extension(x509.SubjectAlternativeName(binding.general_names(names)), critical=False)
    if evidence is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(evidence_oid(), evidence.to_der()),
                                        critical=False)
    return builder.sign(key, hashes.SHA256())


def leaf_extensions(names: Sequence[str]) -> list[tuple[x509.ExtensionType, bool]]:
    """The usual TLS leaf extensions (server and client auth), with ``names`` as SANs."""
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (x509.SubjectAlternativeName(binding.general_names(names)), False),
    ]


def evidence_oid() -> x509.ObjectIdentifier:
    return x509.ObjectIdentifier(KeepEvidence.oid)
