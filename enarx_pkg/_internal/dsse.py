"""DSSE envelopes (secure-systems-lab/dsse v1): pre-authentication encoding and the JSON shape.

The signature covers ``PAE(payloadType, payload)``, never the JSON envelope itself, so the envelope
can be re-serialised freely. Signing keys here are ECDSA P-256 with SHA-256 (DER signatures), as
cosign and sigstore write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg._internal import b64
from enarx_pkg.errors import InputError, VerificationError

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: lengths are ASCII decimal byte counts."""
    pt = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(pt), pt, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    """A parsed DSSE envelope; ``signatures`` are raw signature bytes.

    ``keyid`` (unauthenticated, a hint only) is written on each signature: key-based bundles put
    the bundle's ``publicKey.hint`` there, as cosign does.
    """

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]
    keyid: str = ""

    def to_json(self) -> dict[str, Any]:
        """The protobuf-specs JSON form (``io.intoto.Envelope``), base64 with padding."""
        return {
            "payload": b64.encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"sig": b64.encode(s), **({"keyid": self.keyid} if self.keyid else {})}
                           for s in self.signatures],
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "dsseEnvelope") -> Envelope:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected an object")
        payload_type = obj.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise InputError(f"{where}.payloadType: expected a non-empty string")
        sigs = obj.get("signatures")
        if not isinstance(sigs, list) or not sigs or len(sigs) > MAX_SIGNATURES:
            raise InputError(f"{where}.signatures: expected 1 to {MAX_SIGNATURES} signatures")
        raw = []
        for i, s in enumerate(sigs):
            if not isinstance(s, dict):
                raise InputError(f"{where}.signatures[{i}]: expected an object")
            raw.append(b64.decode(s.get("sig"), f"{where}.signatures[{i}].sig"))
        keyid = sigs[0].get("keyid")
        return cls(payload_type, b64.decode(obj.get("payload"), f"{where}.payload"), tuple(raw),
                   keyid if isinstance(keyid, str) else "")


def sign(key: ec.EllipticCurvePrivateKey, payload_type: str, payload: bytes, keyid: str = "") -> Envelope:
    """Sign ``payload`` as a one-signature DSSE envelope."""
    sig = key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
    return Envelope(payload_type, payload, (sig,), keyid)


def verify(key: ec.EllipticCurvePublicKey, envelope: Envelope) -> None:
    """Accept the envelope if any of its signatures is valid under ``key``; raise otherwise."""
    message = pae(envelope.payload_type, envelope.payload)
    for sig in envelope.signatures:
        try:
            key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
            return
        except InvalidSignature:
            continue
    raise VerificationError("DSSE signature does not verify with the given public key "
                            "(payload, payload type or signature was altered, or another key signed it)")
