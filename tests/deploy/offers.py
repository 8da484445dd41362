"""Create-keep answers built from bytes (real sim evidence, real keys) for the trust module's unit tests."""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enarx_pkg import trust
from enarx_pkg._internal import b64, seal
from enarx_pkg.attestation.policy import Policy
from enarx_pkg.attestation.sim import SimPlatform

MEASUREMENT = bytes(range(48))
PLATFORM = SimPlatform.generate()


def public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def answer(nonce: bytes, key: X25519PrivateKey, *, tee: str = "sim", keep_id: str = "keep-0001",
           bound_to: bytes | None = None, platform: SimPlatform = PLATFORM) -> dict[str, Any]:
    """A create-keep answer as an agent sends it; ``bound_to`` overrides the nonce the evidence binds."""
    evidence = platform.issue(seal.report_data(bound_to or nonce, public(key)), MEASUREMENT)
    return {"keep_id": keep_id, "tee": tee, "keep_public_key": b64.encode(public(key)),
            "evidence": b64.encode(evidence), "aux": "", "capability": "c" * 43}


def policy(**sim: Any) -> Policy:
    section = {"insecure": True, "keys": [PLATFORM.fingerprint], "measurements": [MEASUREMENT.hex()]} | sim
    return Policy.from_mapping({"tees": ["sim"], "sim": section}, "test policy")


def attested(keep_id: str = "keep-0001") -> tuple[trust.AttestedKeep, X25519PrivateKey]:
    """An attested sim keep and its private key (the keep's half), the way deploy gets one."""
    key, nonce = X25519PrivateKey.generate(), os.urandom(32)
    offer = trust.Offer.parse(answer(nonce, key, keep_id=keep_id), "http://127.0.0.1:1")
    return trust.attest(offer, nonce, policy(), insecure_sim=True), key
