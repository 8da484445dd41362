"""Just enough DER to read Intel's SGX PCK certificate extensions (OID 1.2.840.113741.1.13.1)."""

from __future__ import annotations

from enarx_pkg.attestation._errors import MalformedEvidence

SGX_EXTENSIONS = "1.2.840.113741.1.13.1"


def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, value, next position) of the element at ``pos``."""
    if pos + 2 > len(data):
        raise MalformedEvidence("pck.extensions", "truncated DER element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 3 or pos + n > len(data):
            raise MalformedEvidence("pck.extensions", "bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise MalformedEvidence("pck.extensions", "DER element overruns its container")
    return tag, data[pos : pos + length], pos + length


def children(data: bytes) -> list[tuple[int, bytes]]:
    """The elements of a constructed value's contents."""
    out, pos = [], 0
    while pos < len(data):
        tag, value, pos = _tlv(data, pos)
        out.append((tag, value))
    return out


def oid_str(value: bytes) -> str:
    if not value:
        raise MalformedEvidence("pck.extensions", "empty OID")
    parts, n = [value[0] // 40, value[0] % 40], 0
    for b in value[1:]:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(n)
            n = 0
    return ".".join(map(str, parts))


def flatten(extension_value: bytes) -> dict[str, bytes]:
    """Map each leaf OID under the SGX extension to its raw value (INTEGER / OCTET STRING contents)."""
    out: dict[str, bytes] = {}
    _tag, seq, _ = _tlv(extension_value, 0)
    _walk(seq, out)
    return out


def _walk(seq: bytes, out: dict[str, bytes], depth: int = 0) -> None:
    if depth > 4:
        raise MalformedEvidence("pck.extensions", "extension nested too deeply")
    for tag, item in children(seq):
        if tag != 0x30:
            continue
        parts = children(item)
        if len(parts) != 2 or parts[0][0] != 0x06:
            raise MalformedEvidence("pck.extensions", "extension entry is not (OID, value)")
        oid, (vtag, value) = oid_str(parts[0][1]), parts[1]
        if vtag == 0x30:
            _walk(value, out, depth + 1)
        else:
            out[oid] = value
