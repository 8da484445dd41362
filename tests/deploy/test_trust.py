"""The trust module on bytes: an AttestedKeep exists only for evidence that verified, is bound to this
deploy, shows the TEE the host named, and satisfies the policy. Real sim evidence, real keys, no host."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enarx_pkg import trust
from enarx_pkg._internal import seal
from enarx_pkg.errors import AttestationError, TransportError
from tests.deploy import offers

HOST = "http://127.0.0.1:1"


def offer_and_nonce(**kw: Any) -> tuple[trust.Offer, bytes]:
    nonce = os.urandom(32)
    return trust.Offer.parse(offers.answer(nonce, X25519PrivateKey.generate(), **kw), HOST), nonce


def test_attest_returns_the_verified_keep() -> None:
    offer, nonce = offer_and_nonce()
    keep = trust.attest(offer, nonce, offers.policy(), insecure_sim=True)
    assert (keep.tee, keep.keep_id, keep.public_key) == ("sim", "keep-0001", offer.public_key)
    assert keep.measurement == offers.MEASUREMENT.hex()
    assert "c" * 43 not in repr(keep) and "c" * 43 not in repr(offer)  # the capability stays out of logs


def test_an_attested_keep_cannot_be_made_without_attest() -> None:
    offer, _ = offer_and_nonce()
    with pytest.raises(TypeError, match="attest"):
        trust.AttestedKeep(HOST, "k", "sim", offer.public_key, "m", None, "c" * 43)
    env = seal.Envelope("http://r", "p", "sha256:" + "a" * 64, os.urandom(32))
    with pytest.raises(TypeError, match="AttestedKeep"):
        seal.seal_envelope(env, offer)  # type: ignore[arg-type]  # an offer is not attested


@pytest.mark.parametrize("label", ["auto", "snp", "", "sim\x1b[2J"])
def test_a_label_that_is_unknown_or_not_what_the_evidence_shows_is_refused(label: str) -> None:
    offer, nonce = offer_and_nonce(tee=label)
    with pytest.raises(AttestationError, match="labels its keep") as e:
        trust.attest(offer, nonce, offers.policy(), insecure_sim=True)
    assert "\x1b" not in e.value.message


def test_sim_is_refused_without_the_flag_whatever_the_policy_says() -> None:
    offer, nonce = offer_and_nonce()
    with pytest.raises(AttestationError, match="insecure-sim"):
        trust.attest(offer, nonce, offers.policy(), insecure_sim=False)


def test_evidence_bound_to_another_nonce_is_refused() -> None:
    offer, nonce = offer_and_nonce(bound_to=os.urandom(32))
    with pytest.raises(AttestationError, match="not bound"):
        trust.attest(offer, nonce, offers.policy(), insecure_sim=True)


def test_policy_failures_are_all_listed() -> None:
    offer, nonce = offer_and_nonce()
    with pytest.raises(AttestationError, match=r"FAIL sim.measurements") as e:
        trust.attest(offer, nonce, offers.policy(measurements=["00" * 48]), insecure_sim=True)
    assert "checks failed" in e.value.message


def test_package_backends_are_checked_against_the_verified_tee() -> None:
    keep, _ = offers.attested()
    trust.check_backend(keep, ("sim",))
    with pytest.raises(AttestationError, match="backends allow snp"):
        trust.check_backend(keep, ("snp",))


@pytest.mark.parametrize(("field", "value", "words"), [
    ("aux", "%%%not base64", "aux is not valid base64"),
    ("evidence", "A" * 3, "evidence is not valid base64"),
    ("keep_public_key", base64.b64encode(b"short").decode(), "keep_public_key is 5 bytes"),
    ("keep_id", "../../v1/platform", "keep id"),
    ("keep_id", "\x1b]8;;http://evil\x07click\x1b]8;;\x07", "keep id"),
    ("capability", "short", "capability"),
    ("tee", None, "no string tee"),
    ("evidence", "A" * (2 << 20), "over its 1048576-byte limit"),
])
def test_malformed_answers_are_typed_refusals(field: str, value: object, words: str) -> None:
    obj = offers.answer(os.urandom(32), X25519PrivateKey.generate()) | {field: value}
    with pytest.raises(trust.HostAnswerError, match=words) as e:
        trust.Offer.parse(obj, HOST)
    assert isinstance(e.value, TransportError) and "\x1b" not in e.value.message and "\x07" not in e.value.message


def test_a_malformed_snp_certificate_table_is_a_typed_refusal() -> None:
    with pytest.raises(AttestationError, match="certificate table"):
        trust.evidence_certs("snp", b"\x01" * 24, HOST)
