"""The binding between a TLS key and a keep's evidence (docs/tls.md).

``report_data`` = SHA-512(``b"enarx-pkg/tls/v1"`` ‖ nonce(32) ‖ SHA-256(SubjectPublicKeyInfo DER) ‖
package manifest digest(32)), in the style of the deploy binding (``_internal/seal.report_data``): a
domain-separating prefix, the verifier's (or keep's) nonce, then what the evidence vouches for.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enarx_pkg.errors import InputError
from enarx_pkg.tls import BINDING_PREFIX
from enarx_pkg.tls.extension import NONCE_BYTES, raw_digest


def spki_der(public_key: Any) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key (what the binding hashes)."""
    return bytes(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def report_data(nonce: bytes, spki: bytes, package: str) -> bytes:
    """The 64 bytes a keep's evidence carries for the TLS key whose SPKI DER is ``spki``."""
    if len(nonce) != NONCE_BYTES:
        raise InputError(f"the TLS binding needs a {NONCE_BYTES}-byte nonce")
    return hashlib.sha512(BINDING_PREFIX + nonce + hashlib.sha256(spki).digest() + raw_digest(package)).digest()


def general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    """SubjectAlternativeName entries: IP addresses as such, everything else as DNS names."""
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not name or len(name) > 253 or any(c.isspace() or c in "/:@" for c in name):
                raise InputError(f"{name!r} is not a DNS name or an IP address") from None
            out.append(x509.DNSName(name.lower()))
    return out


def names_of(cert: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    """The DNS names and IP addresses in a certificate's (or CSR's) SubjectAlternativeName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName), *(str(a) for a in san.get_values_for_type(x509.IPAddress))]


def name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching: exact (case-insensitive), or a ``*.`` wildcard standing for one leftmost label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "." not in name:
        return False
    label, rest = name.split(".", 1)
    return bool(label) and rest == pattern[2:] and "*" not in rest
