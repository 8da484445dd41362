"""Certificate plumbing shared by the verifiers: loading, pins, validity windows, cached chains."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import warnings
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence

MAX_CERT = 64 * 1024


def load_certs(blobs: Iterable[bytes], what: str = "certificate") -> list[x509.Certificate]:
    """Parse DER or (multi-)PEM blobs. AMD's serial-0 certificates load with only that warning silenced."""
    out: list[x509.Certificate] = []
    for blob in blobs:
        if len(blob) > MAX_CERT * 8:
            raise MalformedEvidence(f"{what}.size", f"{what} blob of {len(blob)} bytes is too large")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*serial number.*", category=CryptographyDeprecationWarning)
            try:
                if b"-----BEGIN CERTIFICATE-----" in blob:
                    certs = x509.load_pem_x509_certificates(blob)
                else:
                    certs = [x509.load_der_x509_certificate(blob)]
                for cert in certs:
                    _touch(cert)
                out.extend(certs)
            except (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
                    x509.UnsupportedGeneralNameType) as exc:
                raise MalformedEvidence(f"{what}.parse", f"cannot parse {what}: {exc}") from exc
    return out


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=\n]+?)\n?-----END CERTIFICATE-----\n?")


@lru_cache(maxsize=128)
def check_strict_pem(blob: bytes, check: str) -> None:
    """A certificate chain carried inside evidence: only PEM certificate blocks (LF line ends, canonical
    base64), then NUL padding; text between or after the blocks, which PEM readers skip, is refused."""
    body, pos = blob.rstrip(b"\0"), 0
    while pos < len(body):
        m = _PEM_BLOCK.match(body, pos)
        if m is None:
            raise MalformedEvidence(check, f"certificate chain has non-PEM bytes at offset {pos}")
        b64 = m.group(1).replace(b"\n", b"")
        try:
            canonical = base64.b64encode(base64.b64decode(b64, validate=True)) == b64
        except ValueError:
            canonical = False
        if not canonical:
            raise MalformedEvidence(check, f"certificate at offset {pos} is not canonical base64")
        pos = m.end()
    if pos == 0:
        raise MalformedEvidence(check, "certificate chain is empty")


def _touch(cert: x509.Certificate) -> None:
    """Decode lazily parsed fields now, so a malformed certificate fails here as malformed input."""
    _ = (cert.subject, cert.issuer, cert.extensions, cert.not_valid_before_utc, cert.not_valid_after_utc,
         cert.public_key(), cert.signature_hash_algorithm, cert.signature_algorithm_parameters)


def spki_sha256(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def check_validity(cert: x509.Certificate, at: datetime, check: str) -> None:
    """Refuse a certificate outside its validity window at ``at``."""
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    if at < nb:
        raise EvidenceError(check, f"certificate {common_name(cert)!r} is not valid before {nb.isoformat()} "
                                   f"(verification time {at.isoformat()})")
    if at > na:
        raise EvidenceError(check, f"certificate {common_name(cert)!r} expired {na.isoformat()} "
                                   f"(verification time {at.isoformat()})")


def now_or(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate, check: str) -> None:
    """Check ``cert``'s signature under ``issuer``'s key: RSA-PSS (AMD) or ECDSA (Intel)."""
    key = issuer.public_key()
    hash_alg = cert.signature_hash_algorithm
    try:
        if cert.issuer != issuer.subject:
            raise InvalidSignature
        if isinstance(key, rsa.RSAPublicKey):
            pad = cert.signature_algorithm_parameters
            if not isinstance(pad, padding.PSS) or not isinstance(hash_alg, hashes.SHA384):
                raise EvidenceError(check, "AMD certificates must be signed with RSA-PSS SHA-384")
            key.verify(cert.signature, cert.tbs_certificate_bytes, pad, hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey) and hash_alg is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
        else:
            raise EvidenceError(check, f"unsupported issuer key type {type(key).__name__}")
    except (InvalidSignature, ValueError) as exc:
        raise EvidenceError(check, f"{common_name(cert)!r} is not signed by {common_name(issuer)!r}") from exc


def verify_chain(chain: Sequence[x509.Certificate], pins: Iterable[str], check: str) -> str:
    """Verify leaf ← ... ← root signatures and that the self-signed root's key is pinned; returns the pin."""
    for cert, issuer in itertools.pairwise(chain):
        verify_signed_by(cert, issuer, f"{check}.signature")
    root = chain[-1]
    verify_signed_by(root, root, f"{check}.root_self_signature")
    pin = spki_sha256(root)
    if pin not in set(pins):
        raise EvidenceError(f"{check}.root_pin", f"root {common_name(root)!r} (key sha256 {pin}) is not a pinned "
                                                 "vendor root")
    return pin


def check_chain_validity(chain: Sequence[x509.Certificate], at: datetime, check: str) -> None:
    for cert in chain:
        check_validity(cert, at, f"{check}.validity")
