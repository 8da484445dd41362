"""Strict parsing and CRLs: SNP reserved bytes, versions, SIGNING_KEY, VCEK TCB extensions, AMD and
Intel CRL windows, the CCA outer structure, and the policy keys that close the rest (issue 15, 3/5/8/9)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import cbor2
import pytest

from enarx_pkg.attestation import EvidenceError, MalformedEvidence, anchors, verify_evidence
from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.attestation.policy import Policy, appraise
from enarx_pkg.attestation.snp import verify_snp

from . import amd_pki, intel_pki
from .conftest import NOW_2026, TDX_2023, VLEK_VALID

VIRTEE = "snp/virtee-milan/report.bin"
COL = "tdx/collateral-2023-06-fmspc-50806f000000"
SPR = "tdx/trustee-v4-spr/quote.dat"


@pytest.fixture(scope="module")
def amd(testvectors):
    report = (testvectors / VIRTEE).read_bytes()
    tcb = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
    return report, amd_pki.make_pki(report[0x1A0:0x1E0], tcb)


def _mutated(report: bytes, offset: int, value: int) -> bytes:
    b = bytearray(report)
    b[offset] = value
    return bytes(b)


# --- SNP strict parsing (item 8) ---

def test_made_amd_chain_verifies_when_its_ark_is_pinned(amd):
    """Control for the tests below: the re-signed report verifies, and its CRL is read and checked."""
    report, pki = amd
    signed = amd_pki.resign(report, pki.vcek_key)
    with anchors.replaced_for_tests(amd=pki.pins):
        c = verify_snp(signed, certs=pki.certs(), at=NOW_2026, crl=pki.crl())
    assert c.crl_checked and c.product == "Milan"
    with pytest.raises(EvidenceError) as exc:
        verify_snp(signed, certs=pki.certs(), at=NOW_2026)
    assert exc.value.check == "snp.chain.root_pin"


def test_snp_reserved_bytes_after_signature_refused(vec):
    report, certs, at = vec.snp("virtee-milan")
    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("snp", _mutated(report, 0x2A0 + 144 + 100, 1), certs=certs, at=at)
    assert exc.value.check == "snp.signature.reserved"


@pytest.mark.parametrize("version", [0, 1, 6, 255])
def test_snp_undocumented_report_versions_refused(vec, version):
    report, certs, at = vec.snp("virtee-milan")
    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("snp", _mutated(report, 0, version), certs=certs, at=at)
    assert exc.value.check == "snp.version"


@pytest.mark.parametrize("version", [4, 5])
def test_snp_report_versions_4_and_5_verify(amd, version):
    """Current SNP firmware (ABI 1.57+, Turin) writes v4/v5 reports, same layout; v5 fills the mitigation
    vectors at 0x1F8/0x200. They were refused as undocumented."""
    report, pki = amd
    b = bytearray(report)
    b[0] = version
    b[0x1F8:0x208] = (3).to_bytes(8, "little") + (7).to_bytes(8, "little")
    with anchors.replaced_for_tests(amd=pki.pins):
        c = verify_snp(amd_pki.resign(bytes(b), pki.vcek_key), certs=pki.certs(), at=NOW_2026)
    assert c.version == version and c.product == "Milan"
    assert (c.launch_mit_vector, c.current_mit_vector) == ((3, 7) if version == 5 else (0, 0))


@pytest.mark.parametrize("signing_key", [2, 3, 6, 7])
def test_snp_signing_key_other_than_vcek_or_vlek_refused_at_parse(vec, signing_key):
    report, certs, at = vec.snp("virtee-milan")
    bad = _mutated(report, 0x48, (report[0x48] & ~0x1C) | signing_key << 2)
    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("snp", bad, certs=certs, at=at)
    assert exc.value.check == "snp.signing_key"
    with pytest.raises(MalformedEvidence):
        from enarx_pkg.attestation import dispatch

        dispatch.inspect("snp", bad)


def test_vcek_without_a_tcb_extension_refused(amd):
    """A VCEK that does not state its microcode SPL cannot vouch for the report's TCB."""
    report, _ = amd
    pki = amd_pki.make_pki(report[0x1A0:0x1E0], {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
                           drop="microcode")
    with anchors.replaced_for_tests(amd=pki.pins), pytest.raises(EvidenceError) as exc:
        verify_snp(amd_pki.resign(report, pki.vcek_key), certs=pki.certs(), at=NOW_2026)
    assert exc.value.check == "snp.vcek.extension" and "microcode" in str(exc.value)


@pytest.mark.parametrize("ask_name, ask_is_ca, check", [
    ("SEV-Milan", False, "snp.chain.path"),  # an ARK-signed certificate that is not a CA cannot issue a VCEK
    ("SEV-Genoa", True, "snp.chain.role"),  # a Genoa ASK under the Milan ARK
    ("SEV-VLEK-Milan", True, "snp.chain.role"),  # the VLEK signing CA issuing a VCEK
])
def test_amd_intermediate_roles(amd, ask_name, ask_is_ca, check):
    report, _ = amd
    tcb = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
    pki = amd_pki.make_pki(report[0x1A0:0x1E0], tcb, ask_name=ask_name, ask_is_ca=ask_is_ca)
    with anchors.replaced_for_tests(amd=pki.pins), pytest.raises(EvidenceError) as exc:
        verify_snp(amd_pki.resign(report, pki.vcek_key), certs=pki.certs(), at=NOW_2026)
    assert exc.value.check == check


# --- AMD and Intel CRLs (item 5) ---

@pytest.mark.parametrize("this, nxt", [(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
                                       (datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))])
def test_amd_crl_outside_its_window_refused(amd, this, nxt):
    report, pki = amd
    with anchors.replaced_for_tests(amd=pki.pins), pytest.raises(EvidenceError) as exc:
        verify_snp(amd_pki.resign(report, pki.vcek_key), certs=pki.certs(), at=NOW_2026,
                   crl=pki.crl(this=this, nxt=nxt))
    assert exc.value.check == "snp.crl.validity"


def test_amd_crl_revoking_the_ask_refused(amd):
    report, pki = amd
    with anchors.replaced_for_tests(amd=pki.pins), pytest.raises(EvidenceError) as exc:
        verify_snp(amd_pki.resign(report, pki.vcek_key), certs=pki.certs(), at=NOW_2026, crl=pki.crl(revoked=pki.ask))
    assert exc.value.check == "snp.crl.revoked"


def test_amd_crl_in_collateral_dir_is_read_as_a_crl(testvectors, tmp_path, amd, capsys):
    """Where fetch-collateral puts it: ``amd_crl.der`` is a CRL (here not AMD's: refused for its signature,
    where it used to break parsing as a certificate)."""
    from enarx_pkg._cli.main import main

    _, pki = amd
    col = tmp_path / "col"
    col.mkdir()
    (col / "ask_ark.pem").write_bytes((testvectors / "snp/roots/ask_ark_milan.pem").read_bytes())
    (col / "vcek.der").write_bytes((testvectors / "snp/virtee-milan/vcek.der").read_bytes())
    (col / "amd_crl.der").write_bytes(pki.crl())
    m = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    pol = tmp_path / "p.toml"
    pol.write_text(f'tees = ["snp"]\n[snp]\nmeasurements = ["{m}"]\n')
    rc = main(["attest", "verify", str(testvectors / VIRTEE), "--policy", str(pol), "--collateral", str(col)])
    err = capsys.readouterr().err
    assert rc == 78 and "snp.crl.signature" in err and "Traceback" not in err
    (col / "amd_crl.der").unlink()
    assert main(["attest", "verify", str(testvectors / VIRTEE), "--policy", str(pol), "--collateral", str(col)]) == 0


def test_intel_pck_crl_past_next_update_refused(vec):
    col = Collateral.from_dir(vec.root / COL)
    without_qe = dataclasses.replace(col, qe_identity=None)  # the QE identity expires first; take it out
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", vec.read(SPR), collateral=without_qe, at=datetime(2023, 7, 9, tzinfo=UTC))
    assert exc.value.check == "collateral.pck_crl.validity"


def test_root_crl_applies_to_the_tcb_signing_certificate(vec):
    pki = intel_pki.make_pki(vec.read(SPR))
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    crl = (x509.CertificateRevocationListBuilder().issuer_name(pki.root.cert.subject)
           .last_update(intel_pki.NB).next_update(intel_pki.NA)
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(pki.tcb_signing.cert.serial_number)
                                    .revocation_date(intel_pki.NB).build())
           .sign(pki.root.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    quote = intel_pki.requote(vec.read(SPR), pki.pck.pem + pki.platform_ca.pem + pki.root.pem, pki.pck.key)
    info = json.loads(vec.read(f"{COL}/tcbinfo.json"))["tcbInfo"]
    col = Collateral(tcb_info=intel_pki.signed_json("tcbInfo", info, pki.tcb_signing.key),
                     tcb_signing_chain=pki.tcb_signing.pem + pki.root.pem, root_crl=crl)
    with anchors.replaced_for_tests(intel=pki.root_pin), pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", quote, collateral=col, at=TDX_2023)
    assert exc.value.check == "collateral.root_crl.revoked" and "TCB Signing" in str(exc.value)


# --- policy: collateral required (item 3), SNP keys (item 9) ---

def _tdx_policy(claims, **collateral):
    return Policy.from_mapping({"tees": ["tdx"], "debug": True, "tdx": {"mrtd": [claims.mrtd]},
                                **({"collateral": collateral} if collateral else {})}, "t")


@pytest.mark.parametrize("missing, failed", [("qe_identity", "collateral.qe_identity"), ("pck_crl", "collateral.crl"),
                                             ("root_crl", "collateral.crl")])
def test_tdx_collateral_parts_required_by_default(vec, missing, failed):
    col = dataclasses.replace(Collateral.from_dir(vec.root / COL), **{missing: None})
    claims = verify_evidence("tdx", vec.read(SPR), collateral=col, at=TDX_2023)
    assert [c.name for c in appraise(claims, _tdx_policy(claims), expected_report_data=None).failed] == [failed]
    opted_out = _tdx_policy(claims, require=[])
    assert appraise(claims, opted_out, expected_report_data=None).ok


def test_full_2023_collateral_meets_the_default_requirements(vec):
    claims = verify_evidence("tdx", vec.read(SPR), collateral=Collateral.from_dir(vec.root / COL), at=TDX_2023)
    a = appraise(claims, _tdx_policy(claims), expected_report_data=None)
    assert a.ok and {"collateral.qe_identity", "collateral.crl", "tdx.tcb_status"} <= {c.name for c in a.checks}


def _snp_policy(claims, **sect):
    return Policy.from_mapping({"tees": ["snp"], "snp": {"measurements": [claims.measurement], **sect}}, "t")


def test_min_tcb_applies_to_committed_and_launch_tcb(vec):
    report, certs, _ = vec.snp("trustee-milan-vlek")  # reported ucode 217, committed/launch 219, current 220
    c = verify_evidence("snp", report, certs=certs, at=VLEK_VALID)
    pol = _snp_policy(c, vmpl=[1], min_tcb={"microcode": 218})
    assert [x.name for x in appraise(c, pol, expected_report_data=None).failed] == ["snp.tcb.microcode"]
    pol = _snp_policy(c, vmpl=[1], min_tcb={"microcode": 219}, min_tcb_applies_to=["committed", "launch"])
    assert appraise(c, pol, expected_report_data=None).ok
    pol = _snp_policy(c, vmpl=[1], min_tcb={"microcode": 220}, min_tcb_applies_to=["current", "launch"])
    assert [x.name for x in appraise(c, pol, expected_report_data=None).failed] == ["snp.launch_tcb.microcode"]


def test_vmpl_defaults_to_zero_only(vec):
    report, certs, _ = vec.snp("trustee-milan-vlek")  # an AWS guest at VMPL 1
    c = verify_evidence("snp", report, certs=certs, at=VLEK_VALID)
    assert [x.name for x in appraise(c, _snp_policy(c), expected_report_data=None).failed] == ["snp.vmpl"]
    assert appraise(c, _snp_policy(c, vmpl=[0, 1]), expected_report_data=None).ok


def test_smt_and_migration_agent_keys(vec):
    report, certs, at = vec.snp("virtee-milan")  # policy 0x30000: SMT allowed, no migration agent
    c = verify_evidence("snp", report, certs=certs, at=at)
    assert appraise(c, _snp_policy(c), expected_report_data=None).ok
    assert [x.name for x in appraise(c, _snp_policy(c, allow_smt=False), expected_report_data=None).failed] == \
        ["snp.smt"]
    with_ma = dataclasses.replace(c, migrate_ma=True)
    assert [x.name for x in appraise(with_ma, _snp_policy(c), expected_report_data=None).failed] == \
        ["snp.migration_agent"]
    assert appraise(with_ma, _snp_policy(c, allow_migration_agent=True), expected_report_data=None).ok


# --- CCA outer structure (item 8) ---

def _cca(vec):
    return vec.read("cca/trustee-fvp/token.cbor"), [vec.read("cca/trustee-fvp/cpak-pub.json")]


def test_cca_trailing_bytes_refused(vec):
    token, cpak = _cca(vec)
    assert verify_evidence("cca", token, certs=cpak).tee == "cca"
    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("cca", token + b"\x00", certs=cpak)
    assert exc.value.check == "cca.cbor"


def _rewrap(token: bytes, edit) -> bytes:
    outer = dict(cbor2.loads(token).value)
    realm = cbor2.loads(outer[44241])
    realm = cbor2.CBORTag(realm.tag, list(realm.value))
    edit(outer, realm)
    outer[44241] = cbor2.dumps(realm)
    return cbor2.dumps(cbor2.CBORTag(399, outer))


def test_cca_unprotected_header_must_be_a_map(vec):
    """The unprotected header is not signed: a list there was accepted before; now the token is refused."""
    token, cpak = _cca(vec)

    def unprotected_list(_outer, realm):
        realm.value[1] = [1, 2, 3]

    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("cca", _rewrap(token, unprotected_list), certs=cpak)
    assert exc.value.check == "cca.cose"


def test_cca_extra_outer_entry_refused(vec):
    token, cpak = _cca(vec)

    def extra(outer, _realm):
        outer[1] = b"smuggled"

    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("cca", _rewrap(token, extra), certs=cpak)
    assert exc.value.check == "cca.tokens"


def test_vcek_with_a_duplicated_extension_is_malformed_not_a_traceback(vec):
    """Found by the mutation fuzzer: cryptography raises DuplicateExtension, which is not a ValueError."""
    report, certs, at = vec.snp("virtee-milan")
    tee_oid = bytes.fromhex("060a2b060104019c7801030" + "2")  # 1.3.6.1.4.1.3704.1.3.2 (teeSPL)
    assert certs[0].count(tee_oid) == 1
    dup = certs[0].replace(tee_oid, tee_oid[:-1] + b"\x01")  # now a second blSPL extension
    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("snp", report, certs=[dup, certs[1]], at=at)
    assert "Duplicate" in str(exc.value)
