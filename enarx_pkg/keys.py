"""Signing keys: ECDSA P-256 key pairs in PEM, as ``cosign generate-key-pair`` users expect.

``PREFIX.key`` holds the private key (PKCS#8 PEM, optionally encrypted with a passphrase taken from
an environment variable, never from argv), written atomically with mode 0600; ``PREFIX.pub`` holds
the SubjectPublicKeyInfo PEM. A key's fingerprint is the SHA-256 of its DER SubjectPublicKeyInfo;
the bundle ``hint`` is the same hash in base64, as sigstore-go/cosign write it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg._internal import atomic, bounded
from enarx_pkg.errors import InputError, UsageError

DEFAULT_PASSWORD_ENV = "ENARX_PKG_KEY_PASSWORD"  # noqa: S105 (the variable's name, not a password)
MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class KeyPair:
    """Where :func:`generate` wrote the key pair, and the public key's fingerprint."""

    private_path: Path
    public_path: Path
    fingerprint: str
    encrypted: bool


def generate(prefix: Path, *, password_env: str | None = DEFAULT_PASSWORD_ENV, force: bool = False) -> KeyPair:
    """Write ``PREFIX.key`` (0600) and ``PREFIX.pub``; refuse to overwrite unless ``force``."""
    prefix = Path(prefix)
    priv_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for p in (priv_path, pub_path):
        if p.exists() and not force:
            raise UsageError(f"{p} already exists", hint="pass --force to overwrite it")
    password = _password(password_env)
    key = ec.generate_private_key(ec.SECP256R1())
    algo: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algo)
    atomic.write_bytes(priv_path, pem, mode=0o600)
    atomic.write_bytes(pub_path, public_pem(key.public_key()))
    return KeyPair(priv_path, pub_path, fingerprint(key.public_key()), bool(password))


def load_private(path: Path, *, password_env: str | None = DEFAULT_PASSWORD_ENV) -> ec.EllipticCurvePrivateKey:
    """Load a P-256 private key; an encrypted one needs its passphrase in ``password_env``."""
    data = _read(Path(path), "private key")
    password = _password(password_env)
    encrypted = b"ENCRYPTED" in data
    if encrypted and not password:
        raise UsageError(f"{path} is encrypted and the environment variable {password_env} is not set",
                         hint=f"put its passphrase in {password_env} (or name another variable with --password-env)")
    try:
        key = serialization.load_pem_private_key(data, password if encrypted else None)
    except (ValueError, TypeError):
        what = "wrong passphrase or not a PEM private key" if encrypted else "not a PEM private key"
        raise InputError(f"{path}: cannot load the private key ({what})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{path}: expected an ECDSA P-256 private key")
    return key


def load_public(data: bytes, where: str = "public key") -> ec.EllipticCurvePublicKey:
    """Parse a SubjectPublicKeyInfo PEM holding an ECDSA P-256 key."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise InputError(f"{where}: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{where}: expected an ECDSA P-256 public key")
    return key


def read_public_pem(path: Path) -> bytes:
    """The PEM bytes of a public key file, checked to hold an ECDSA P-256 key."""
    data = _read(Path(path), "public key")
    load_public(data, str(path))
    return data


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _spki_sha256(key: ec.EllipticCurvePublicKey) -> bytes:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo: what ``verify`` reports as the signer."""
    return "sha256:" + _spki_sha256(key).hex()


def hint(key: ec.EllipticCurvePublicKey) -> str:
    """The bundle's ``publicKey.hint``: base64 SHA-256 of the DER SubjectPublicKeyInfo (as cosign)."""
    return base64.b64encode(_spki_sha256(key)).decode("ascii")


def hint_fingerprint(value: str) -> str:
    """The fingerprint a bundle's (unauthenticated) key hint claims, for messages."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    return "sha256:" + raw.hex() if len(raw) == 32 else f"hint {value[:64]!r}"


def _password(env: str | None) -> bytes | None:
    value = os.environ.get(env) if env else None
    return value.encode("utf-8") if value else None


def _read(path: Path, what: str) -> bytes:
    return bounded.file(path, what, MAX_KEY_FILE)  # missing: 66; a directory, unreadable or too big: 65
