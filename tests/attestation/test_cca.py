"""Arm CCA token (FVP vector): claims, signatures under CPAK and RAK, and the realm binding."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from enarx_pkg.attestation import EvidenceError, MalformedEvidence, verify_evidence
from enarx_pkg.attestation.cca import inspect_cca, verify_cca

TOKEN, CPAK = "cca/trustee-fvp/token.cbor", "cca/trustee-fvp/cpak-pub.json"


def test_token_verifies_with_readme_values(vec):
    c = verify_evidence("cca", vec.read(TOKEN), certs=[vec.read(CPAK)])
    assert c.profile == "http://arm.com/CCA-SSD/1.0.0" and c.lifecycle == 0x3003 and not c.debug
    assert c.platform_challenge == "b5973cb68baa9fc55558786b7ec67f69e40df5ba5aa921cd0c27f40587a011ea"
    assert c.implementation_id.startswith("7f454c46") and c.platform_config == "cfcfcfcf"
    assert [s.type for s in c.sw_components][:3] == ["RSE_BL1_2", "RSE_BL2", "RSE_S"] and len(c.sw_components) == 13
    assert c.measurement.startswith("ae87fbf7f105e71a") and c.realm_hash_algo == "sha-512"
    assert c.report_data.hex().startswith("57e979ae2618de0c") and c.rem == ("00" * 64,) * 4
    assert bytes.fromhex(c.platform_challenge) == hashlib.sha256(bytes.fromhex(c.rak)).digest()
    assert c.cpak_fingerprint.startswith("sha256:")


def test_without_cpak_refused(vec):
    with pytest.raises(EvidenceError, match="CPAK"):
        verify_cca(vec.read(TOKEN))
    assert inspect_cca(vec.read(TOKEN)).cpak_fingerprint == ""


def test_other_cpak_refused(vec):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(EvidenceError) as exc:
        verify_cca(vec.read(TOKEN), certs=[other])
    assert exc.value.check == "cca.platform.signature"


def _rebuild(token: bytes, which: int, mutate) -> bytes:
    outer = cbor2.loads(token)
    parts = dict(outer.value)
    sign1 = cbor2.loads(parts[which])
    prot, unprot, payload, sig = sign1.value
    claims = dict(cbor2.loads(payload))
    mutate(claims)
    parts[which] = cbor2.dumps(cbor2.CBORTag(18, [prot, unprot, cbor2.dumps(claims), sig]))
    return cbor2.dumps(cbor2.CBORTag(399, parts))


def test_realm_claim_tampered_refused(vec):
    bad = _rebuild(vec.read(TOKEN), 44241, lambda c: c.__setitem__(44238, b"\x11" * 64))
    with pytest.raises(EvidenceError) as exc:
        verify_cca(bad, certs=[vec.read(CPAK)])
    assert exc.value.check == "cca.realm.signature"


def test_platform_challenge_tampered_refused(vec):
    bad = _rebuild(vec.read(TOKEN), 44234, lambda c: c.__setitem__(10, b"\x00" * 32))
    with pytest.raises(EvidenceError) as exc:
        verify_cca(bad, certs=[vec.read(CPAK)])
    assert exc.value.check == "cca.platform.signature"


def test_realm_token_from_another_platform_refused(vec):
    """A realm token re-signed under a fresh RAK: platform challenge no longer binds it."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = ec.generate_private_key(ec.SECP384R1())
    rak = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    outer = cbor2.loads(vec.read(TOKEN))
    parts = dict(outer.value)
    prot, unprot, payload, _ = cbor2.loads(parts[44241]).value
    claims = dict(cbor2.loads(payload))
    claims[44237] = rak
    payload = cbor2.dumps(claims)
    r, s = decode_dss_signature(key.sign(cbor2.dumps(["Signature1", prot, b"", payload]), ec.ECDSA(hashes.SHA384())))
    sig = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    parts[44241] = cbor2.dumps(cbor2.CBORTag(18, [prot, unprot, payload, sig]))
    with pytest.raises(EvidenceError) as exc:
        verify_cca(cbor2.dumps(cbor2.CBORTag(399, parts)), certs=[vec.read(CPAK)])
    assert exc.value.check == "cca.binding"


@pytest.mark.parametrize("cut", [1, 10, 500, 2000])
def test_truncated_token_malformed(vec, cut):
    data = vec.read(TOKEN)
    with pytest.raises(MalformedEvidence):
        verify_cca(data[: len(data) - cut], certs=[vec.read(CPAK)])


def test_realm_challenge_must_be_our_nonce(vec):
    """The realm challenge is CCA's report_data: a token made for another nonce is refused by the binding."""
    from enarx_pkg.attestation.policy import Policy, appraise

    c = verify_evidence("cca", vec.read(TOKEN), certs=[vec.read(CPAK)])
    pol = Policy.from_mapping({"tees": ["cca"], "debug": False,
                               "cca": {"measurements": [c.measurement], "cpak": [c.cpak_fingerprint]}}, "t")
    assert appraise(c, pol, expected_report_data=c.report_data).ok
    other = hashlib.sha512(b"another deploy").digest()
    assert [x.name for x in appraise(c, pol, expected_report_data=other).failed] == ["report_data"]
