"""Our two X.509 extensions (DER layouts in docs/tls.md), as frozen dataclasses.

``KeepEvidence`` (:data:`OID_KEEP_EVIDENCE`) rides in a self-contained certificate or in a CSR sent
to a Steward; ``AppraisedKeep`` (:data:`OID_APPRAISED_KEEP`) is what an issuer writes into the
certificate it issues after appraising a ``KeepEvidence``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from enarx_pkg._internal import digest
from enarx_pkg.attestation._errors import EvidenceError
from enarx_pkg.tls import OID_APPRAISED_KEEP, OID_KEEP_EVIDENCE, _asn1

VERSION = 1
NONCE_BYTES = 32
MAX_EXTENSION_BYTES = 256 * 1024  # a DCAP quote with its PCK chain is ~5 KiB; an SNP cert table ~4 KiB
_EVIDENCE_TAGS = (_asn1.INTEGER, _asn1.UTF8, _asn1.OCTETS, _asn1.OCTETS, _asn1.OCTETS, _asn1.OCTETS)
_ATTESTED_TAGS = (_asn1.INTEGER, _asn1.UTF8, _asn1.UTF8, _asn1.OCTETS, _asn1.OCTETS, _asn1.OCTETS)


def raw_digest(value: str) -> bytes:
    """The 32 bytes of a ``sha256:<hex>`` digest."""
    return bytes.fromhex(digest.parse(value)[1])


def _sha256(raw: bytes, where: str) -> str:
    if len(raw) != 32:
        raise EvidenceError(where, f"expected a 32-byte SHA-256 digest, got {len(raw)} bytes")
    return "sha256:" + raw.hex()


@dataclass(frozen=True)
class KeepEvidence:
    """A keep's evidence for one TLS key: its report_data is :func:`binding.report_data` of these fields."""

    tee: str
    nonce: bytes
    package: str  # sha256:<hex> of the OCI manifest the keep runs
    evidence: bytes = field(repr=False)
    aux: bytes = field(repr=False, default=b"")  # SNP: the host's certificate table

    oid = OID_KEEP_EVIDENCE

    def to_der(self) -> bytes:
        return _asn1.encode([VERSION, self.tee, self.nonce, raw_digest(self.package), self.evidence, self.aux])

    @classmethod
    def from_der(cls, data: bytes) -> KeepEvidence:
        where = "tls.evidence_extension"
        if len(data) > MAX_EXTENSION_BYTES:
            raise EvidenceError(where, f"extension is {len(data)} bytes, over the {MAX_EXTENSION_BYTES} limit")
        version, tee, nonce, package, evidence, aux = _asn1.decode(data, _EVIDENCE_TAGS, where)
        assert isinstance(tee, str) and isinstance(nonce, bytes) and isinstance(package, bytes)
        assert isinstance(evidence, bytes) and isinstance(aux, bytes)
        if version != VERSION:
            raise EvidenceError(where, f"unsupported version {version!r}")
        if len(nonce) != NONCE_BYTES:
            raise EvidenceError(where, f"nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
        return cls(tee, nonce, _sha256(package, where), evidence, aux)


@dataclass(frozen=True)
class AppraisedKeep:
    """What an issuer appraised before signing: the TEE, the measurement and three digests."""

    tee: str
    measurement: str
    evidence_digest: str  # sha256 of the evidence bytes that were verified
    package: str
    policy_digest: str  # sha256 of the canonical policy (verify.policy_digest)

    oid = OID_APPRAISED_KEEP

    def to_der(self) -> bytes:
        return _asn1.encode([VERSION, self.tee, self.measurement, raw_digest(self.evidence_digest),
                             raw_digest(self.package), raw_digest(self.policy_digest)])

    @classmethod
    def from_der(cls, data: bytes) -> AppraisedKeep:
        where = "tls.appraised_extension"
        if len(data) > MAX_EXTENSION_BYTES:
            raise EvidenceError(where, "extension too large")
        version, tee, measurement, ev, package, pol = _asn1.decode(data, _ATTESTED_TAGS, where)
        assert isinstance(tee, str) and isinstance(measurement, str)
        assert isinstance(ev, bytes) and isinstance(package, bytes) and isinstance(pol, bytes)
        if version != VERSION:
            raise EvidenceError(where, f"unsupported version {version!r}")
        return cls(tee, measurement, _sha256(ev, where), _sha256(package, where), _sha256(pol, where))

    def to_dict(self) -> dict[str, str]:
        return {"tee": self.tee, "measurement": self.measurement, "evidence_digest": self.evidence_digest,
                "package": self.package, "policy_digest": self.policy_digest}
