"""Just enough DER for our two extensions: a SEQUENCE of INTEGER, OCTET STRING and UTF8String fields.

Decoding is strict (definite lengths, minimal length octets, exactly the expected fields in order), so
one value has one encoding and a digest over it means one thing.
"""

from __future__ import annotations

from collections.abc import Sequence

from enarx_pkg.attestation._errors import EvidenceError

INTEGER, OCTETS, UTF8, SEQUENCE = 0x02, 0x04, 0x0C, 0x30
Field = int | bytes | str
MAX_LEN = 1 << 24


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _field(value: Field) -> bytes:
    if isinstance(value, bool):
        raise TypeError("booleans are not encoded")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("only non-negative integers are encoded")
        return _tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))
    if isinstance(value, bytes):
        return _tlv(OCTETS, value)
    return _tlv(UTF8, value.encode("utf-8"))


def encode(fields: Sequence[Field]) -> bytes:
    """DER of ``SEQUENCE { fields... }``."""
    return _tlv(SEQUENCE, b"".join(_field(f) for f in fields))


def _read(data: bytes, pos: int, where: str) -> tuple[int, bytes, int]:
    if pos + 2 > len(data):
        raise EvidenceError(where, "truncated DER element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    length = first
    if first & 0x80:
        n = first & 0x7F
        raw = data[pos:pos + n]
        if n == 0 or n > 3 or len(raw) != n or raw[0] == 0:
            raise EvidenceError(where, "bad DER length")
        length, pos = int.from_bytes(raw, "big"), pos + n
        if length < 0x80:
            raise EvidenceError(where, "non-minimal DER length")
    if length > MAX_LEN or pos + length > len(data):
        raise EvidenceError(where, "DER element overruns its container")
    return tag, data[pos:pos + length], pos + length


def _value(tag: int, raw: bytes, expected: int, where: str) -> Field:
    if tag != expected:
        raise EvidenceError(where, f"expected DER tag {expected:#04x}, found {tag:#04x}")
    if tag == INTEGER:
        if not raw or (len(raw) > 1 and raw[0] == 0 and raw[1] < 0x80) or raw[0] & 0x80 or len(raw) > 8:
            raise EvidenceError(where, "bad or out-of-range DER INTEGER")
        return int.from_bytes(raw, "big")
    if tag == UTF8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EvidenceError(where, "UTF8String is not UTF-8") from exc
    return raw


def decode(data: bytes, tags: Sequence[int], where: str) -> list[Field]:
    """The fields of ``SEQUENCE {...}`` whose tags are exactly ``tags``; anything else is refused."""
    tag, body, end = _read(data, 0, where)
    if tag != SEQUENCE or end != len(data):
        raise EvidenceError(where, "not a single DER SEQUENCE")
    out, pos = [], 0
    for expected in tags:
        tag, raw, pos = _read(body, pos, where)
        out.append(_value(tag, raw, expected, where))
    if pos != len(body):
        raise EvidenceError(where, "unexpected fields after the last one")
    return out
