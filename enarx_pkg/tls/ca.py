"""The deploy CA: ``enarx-pkg ca init`` makes it, the deployer and ``steward serve`` issue with it.

An ECDSA P-256 key (PKCS#8 PEM, mode 0600, written atomically) and a self-signed certificate that
may sign end-entity certificates only: basicConstraints CA with pathLen 0, keyUsage keyCertSign and
cRLSign, both critical; optionally nameConstraints limiting the DNS names it may certify.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enarx_pkg._internal import atomic
from enarx_pkg.errors import InputError, UsageError

DEFAULT_DAYS = 3650
MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class DeployCA:
    """A CA certificate and its private key (never printed)."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _ca_extensions(key: ec.EllipticCurvePrivateKey, permitted: Sequence[str]) -> list[tuple[x509.ExtensionType, bool]]:
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ]
    if permitted:
        from enarx_pkg.tls.binding import general_names

        exts.append((x509.NameConstraints(permitted_subtrees=general_names(permitted), excluded_subtrees=None), True))
    return exts


def make_ca(name: str, *, days: int = DEFAULT_DAYS, permitted: Sequence[str] = (),
            now: datetime | None = None) -> DeployCA:
    """A fresh CA (in memory)."""
    if not 1 <= days <= 36500:
        raise UsageError(f"--days {days}: expected 1 to 36500")
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=days)))
    for ext, critical in _ca_extensions(key, permitted):
        builder = builder.add_extension(ext, critical=critical)
    return DeployCA(builder.sign(key, hashes.SHA256()), key)


def init_ca(cert_path: Path, key_path: Path, *, name: str = "enarx-pkg deploy CA", days: int = DEFAULT_DAYS,
            permitted: Sequence[str] = (), force: bool = False) -> DeployCA:
    """Make a CA and write its key (0600) then its certificate; refuses to overwrite without ``force``."""
    if not force:
        for path in (cert_path, key_path):
            if path.exists():
                raise UsageError(f"{path} already exists", hint="pass --force to replace the CA (certificates "
                                 "it issued will no longer chain)")
    ca = make_ca(name, days=days, permitted=permitted)
    key_pem = ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    atomic.write_bytes(key_path, key_pem, mode=0o600)
    atomic.write_bytes(cert_path, ca.pem, mode=0o644)
    return ca


def _read(path: Path, what: str) -> bytes:
    from enarx_pkg._internal import bounded

    return bounded.file(path, what, MAX_FILE_BYTES)  # missing: 66; a directory, unreadable or too big: 65


def load_ca_certificate(path: Path) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(_read(path, "CA certificate"))
    except ValueError as exc:
        raise InputError(f"{path}: not a PEM certificate") from exc
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise InputError(f"{path}: not a CA certificate (basicConstraints CA is false)")
    except x509.ExtensionNotFound:
        raise InputError(f"{path}: not a CA certificate (no basicConstraints)") from None
    return cert


def load_ca(cert_path: Path, key_path: Path) -> DeployCA:
    """Read a CA; the key must be private to its owner (like ssh) and match the certificate."""
    cert = load_ca_certificate(cert_path)
    raw = _read(key_path, "CA key")
    if stat.S_IMODE(os.stat(key_path).st_mode) & 0o077:
        raise InputError(f"{key_path}: CA key is readable by group or others", hint=f"chmod 600 {key_path}")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{key_path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(f"{key_path}: expected an ECDSA key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise InputError(f"{key_path} is not the key of {cert_path}")
    return DeployCA(cert, key)
