"""SEV-SNP, one field at a time: the real virtee-milan report changed and RE-SIGNED under a test AMD PKI
(pinned in place of AMD's), so each refusal below comes from the check named, not from a broken signature.

Fields (SEV-SNP ABI, attestation report table): POLICY bits (SMT 16, MIGRATE_MA 18, DEBUG 19),
SIGNATURE_ALGO, SIGNING_KEY (VCEK/VLEK), REPORTED_TCB against the VCEK's TCB extensions, CHIP_ID
against its hwID, the CPUID product against the chain, VMPL, GUEST_SVN, REPORT_DATA (our nonce), and
the ID block fields (ID key, author key, family and image ids).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

import pytest

from enarx_pkg.attestation import EvidenceError, MalformedEvidence, anchors, verify_evidence
from enarx_pkg.attestation.policy import Policy, appraise

from . import amd_pki
from .conftest import NOW_2026

VIRTEE = "snp/virtee-milan/report.bin"
TCB = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
NONCE = hashlib.sha512(b"enarx-pkg/keep/v1" + bytes(64)).digest()


@pytest.fixture(scope="module")
def made(testvectors: Any) -> tuple[bytes, amd_pki.AmdPki]:
    report = (testvectors / VIRTEE).read_bytes()
    report = report[:0x50] + NONCE + report[0x90:]  # the report our keep would send for NONCE
    return report, amd_pki.make_pki(report[0x1A0:0x1E0], TCB)


def _u64(offset: int, value: int) -> Callable[[bytearray], None]:
    def edit(r: bytearray) -> None:
        r[offset : offset + 8] = struct.pack("<Q", value)
    return edit


def _set(offset: int, data: bytes) -> Callable[[bytearray], None]:
    def edit(r: bytearray) -> None:
        r[offset : offset + len(data)] = data
    return edit


def _verified(made: tuple[bytes, amd_pki.AmdPki], *edits: Callable[[bytearray], None],
              pki: amd_pki.AmdPki | None = None) -> Any:
    report, own = made
    pki = pki or own
    r = bytearray(report)
    for edit in edits:
        edit(r)
    with anchors.replaced_for_tests(amd=pki.pins):
        return verify_evidence("snp", amd_pki.resign(bytes(r), pki.vcek_key), certs=pki.certs(), at=NOW_2026)


def _failed(claims: Any, nonce: bytes | None = NONCE, **snp: Any) -> list[str]:
    policy = Policy.from_mapping({"tees": ["snp"], "snp": {"measurements": [claims.measurement], **snp}}, "t")
    return [c.name for c in appraise(claims, policy, expected_report_data=nonce).failed]


def test_re_signed_report_is_accepted_as_it_is(made):
    """Control: the unchanged report, re-signed under the test PKI, passes the production policy."""
    claims = _verified(made)
    assert (claims.policy, claims.debug, claims.smt_allowed, claims.migrate_ma) == (0x30000, False, True, False)
    assert _failed(claims) == []


@pytest.mark.parametrize("policy_bits, failed, snp", [
    (0x30000 | 1 << 19, ["debug"], {}),  # DEBUG
    (0x30000 | 1 << 18, ["snp.migration_agent"], {}),  # MIGRATE_MA
    (0x30000, ["snp.smt"], {"allow_smt": False}),  # SMT allowed, refused by a policy that says so
    (0x20000, [], {"allow_smt": False}),  # SMT not allowed: that policy accepts it
])
def test_guest_policy_bits(made, policy_bits, failed, snp):
    claims = _verified(made, _u64(0x08, policy_bits))
    assert claims.policy == policy_bits and _failed(claims, **snp) == failed


@pytest.mark.parametrize("algo", [0, 2, 0xFFFFFFFF])
def test_signature_algorithm_other_than_ecdsa_p384_refused(made, algo):
    with pytest.raises(MalformedEvidence) as exc:
        _verified(made, _set(0x34, struct.pack("<I", algo)))
    assert exc.value.check == "snp.signature_algo"


def test_vcek_signed_report_claiming_a_vlek_refused(made):
    """SIGNING_KEY says VLEK but the key that signed is a VCEK: no VLEK chain, refused."""
    with pytest.raises(EvidenceError) as exc:
        _verified(made, lambda r: r.__setitem__(0x48, (r[0x48] & ~0x1C) | 1 << 2))
    assert exc.value.check == "snp.certs.leaf" and "SEV-VLEK" in str(exc.value)


def test_vlek_report_with_its_signing_key_field_set_to_vcek_refused(vec):
    """The AWS VLEK report claiming VCEK: the VLEK certificate cannot serve as a VCEK."""
    report, certs, at = vec.snp("trustee-milan-vlek")
    bad = bytearray(report)
    bad[0x48] &= ~0x1C & 0xFF
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("snp", bytes(bad), certs=certs, at=at)
    assert exc.value.check == "snp.certs.leaf" and "SEV-VCEK" in str(exc.value)


@pytest.mark.parametrize("component, offset", [("bootloader", 0), ("tee", 1), ("snp", 6), ("microcode", 7)])
def test_reported_tcb_above_the_vceks_refused(made, component, offset):
    """REPORTED_TCB claims one more than the VCEK certifies: the VCEK was issued for another TCB."""
    def bump(r: bytearray) -> None:
        r[0x180 + offset] += 1
    with pytest.raises(EvidenceError) as exc:
        _verified(made, bump)
    assert exc.value.check == "snp.reported_tcb" and component in str(exc.value)


def test_reported_tcb_below_the_vceks_refused(made):
    """An older TCB claimed under a newer VCEK (a rollback disguised): also a mismatch."""
    with pytest.raises(EvidenceError) as exc:
        _verified(made, lambda r: r.__setitem__(0x187, 114))
    assert exc.value.check == "snp.reported_tcb"


def test_chip_id_of_another_chip_refused(made):
    with pytest.raises(EvidenceError) as exc:
        _verified(made, lambda r: r.__setitem__(0x1A0, r[0x1A0] ^ 0xFF))
    assert exc.value.check == "snp.chip_id"


def test_cpuid_product_must_be_the_chains(made):
    """A v3 report whose CPUID says Genoa (family 19h model 11h) under a Milan chain."""
    with pytest.raises(EvidenceError) as exc:
        _verified(made, _set(0, struct.pack("<I", 3)), _set(0x188, bytes([0x19, 0x11, 0x01])))
    assert exc.value.check == "snp.product"


def test_vmpl_and_guest_svn(made):
    claims = _verified(made, _set(0x30, struct.pack("<I", 2)), _set(0x04, struct.pack("<I", 3)))
    assert _failed(claims) == ["snp.vmpl"]
    assert _failed(claims, vmpl=[2], min_guest_svn=4) == ["snp.guest_svn"]
    assert _failed(claims, vmpl=[2], min_guest_svn=3) == []


def test_report_data_must_be_our_nonce(made):
    claims = _verified(made)
    assert _failed(claims, nonce=hashlib.sha512(b"another deploy").digest()) == ["report_data"]


ID_KEY, AUTHOR_KEY = "11" * 48, "22" * 48


def test_id_block_fields_are_pinned(made):
    """ID key, author key (only with AUTHOR_KEY_EN), family and image ids: each refused when not pinned."""
    claims = _verified(made, _set(0xE0, bytes.fromhex(ID_KEY)), _set(0x110, bytes.fromhex(AUTHOR_KEY)),
                       _set(0x10, b"\x01" * 16), _set(0x20, b"\x02" * 16))
    assert not claims.author_key_en
    assert _failed(claims, id_key_digests=[ID_KEY], family_ids=["01" * 16], image_ids=["02" * 16]) == []
    assert _failed(claims, id_key_digests=["33" * 48]) == ["snp.id_key_digests"]
    assert _failed(claims, family_ids=["03" * 16], image_ids=["04" * 16]) == ["snp.family_ids", "snp.image_ids"]
    assert _failed(claims, author_key_digests=[AUTHOR_KEY]) == ["snp.author_key_digests"]  # AUTHOR_KEY_EN = 0
    with_author = _verified(made, _set(0x110, bytes.fromhex(AUTHOR_KEY)), lambda r: r.__setitem__(0x48, r[0x48] | 1))
    assert _failed(with_author, author_key_digests=[AUTHOR_KEY]) == []


def test_report_launched_without_an_id_block_refused_when_the_policy_pins_one(vec):
    report, certs, at = vec.snp("trustee-milan-idblock")
    with_block = verify_evidence("snp", report, certs=certs, at=at)
    pinned = with_block.id_key_digest
    assert _failed(with_block, nonce=None, id_key_digests=[pinned]) == []
    report, certs, at = vec.snp("virtee-milan")
    without = verify_evidence("snp", report, certs=certs, at=at)  # no ID block: the digest is zero
    assert without.id_key_digest == "00" * 48
    assert _failed(without, nonce=None, id_key_digests=[pinned]) == ["snp.id_key_digests"]
