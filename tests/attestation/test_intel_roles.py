"""Intel certificate roles, collateral kinds and TCB status rules, as Intel's QVL applies them.

Chains are made in the test (``intel_pki``) with their root pinned in place of Intel's through
``anchors.replaced_for_tests``; status rules are played on the real collateral's values, mutated.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from enarx_pkg.attestation import EvidenceError, MalformedEvidence, anchors, dcap, tcb, verify_evidence
from enarx_pkg.attestation.collateral import Collateral

from . import intel_pki
from .conftest import TDX_2023

SPR = "tdx/trustee-v4-spr/quote.dat"
COL = "tdx/collateral-2023-06-fmspc-50806f000000"


@pytest.fixture(scope="module")
def pki(testvectors):
    return intel_pki.make_pki((testvectors / SPR).read_bytes())


def _tcb_info(vec) -> dict:
    return json.loads(vec.read(f"{COL}/tcbinfo.json"))["tcbInfo"]


def test_made_pki_verifies_when_its_root_is_pinned(vec, pki):
    """Control: with correct roles the made chain and collateral verify, so the refusals below are the roles."""
    quote = intel_pki.requote(vec.read(SPR), pki.pck.pem + pki.platform_ca.pem + pki.root.pem, pki.pck.key)
    col = Collateral(tcb_info=intel_pki.signed_json("tcbInfo", _tcb_info(vec), pki.tcb_signing.key),
                     tcb_signing_chain=pki.tcb_signing.pem + pki.root.pem)
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", quote, collateral=col, at=TDX_2023)  # not Intel's root: refused by default
    assert exc.value.check == "pck.chain.root_pin"
    with anchors.replaced_for_tests(intel=pki.root_pin):
        c = verify_evidence("tdx", quote, collateral=col, at=TDX_2023)
    assert c.tcb is not None and c.tcb.status == "UpToDate"


def test_pck_that_is_not_a_ca_cannot_issue_a_pck(vec, pki):
    forged = intel_pki.issue("Intel SGX PCK Certificate", pki.pck, ca=False, org="Forged",
                             sgx_ext=pki.pck.cert.extensions.get_extension_for_oid(intel_pki.SGX_EXT).value.value)
    quote = intel_pki.requote(vec.read(SPR), forged.pem + pki.pck.pem + pki.platform_ca.pem + pki.root.pem,
                              forged.key)
    with anchors.replaced_for_tests(intel=pki.root_pin), pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", quote, at=TDX_2023)
    assert exc.value.check == "pck.chain.path" and "RFC 5280" in str(exc.value)


def test_pck_issued_directly_by_the_root_refused(vec, pki):
    """Signatures and CA flags are fine, but a PCK must come from the Platform/Processor CA."""
    direct = intel_pki.issue("Intel SGX PCK Certificate", pki.root, ca=False,
                             sgx_ext=pki.pck.cert.extensions.get_extension_for_oid(intel_pki.SGX_EXT).value.value)
    quote = intel_pki.requote(vec.read(SPR), direct.pem + pki.root.pem, direct.key)
    with anchors.replaced_for_tests(intel=pki.root_pin), pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", quote, at=TDX_2023)
    assert exc.value.check == "pck.chain.role"


def test_tcb_info_signed_by_a_pck_refused(vec, pki):
    """The PCK key signs a tcbInfo and the PCK chain is offered as its signing chain: not the TCB Signing role."""
    quote = intel_pki.requote(vec.read(SPR), pki.pck.pem + pki.platform_ca.pem + pki.root.pem, pki.pck.key)
    col = Collateral(tcb_info=intel_pki.signed_json("tcbInfo", _tcb_info(vec), pki.pck.key),
                     tcb_signing_chain=pki.pck.pem + pki.platform_ca.pem + pki.root.pem)
    with anchors.replaced_for_tests(intel=pki.root_pin), pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", quote, collateral=col, at=TDX_2023)
    assert exc.value.check == "collateral.signing_chain.role"


def test_tcb_signing_certificate_that_is_a_ca_refused(vec, pki):
    ca_signer = intel_pki.issue("Intel SGX TCB Signing", pki.root, ca=True, path_length=0)
    quote = intel_pki.requote(vec.read(SPR), pki.pck.pem + pki.platform_ca.pem + pki.root.pem, pki.pck.key)
    col = Collateral(tcb_info=intel_pki.signed_json("tcbInfo", _tcb_info(vec), ca_signer.key),
                     tcb_signing_chain=ca_signer.pem + pki.root.pem)
    with anchors.replaced_for_tests(intel=pki.root_pin), pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", quote, collateral=col, at=TDX_2023)
    assert exc.value.check == "collateral.signing_chain.path"


def test_pin_override_is_scoped(pki):
    with anchors.replaced_for_tests(intel=pki.root_pin):
        assert anchors.intel_roots() == {pki.root_pin}
    assert anchors.intel_roots() == {anchors.INTEL_SGX_ROOT_SPKI_SHA256}


# --- collateral kinds (item 4) and QVL status rules (item 7), on the real collateral's values ---

def _eval(vec, path, info, qe=None):
    data = vec.read(path)
    return tcb.evaluate(dcap.parse_quote(data), dcap.inspect_quote(data).pck, info, qe)


def _qe(vec) -> dict:
    return json.loads(vec.read(f"{COL}/qe_identity.json"))["enclaveIdentity"]


@pytest.mark.parametrize("field, value", [("id", "SGX"), ("version", 2), ("id", None)])
def test_tcb_info_for_another_tee_or_format_refused(vec, field, value):
    info = _tcb_info(vec)
    info[field] = value
    with pytest.raises(EvidenceError) as exc:
        _eval(vec, SPR, info)
    assert exc.value.check == "collateral.tcb_info.kind"


@pytest.mark.parametrize("field, value", [("id", "QE"), ("version", 1)])
def test_sgx_qe_identity_for_a_td_quote_refused(vec, field, value):
    qe = _qe(vec)
    qe[field] = value
    with pytest.raises(EvidenceError) as exc:
        _eval(vec, SPR, _tcb_info(vec), qe)
    assert exc.value.check == "collateral.qe_identity.kind"


def test_tdx_tcb_info_for_an_sgx_quote_refused(vec):
    with pytest.raises(EvidenceError) as exc:
        _eval(vec, "sgx/occlum-v3/quote.dat", _tcb_info(vec))
    assert exc.value.check == "collateral.tcb_info.kind"


def test_pce_id_required(vec):
    info = _tcb_info(vec)
    del info["pceId"]
    with pytest.raises(MalformedEvidence) as exc:
        _eval(vec, SPR, info)
    assert exc.value.check == "collateral.pceid"


@pytest.mark.parametrize("level, qe, expected", [
    ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
    ("ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
    ("SWHardeningNeeded", "OutOfDate", "OutOfDate"),
    ("ConfigurationNeeded", "UpToDate", "ConfigurationNeeded"),
    ("UpToDate", "Revoked", "Revoked"),
])
def test_status_converges_as_qvl(vec, level, qe, expected):
    info, ident = _tcb_info(vec), _qe(vec)
    info["tcbLevels"][0]["tcbStatus"] = level
    ident["tcbLevels"][0]["tcbStatus"] = qe
    ev = _eval(vec, SPR, info, ident)
    assert (ev.status, ev.qe_status) == (expected, qe)


def test_unknown_status_refused(vec):
    info = _tcb_info(vec)
    info["tcbLevels"][0]["tcbStatus"] = "Fine"
    with pytest.raises(MalformedEvidence):
        _eval(vec, SPR, info)


V5 = "tdx/gtdx-v5-fmspc-90c06f000000"


def _v5_info(vec) -> dict:
    return json.loads(vec.read(f"{V5}/tcbinfo.json"))["tcbInfo"]


def test_tdx_module_advisories_reported_and_converged(vec):
    info = _v5_info(vec)
    module = next(m for m in info["tdxModuleIdentities"] if m["id"] == "TDX_01")
    module["tcbLevels"][0]["tcb"]["isvsvn"] = 12  # the quote's module isvsvn 11 now falls to the OutOfDate level
    ev = _eval(vec, f"{V5}/quote.dat", info)
    assert (ev.status, ev.module_status) == ("OutOfDate", "OutOfDate")
    assert ev.module_advisory_ids == ("INTEL-SA-01036", "INTEL-SA-01099")
    from dataclasses import replace

    from enarx_pkg.attestation.policy import Policy, appraise

    claims = replace(dcap.inspect_quote(vec.read(f"{V5}/quote.dat")), tcb=ev)
    pol = Policy.from_mapping({"tees": ["tdx"], "collateral": {"require": []}, "tdx": {"mrtd": [claims.mrtd]}}, "t")
    [failed] = appraise(claims, pol, expected_report_data=None).failed
    assert (failed.name, failed.observed) == ("tdx.tcb_status", "OutOfDate (advisories INTEL-SA-01036, INTEL-SA-01099)")


def test_tdx_module_identity_is_the_matching_tdx_xx_entry(vec):
    """The TDX_01 entry's MRSIGNER applies, even though the generic tdxModule still matches."""
    info = _v5_info(vec)
    next(m for m in info["tdxModuleIdentities"] if m["id"] == "TDX_01")["mrsigner"] = "ab" * 48
    with pytest.raises(EvidenceError) as exc:
        _eval(vec, f"{V5}/quote.dat", copy.deepcopy(info))
    assert exc.value.check == "collateral.tdx_module"
    info["tdxModuleIdentities"] = [m for m in info["tdxModuleIdentities"] if m["id"] != "TDX_01"]
    with pytest.raises(EvidenceError, match="TDX_01"):
        _eval(vec, f"{V5}/quote.dat", info)


# --- QE identity and CRLs are required; present-but-stale is a refusal (item 3) ---

def test_expired_qe_identity_is_a_refusal(vec):
    """2023-07-10: the tcbInfo is still current, the QE identity expired 2023-07-08: refused, not skipped."""
    col = Collateral.from_dir(vec.root / COL)
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", vec.read(SPR), collateral=col, at=datetime(2023, 7, 10, tzinfo=UTC))
    assert exc.value.check == "collateral.qe_identity.validity"
