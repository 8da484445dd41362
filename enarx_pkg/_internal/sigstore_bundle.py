"""Sigstore bundles as JSON, without importing sigstore (it costs ~0.4 s to import).

Field names are the protobuf-specs JSON names (``dev.sigstore.bundle.v1.Bundle``): ``mediaType``,
``verificationMaterial.{publicKey.hint | certificate.rawBytes | x509CertificateChain}``,
``tlogEntries``, ``dsseEnvelope`` / ``messageSignature``. This module only parses and builds; it
decides nothing about trust.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from enarx_pkg._internal import b64, canonical, dsse
from enarx_pkg._internal.bounded import json_object as load_json
from enarx_pkg.errors import InputError

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
KNOWN_MEDIA_TYPES = (
    BUNDLE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
MAX_BUNDLE_BYTES = 8 * 1024 * 1024


class MalformedBundle(InputError):
    """The bundle is not a well-formed sigstore bundle (exit 65), as opposed to a refused one."""


@dataclass(frozen=True)
class ParsedBundle:
    """The parts of a bundle the verifiers need, parsed from untrusted JSON."""

    media_type: str
    kind: str  # "key" or "keyless"
    envelope: dsse.Envelope | None
    key_hint: str | None
    certificate_der: bytes | None
    integrated_time: int | None
    timestamps: tuple[bytes, ...] = ()  # RFC 3161 TimeStampResponse DER (unverified)


def parse(data: bytes, where: str = "bundle") -> ParsedBundle:
    """Parse bundle JSON into a :class:`ParsedBundle`, raising :class:`MalformedBundle` with a path."""
    obj = _load(data, where)
    media_type = obj.get("mediaType")
    if media_type not in KNOWN_MEDIA_TYPES:
        raise MalformedBundle(f"{where}.mediaType: unknown sigstore bundle media type {media_type!r}",
                              hint=f"expected {BUNDLE_V03}")
    vm = obj.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise MalformedBundle(f"{where}.verificationMaterial: expected an object")
    hint, cert = _material(vm, f"{where}.verificationMaterial")
    has_dsse, has_msg = "dsseEnvelope" in obj, "messageSignature" in obj
    if has_dsse == has_msg:
        raise MalformedBundle(f"{where}: expected exactly one of dsseEnvelope or messageSignature")
    try:
        envelope = dsse.Envelope.from_json(obj["dsseEnvelope"], f"{where}.dsseEnvelope") if has_dsse else None
    except InputError as exc:
        raise MalformedBundle(exc.message) from None
    return ParsedBundle(media_type, "key" if cert is None else "keyless", envelope, hint, cert,
                        _integrated_time(vm.get("tlogEntries")), _timestamps(vm, f"{where}.verificationMaterial"))


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        return load_json(data, where, MAX_BUNDLE_BYTES)
    except InputError as exc:
        raise MalformedBundle(exc.message) from None


def _material(vm: dict[str, Any], where: str) -> tuple[str | None, bytes | None]:
    """Return (publicKey hint, leaf certificate DER); exactly one kind of material is allowed."""
    present = [k for k in ("publicKey", "certificate", "x509CertificateChain") if vm.get(k)]
    if len(present) != 1:
        raise MalformedBundle(f"{where}: expected exactly one of publicKey, certificate or "
                              f"x509CertificateChain, found {present or 'none'}")
    try:
        if present[0] == "publicKey":
            pk = vm["publicKey"]
            hint = pk.get("hint") if isinstance(pk, dict) else None
            return (hint if isinstance(hint, str) else None), None
        if present[0] == "certificate":
            return None, b64.decode(_get(vm["certificate"], "rawBytes"), f"{where}.certificate.rawBytes")
        certs = _get(vm["x509CertificateChain"], "certificates")
        if not isinstance(certs, list) or not certs:
            raise MalformedBundle(f"{where}.x509CertificateChain.certificates: expected a non-empty list")
        return None, b64.decode(_get(certs[0], "rawBytes"), f"{where}.x509CertificateChain.certificates[0]")
    except InputError as exc:
        raise MalformedBundle(exc.message) from None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _timestamps(vm: dict[str, Any], where: str) -> tuple[bytes, ...]:
    items = _get(vm.get("timestampVerificationData"), "rfc3161Timestamps") or []
    if not isinstance(items, list) or len(items) > dsse.MAX_SIGNATURES:
        raise MalformedBundle(f"{where}.timestampVerificationData.rfc3161Timestamps: expected a short list")
    try:
        return tuple(b64.decode(_get(t, "signedTimestamp"), f"{where}.rfc3161Timestamps[{i}]")
                     for i, t in enumerate(items))
    except InputError as exc:
        raise MalformedBundle(exc.message) from None


def _integrated_time(entries: Any) -> int | None:
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        return None
    try:
        value = int(entries[0].get("integratedTime", 0))
    except (TypeError, ValueError):
        return None
    return value or None  # Rekor v2 entries carry no integrated time


def key_bundle(envelope: dsse.Envelope, hint: str, tlog_entries: tuple[dict[str, Any], ...] = (),
               timestamps: tuple[bytes, ...] = ()) -> bytes:
    """A v0.3 bundle for a key-signed DSSE envelope, as ``cosign sign --key --new-bundle-format``.

    Without a log entry or timestamp by default (offline and air-gapped use); ``timestamps`` are
    RFC 3161 TimeStampResponse DER over the signature, ``tlog_entries`` Rekor entries.
    """
    material: dict[str, Any] = {"publicKey": {"hint": hint}, "tlogEntries": list(tlog_entries)}
    if timestamps:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64.encode(t)} for t in timestamps]}
    return canonical.dumps({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": material,
        "dsseEnvelope": envelope.to_json(),
    })


# Fulcio certificate extensions (sigstore/fulcio docs/oid-info.md): the OIDC issuer, first as a
# raw string (…1.1, deprecated), then as a DER UTF8String (…1.8); SAN otherName for usernames.
OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
OID_OTHERNAME_USERNAME = "1.3.6.1.4.1.57264.1.7"


@functools.lru_cache(maxsize=64)
def certificate_identity(der: bytes) -> tuple[tuple[str, ...], str | None]:
    """The signer identities (SAN email, URI, username) and OIDC issuer of a Fulcio certificate.

    Parsing only: whether the certificate is trusted is decided elsewhere. Cached by DER bytes:
    keyless verification asks for the same certificate twice (policy check, then the report).
    """
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        raise MalformedBundle("bundle certificate: not a certificate with a subjectAltName") from None
    names: list[str] = list(san.get_values_for_type(x509.RFC822Name))
    names += san.get_values_for_type(x509.UniformResourceIdentifier)
    names += [_der_utf8(o.value) for o in san.get_values_for_type(x509.OtherName)
              if o.type_id.dotted_string == OID_OTHERNAME_USERNAME]
    return tuple(names), _issuer(cert)


def _issuer(cert: object) -> str | None:
    """The OIDC issuer for display: the legacy extension's, else the new one's (decoded leniently)."""
    legacy, new = issuer_extensions(cert)
    for value in (legacy, new):
        if value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


def issuer_extensions(cert: object) -> tuple[bytes | None, str | bytes | None]:
    """(raw value of …1.1, value of …1.8): the second decoded as DER UTF8String when it is exactly one,
    else its raw bytes (a malformed extension, which no verifier may accept)."""
    from cryptography import x509

    assert isinstance(cert, x509.Certificate)
    raw: dict[str, bytes | None] = {}
    for oid in (OID_ISSUER_V1, OID_ISSUER_V2):
        try:
            ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
        except x509.ExtensionNotFound:
            raw[oid] = None
            continue
        raw[oid] = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
    new = raw[OID_ISSUER_V2]
    decoded = _strict_der_utf8(new) if new is not None else None
    return raw[OID_ISSUER_V1], decoded if decoded is not None else new


def _strict_der_utf8(raw: bytes) -> str | None:
    """A DER UTF8String (tag 0x0c, minimal definite length, nothing after it), or None."""
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    n, off = raw[1], 2
    if n & 0x80:
        width = n & 0x7F
        if width not in (1, 2) or len(raw) < 2 + width:
            return None
        n, off = int.from_bytes(raw[2:2 + width], "big"), 2 + width
        if n < 0x80 or (width == 2 and n < 0x100):
            return None
    if len(raw) != off + n:
        return None
    try:
        return raw[off:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _der_utf8(raw: bytes) -> str:
    """Decode a DER UTF8String (tag 0x0c, short or long form length); fall back to the raw text."""
    if len(raw) >= 2 and raw[0] == 0x0C:
        n, off = raw[1], 2
        if n & 0x80:
            width = n & 0x7F
            n, off = int.from_bytes(raw[2:2 + width], "big"), 2 + width
        return raw[off:off + n].decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")
