"""Arm CCA attestation tokens: CBOR tag 399 holding a platform and a realm COSE_Sign1 (ES384).

Claim keys from the Realm Management Monitor specification (RMM 1.0, A7.2) and the CCA Security
Domain profile. The platform token is verified under a CPAK the caller supplies (no vendor root is
pinned for CCA yet); the realm token under the RAK it carries, which the platform token binds by
carrying hash(RAK) as its challenge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence
from enarx_pkg.attestation.claims import CcaClaims, CcaSwComponent

MAX_TOKEN = 64 * 1024
TAG_CCA, TAG_SIGN1 = 399, 18
PLATFORM, REALM = 44234, 44241
_HASHES = {"sha-256": hashlib.sha256, "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}
_ALGS: dict[int, tuple[hashes.HashAlgorithm, int, str]] = {
    -7: (hashes.SHA256(), 32, "secp256r1"), -35: (hashes.SHA384(), 48, "secp384r1"),
    -36: (hashes.SHA512(), 66, "secp521r1"),
}


def _cbor(data: bytes, what: str) -> Any:
    """Exactly one CBOR item: bytes after it are refused (``cbor2.loads`` would ignore them)."""
    import io

    import cbor2

    fp = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(fp).decode()
    except Exception as exc:  # cbor2 raises a wide variety of types on hostile input
        raise MalformedEvidence("cca.cbor", f"{what} is not valid CBOR: {type(exc).__name__}") from exc
    if fp.tell() != len(data):
        raise MalformedEvidence("cca.cbor", f"{what} has {len(data) - fp.tell()} bytes after its CBOR item")
    return item


def _sign1(blob: Any, what: str) -> tuple[int, bytes, bytes, bytes, Mapping[int, Any]]:
    """(alg, protected bytes, payload, signature, claims) of a tagged COSE_Sign1."""
    import cbor2

    msg = _cbor(blob, what) if isinstance(blob, bytes) else blob
    if not isinstance(msg, cbor2.CBORTag) or msg.tag != TAG_SIGN1 or not isinstance(msg.value, list | tuple):
        raise MalformedEvidence("cca.cose", f"{what} is not a tagged COSE_Sign1")
    if len(msg.value) != 4 or not all(isinstance(msg.value[i], bytes) for i in (0, 2, 3)):
        raise MalformedEvidence("cca.cose", f"{what} COSE_Sign1 is malformed")
    protected, unprotected, payload, sig = msg.value
    if not isinstance(unprotected, Mapping):
        raise MalformedEvidence("cca.cose", f"{what} unprotected header is not a map")
    header, claims = _cbor(protected, f"{what} header"), _cbor(payload, f"{what} payload")
    if not isinstance(header, Mapping) or not isinstance(claims, Mapping) or header.get(1) not in _ALGS:
        raise MalformedEvidence("cca.cose", f"{what} header/claims malformed or algorithm unsupported")
    return header[1], protected, payload, sig, claims


def _verify(alg: int, key: ec.EllipticCurvePublicKey, protected: bytes, payload: bytes, sig: bytes,
            check: str) -> None:
    import cbor2

    hash_alg, n, curve = _ALGS[alg]
    if key.curve.name != curve or len(sig) != 2 * n:
        raise EvidenceError(check, f"key curve {key.curve.name} / signature length do not match COSE alg {alg}")
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
    try:
        key.verify(der, to_sign, ec.ECDSA(hash_alg))
    except InvalidSignature as exc:
        raise EvidenceError(check, "COSE_Sign1 signature does not verify") from exc


def load_cpak(blob: bytes) -> ec.EllipticCurvePublicKey:
    """A CPAK from a JWK (JSON), PEM or DER SubjectPublicKeyInfo."""
    try:
        if blob.lstrip().startswith(b"{"):
            from jwcrypto import jwk

            blob = jwk.JWK.from_json(blob.decode()).export_to_pem()
        key = (serialization.load_pem_public_key(blob) if b"-----BEGIN" in blob
               else serialization.load_der_public_key(blob))
    except Exception as exc:  # jwcrypto and cryptography raise many types on bad keys
        raise MalformedEvidence("cca.cpak", f"cannot read CPAK public key: {type(exc).__name__}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise MalformedEvidence("cca.cpak", "CPAK is not an EC public key")
    return key


def _b(claims: Mapping[int, Any], key: int, what: str) -> bytes:
    v = claims.get(key)
    if not isinstance(v, bytes):
        raise MalformedEvidence("cca.claims", f"{what} claim ({key}) missing or not bytes")
    return v


def _s(claims: Mapping[int, Any], key: int, default: str = "") -> str:
    v = claims.get(key, default)
    if not isinstance(v, str):
        raise MalformedEvidence("cca.claims", f"claim {key} is not text")
    return v


def parse_token(token: bytes) -> tuple[Mapping[int, Any], tuple[Any, ...], tuple[Any, ...]]:
    """Split a CCA token into its platform and realm COSE_Sign1 parts (not verified)."""
    import cbor2

    if len(token) > MAX_TOKEN:
        raise MalformedEvidence("cca.length", f"token of {len(token)} bytes exceeds {MAX_TOKEN}")
    outer = _cbor(token, "CCA token")
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != TAG_CCA or not isinstance(outer.value, Mapping):
        raise MalformedEvidence("cca.tag", "not a CCA token (CBOR tag 399 map)")
    if set(outer.value) != {PLATFORM, REALM}:
        raise MalformedEvidence("cca.tokens", "CCA token must hold exactly the platform and realm tokens")
    if not all(isinstance(outer.value[k], bytes) for k in (PLATFORM, REALM)):
        raise MalformedEvidence("cca.tokens", "CCA platform/realm tokens must be byte strings")
    return outer.value, _sign1(outer.value[PLATFORM], "platform token"), _sign1(outer.value[REALM], "realm token")


def inspect_cca(token: bytes) -> CcaClaims:
    """Decode a CCA token WITHOUT verifying it."""
    _, platform, realm = parse_token(token)
    return _claims(platform[4], realm[4], "")


def verify_cca(token: bytes, *, certs: Sequence[bytes] = ()) -> CcaClaims:
    """Verify the platform token under the supplied CPAK, the realm token under its RAK, and their binding."""
    _, (p_alg, p_prot, p_pay, p_sig, p_claims), (r_alg, r_prot, r_pay, r_sig, r_claims) = parse_token(token)
    if not certs:
        raise EvidenceError("cca.cpak", "no CPAK public key supplied (use --certs with the CPAK JWK or PEM)")
    cpak = load_cpak(certs[0])
    _verify(p_alg, cpak, p_prot, p_pay, p_sig, "cca.platform.signature")
    rak_bytes = _b(r_claims, 44237, "realm public key")
    try:
        rak = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), rak_bytes)
    except ValueError as exc:
        raise EvidenceError("cca.realm.rak", "realm public key is not a P-384 point") from exc
    _verify(r_alg, rak, r_prot, r_pay, r_sig, "cca.realm.signature")
    hash_fn = _HASHES.get(_s(r_claims, 44240, "sha-256"))
    if hash_fn is None or hash_fn(rak_bytes).digest() != _b(p_claims, 10, "platform challenge"):
        raise EvidenceError("cca.binding", "platform challenge is not the hash of the realm attestation key")
    spki = cpak.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _claims(p_claims, r_claims, "sha256:" + hashlib.sha256(spki).hexdigest())


def _claims(p: Mapping[int, Any], r: Mapping[int, Any], cpak: str) -> CcaClaims:
    lifecycle = p.get(2395, 0)
    rem = r.get(44239, [])
    if not isinstance(lifecycle, int) or not isinstance(rem, list) or not all(isinstance(x, bytes) for x in rem):
        raise MalformedEvidence("cca.claims", "lifecycle or REM claims malformed")
    challenge = _b(r, 10, "realm challenge")
    if len(challenge) != 64:
        raise MalformedEvidence("cca.claims", f"realm challenge is {len(challenge)} bytes, expected 64")
    return CcaClaims(
        tee="cca", measurement=_b(r, 44238, "RIM").hex(), report_data=challenge,
        debug=(lifecycle >> 8) != 0x30,  # PSA lifecycle 0x30xx = "secured"; anything else is not production
        profile=_s(p, 265), platform_challenge=_b(p, 10, "platform challenge").hex(),
        implementation_id=_b(p, 2396, "implementation id").hex(), instance_id=_b(p, 256, "instance id").hex(),
        platform_config=_b(p, 2401, "platform config").hex(), lifecycle=lifecycle,
        platform_hash_algo=_s(p, 2402), sw_components=_components(p.get(2399, [])),
        rem=tuple(x.hex() for x in rem), personalization=_b(r, 44235, "personalization value").hex(),
        realm_hash_algo=_s(r, 44236), rak=_b(r, 44237, "realm public key").hex(), cpak_fingerprint=cpak,
    )


def _components(items: Any) -> tuple[CcaSwComponent, ...]:
    if not isinstance(items, list) or not all(isinstance(c, Mapping) for c in items):
        raise MalformedEvidence("cca.claims", "software components claim malformed")
    out = []
    for c in items:
        m, signer = c.get(2, b""), c.get(5, b"")
        if not isinstance(m, bytes) or not isinstance(signer, bytes):
            raise MalformedEvidence("cca.claims", "software component measurement/signer is not bytes")
        out.append(CcaSwComponent(type=_s(c, 1), measurement=m.hex(), signer_id=signer.hex(), version=_s(c, 4)))
    return tuple(out)
