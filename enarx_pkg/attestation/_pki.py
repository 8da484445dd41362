"""RFC 5280 path validation (cryptography's X.509 verifier), Intel's and AMD's certificate roles, and CRLs.

Roles follow Intel's Quote Verification Library: a PCK certificate is issued by the PCK Platform or
Processor CA under the SGX Root CA (three certificates), and TCB info / QE identity are signed by
the TCB Signing certificate issued directly by the root (two certificates), never by a PCK.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from enarx_pkg.attestation import _x509
from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence

ROOT_CN = "Intel SGX Root CA"
PCK_CA_CNS = ("Intel SGX PCK Platform CA", "Intel SGX PCK Processor CA")
PCK_CN = "Intel SGX PCK Certificate"
TCB_SIGNING_CN = "Intel SGX TCB Signing"


def _end_entity(_policy: object, _cert: x509.Certificate, ext: x509.BasicConstraints | None) -> None:
    if ext is None or ext.ca:
        raise ValueError("a signing certificate must say basicConstraints CA:FALSE")


def _signing_usage(_policy: object, _cert: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    if ext is None or not ext.digital_signature or ext.key_cert_sign:
        raise ValueError("a signing certificate's keyUsage must allow digitalSignature and not keyCertSign")


_EE_POLICY = (ExtensionPolicy.permit_all()
              .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _end_entity)
              .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _signing_usage))


def validate_path(chain: Sequence[x509.Certificate], check: str) -> None:
    """Validate leaf ← intermediates ← (already pinned) root as RFC 5280 does: basicConstraints,
    keyUsage, path length and signatures, at a time when every certificate is valid (the caller
    checks the verification time separately, so the result can be cached by the chain's bytes)."""
    leaf, *intermediates, root = chain
    when = max(c.not_valid_before_utc for c in chain)
    builder = (PolicyBuilder().store(Store([root])).time(when).max_chain_depth(len(intermediates))
               .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_EE_POLICY))
    try:
        built = builder.build_client_verifier().verify(leaf, intermediates)
    except VerificationError as exc:
        reason = str(exc).split(" (encountered processing", 1)[0]
        raise EvidenceError(f"{check}.path", f"certificate path of {_x509.common_name(leaf)!r} is not valid "
                                             f"under RFC 5280: {reason}") from exc
    if len(built.chain) != len(chain):
        raise EvidenceError(f"{check}.path", "the validated path is not the supplied chain")


def _role(cert: x509.Certificate, allowed: Sequence[str], check: str, what: str) -> None:
    if _x509.common_name(cert) not in allowed:
        raise EvidenceError(f"{check}.role", f"{what} is {_x509.common_name(cert)!r}, expected "
                                             f"{' or '.join(repr(a) for a in allowed)}")


def check_pck_roles(chain: Sequence[x509.Certificate], check: str) -> None:
    """PCK certificate ← PCK Platform/Processor CA ← SGX Root CA, exactly."""
    if len(chain) != 3:
        raise EvidenceError(f"{check}.role", f"a PCK chain has 3 certificates, got {len(chain)}")
    _role(chain[0], [PCK_CN], check, "the quote's signing certificate")
    _role(chain[1], PCK_CA_CNS, check, "the PCK issuer")
    _role(chain[2], [ROOT_CN], check, "the root")


def check_tcb_signing_roles(chain: Sequence[x509.Certificate], check: str) -> None:
    """TCB Signing certificate ← SGX Root CA, exactly: nothing else may sign TCB info or QE identity."""
    if len(chain) != 2:
        raise EvidenceError(f"{check}.role", f"a TCB signing chain has 2 certificates, got {len(chain)}")
    _role(chain[0], [TCB_SIGNING_CN], check, "the collateral signer")
    _role(chain[1], [ROOT_CN], check, "the root")


def check_amd_roles(chain: Sequence[x509.Certificate], product: str, signing_key: str, check: str) -> None:
    """VCEK ← SEV-<product> ASK ← ARK-<product>, or VLEK ← SEV-VLEK-<product> ASVK ← ARK-<product>; the
    ASK/ASVK and ARK are CAs allowed to sign certificates, the leaf is not a CA."""
    leaf, ask, ark = chain
    vlek = signing_key == "vlek"
    _role(leaf, ["SEV-VLEK" if vlek else "SEV-VCEK"], check, "the report's signing certificate")
    _role(ask, [f"SEV-VLEK-{product}" if vlek else f"SEV-{product}"], check, "its issuer")
    _role(ark, [f"ARK-{product}"], check, "the root")
    for ca in (ask, ark):
        if not _is_ca(ca):
            raise EvidenceError(f"{check}.path", f"{_x509.common_name(ca)!r} is not a CA allowed to sign certificates")
    if _is_ca(leaf, usage=False):
        raise EvidenceError(f"{check}.path", f"{_x509.common_name(leaf)!r} is a CA certificate, not a signing key")


def _is_ca(cert: x509.Certificate, *, usage: bool = True) -> bool:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not usage:
        return basic.ca
    try:
        return basic.ca and cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return False


def check_crl(der: bytes, issuer: x509.Certificate, subjects: Sequence[x509.Certificate], at: datetime,
              check: str) -> None:
    """A CRL signed by ``issuer``, current at ``at`` (thisUpdate/nextUpdate), revoking none of ``subjects``."""
    try:
        crl = _signed_crl(der, issuer.public_bytes(serialization.Encoding.DER), check)
        _crl_fields(crl, subjects, at, check)
    except ValueError as exc:  # the CRL's fields are decoded lazily
        raise MalformedEvidence(f"{check}.parse", f"cannot parse CRL: {exc}") from exc


@lru_cache(maxsize=64)
def _signed_crl(der: bytes, issuer_der: bytes, check: str) -> x509.CertificateRevocationList:
    """The CRL once its issuer and signature check out (time-independent: cached by the bytes)."""
    crl, issuer = x509.load_der_x509_crl(der), x509.load_der_x509_certificate(issuer_der)
    if crl.issuer != issuer.subject or not _crl_signed_by(crl, issuer):
        raise EvidenceError(f"{check}.signature", f"CRL is not signed by {_x509.common_name(issuer)!r}")
    return crl


def _crl_fields(crl: x509.CertificateRevocationList, subjects: Sequence[x509.Certificate], at: datetime,
                check: str) -> None:
    nxt = crl.next_update_utc
    if nxt is None:
        raise EvidenceError(f"{check}.validity", "CRL has no nextUpdate")
    if not crl.last_update_utc <= at <= nxt:
        raise EvidenceError(f"{check}.validity", f"CRL is valid {crl.last_update_utc.isoformat()} .. "
                                                 f"{nxt.isoformat()}, not at {at.isoformat()}")
    for subject in subjects:
        if crl.get_revoked_certificate_by_serial_number(subject.serial_number) is not None:
            raise EvidenceError(f"{check}.revoked", f"{_x509.common_name(subject)!r} is revoked")


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return crl.is_signature_valid(key)
    if isinstance(key, rsa.RSAPublicKey):  # AMD: RSA-PSS, which is_signature_valid does not take
        pad, alg = crl.signature_algorithm_parameters, crl.signature_hash_algorithm
        try:
            if alg is None or pad is None:
                return False
            key.verify(crl.signature, crl.tbs_certlist_bytes, pad, alg)  # type: ignore[arg-type]
        except (InvalidSignature, TypeError, ValueError):
            return False
        return True
    return False
