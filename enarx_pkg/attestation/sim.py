"""The ``sim`` backend: a software keep whose evidence has the shape of a real TEE's.

It proves nothing about hardware. The evidence is signed by a host-local Ed25519 "platform key"
(kept 0600 in the host's data directory); a policy accepts it only if it names that key's
fingerprint and says ``insecure = true``.

Evidence layout (232 bytes, little-endian, signature over bytes 0..167)::

    0   magic  b"ENXSIM\\0\\1"     8
    8   version u16 (1)            2
    10  flags u16 (bit 0: debug)   2
    12  svn u32                    4
    16  timestamp u64 (unix s)     8
    24  report_data                64
    88  measurement (SHA-384)      48
    136 platform public key        32
    168 Ed25519 signature          64
"""

from __future__ import annotations

import hashlib
import struct
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from enarx_pkg._internal import atomic
from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence
from enarx_pkg.attestation.claims import SimClaims
from enarx_pkg.errors import InputError

MAGIC = b"ENXSIM\x00\x01"
VERSION = 1
SIGNED_LEN = 168
EVIDENCE_LEN = SIGNED_LEN + 64
KEY_FILE = "sim-platform.key"
_HEAD = struct.Struct("<8sHHIQ")
# a sim keep and its verifier share a host clock; allow small skew only
MAX_CLOCK_SKEW_S = 300


def fingerprint_of(public_key: bytes) -> str:
    """``sha256:<hex>`` of the raw 32-byte Ed25519 public key (what a policy pins)."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()


class SimPlatform:
    """The host-local simulated platform key that signs sim evidence."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.fingerprint: str = fingerprint_of(self.public_key)

    @classmethod
    def generate(cls) -> SimPlatform:
        """A fresh in-memory platform key (tests, throwaway hosts)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SimPlatform:
        """Load ``data_dir/sim-platform.key`` or create it atomically with mode 0600."""
        path = Path(data_dir) / KEY_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            key = Ed25519PrivateKey.generate()
            raw = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            atomic.write_bytes(path, raw, mode=0o600)
            return cls(key)
        if len(raw) != 32:
            raise InputError(f"{path}: not a sim platform key (expected 32 raw bytes, got {len(raw)})")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def issue(self, report_data: bytes, measurement: bytes, *, debug: bool = False, svn: int = 1) -> bytes:
        """Sign sim evidence binding ``report_data`` (64 bytes) to ``measurement`` (48 bytes)."""
        if len(report_data) != 64 or len(measurement) != 48:
            raise ValueError("report_data must be 64 bytes and measurement 48 bytes")
        if not 0 <= svn < 2**32:
            raise ValueError("svn must fit in 32 bits")
        head = _HEAD.pack(MAGIC, VERSION, 1 if debug else 0, svn, int(time.time()))
        body = head + report_data + measurement + self.public_key
        return body + self._key.sign(body)


def parse_sim(evidence: bytes) -> tuple[SimClaims, bytes]:
    """Decode sim evidence without checking its signature; returns the claims and the signature."""
    if len(evidence) != EVIDENCE_LEN:
        raise MalformedEvidence("sim.length", f"sim evidence must be {EVIDENCE_LEN} bytes, got {len(evidence)}")
    magic, version, flags, svn, ts = _HEAD.unpack_from(evidence, 0)
    if magic != MAGIC:
        raise MalformedEvidence("sim.magic", "not sim evidence (bad magic)")
    if version != VERSION or flags & ~1:
        raise MalformedEvidence("sim.version", f"unsupported sim evidence version {version} / flags {flags:#x}")
    if ts > 2**40:
        raise MalformedEvidence("sim.timestamp", f"timestamp {ts} is out of range")
    pub = evidence[136:168]
    claims = SimClaims(
        tee="sim",
        version=version,
        measurement=evidence[88:136].hex(),
        report_data=evidence[24:88],
        debug=bool(flags & 1),
        svn=svn,
        platform_key=fingerprint_of(pub),
        timestamp=datetime.fromtimestamp(ts, UTC),
        public_key=pub,
    )
    return claims, evidence[SIGNED_LEN:]


def verify_sim(evidence: bytes, *, at: datetime | None = None) -> SimClaims:
    """Check structure and the signature under the embedded key. The POLICY decides if that key is trusted."""
    claims, signature = parse_sim(evidence)
    try:
        Ed25519PublicKey.from_public_bytes(claims.public_key).verify(signature, evidence[:SIGNED_LEN])
    except (InvalidSignature, ValueError) as exc:
        raise EvidenceError("sim.signature", "signature does not verify under the embedded platform key") from exc
    now = at or datetime.now(UTC)
    if (claims.timestamp - now).total_seconds() > MAX_CLOCK_SKEW_S:
        when = claims.timestamp.isoformat()
        raise EvidenceError("sim.timestamp", f"evidence is dated {when}, after {now.isoformat()}")
    return claims
