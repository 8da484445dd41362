"""What deploy verifies an offer with: the policy's [collateral] folder (SNP too) and product-aware fetch plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from enarx_pkg.attestation import EvidenceError, verify_evidence
from enarx_pkg.attestation.fetch import plan_for
from enarx_pkg.attestation.gather import collateral_for
from enarx_pkg.errors import InputError, UsageError

from . import amd_pki
from .conftest import NOW_2026

HCL = "snp/azure-genoa-vtpm/hcl-report.bin"


def test_snp_plan_uses_the_reports_product(testvectors):
    """A v3 report's CPUID says Genoa: VCEK, chain and CRL come from the Genoa KDS paths."""
    urls = [d.url for d in plan_for("snp", (testvectors / HCL).read_bytes())]
    assert all("/vcek/v1/Genoa/" in u for u in urls) and "/vcek/v1/Genoa/0506ffba" in urls[0]
    assert [d.file for d in plan_for("snp", (testvectors / HCL).read_bytes())] == ["vcek.der", "ask_ark.pem",
                                                                                 "amd_crl.der"]


def test_snp_plan_for_a_v2_report_takes_the_product_from_its_vcek(testvectors):
    report = (testvectors / "snp/virtee-milan/report.bin").read_bytes()
    with pytest.raises(UsageError, match="--product"):
        plan_for("snp", report)  # v2 has no CPUID: no silent guess
    vcek = (testvectors / "snp/virtee-milan/vcek.der").read_bytes()
    assert "/vcek/v1/Milan/d49554ec" in plan_for("snp", report, certs=[vcek])[0].url
    turin = plan_for("snp", report, "Turin")[0].url  # an explicit product wins; Turin hwIDs are 8 bytes
    assert "/vcek/v1/Turin/d49554ec717f4e5b?fmcSPL=" in turin
    with pytest.raises(UsageError, match="unknown SNP product"):
        plan_for("snp", report, "Naples")


def test_intel_plan_fetches_the_crl_of_the_pck_issuer(testvectors):
    plan = plan_for("tdx", (testvectors / "tdx/trustee-v4-spr/quote.dat").read_bytes())
    assert any(d.url.endswith("pckcrl?ca=platform&encoding=der") for d in plan)


def _snp_folder(testvectors: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "vcek.pem").write_bytes((testvectors / "snp/azure-genoa-vtpm/vcek.pem").read_bytes())
    (folder / "ask_ark.pem").write_bytes((testvectors / "snp/roots/ask_ark_genoa.pem").read_bytes())


def test_snp_offer_verified_with_the_policy_collateral_folder(testvectors, tmp_path):
    """The host sent no certificate table; the VCEK/ASK/ARK in the policy's folder complete the chain."""
    evidence = (testvectors / HCL).read_bytes()
    assert collateral_for({}, "snp", evidence, base=tmp_path, cache=tmp_path / "cache") is None
    with pytest.raises(EvidenceError, match="no SEV-VCEK"):
        verify_evidence("snp", evidence, at=NOW_2026)
    _snp_folder(testvectors, tmp_path / "pol" / "collateral")
    col = collateral_for({"dir": "collateral"}, "snp", evidence, base=tmp_path / "pol", cache=tmp_path / "cache")
    claims = verify_evidence("snp", evidence, collateral=col, at=NOW_2026)
    assert claims.product == "Genoa" and not claims.crl_checked


def test_snp_folder_crl_is_applied(testvectors, tmp_path):
    """``amd_crl.der`` in the folder is checked (this one is not AMD's, so the offer is refused)."""
    evidence = (testvectors / HCL).read_bytes()
    folder = tmp_path / "collateral"
    _snp_folder(testvectors, folder)
    pki = amd_pki.make_pki(bytes(64), {"bootloader": 0, "tee": 0, "snp": 0, "microcode": 0})
    (folder / "amd_crl.der").write_bytes(pki.crl())
    col = collateral_for({"source": "offline", "dir": str(folder)}, "snp", evidence, base=tmp_path, cache=tmp_path)
    assert col is not None and col.amd_crl is not None and len(col.certs) == 2  # the CRL is not a certificate
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("snp", evidence, collateral=col, at=NOW_2026)
    assert exc.value.check == "snp.crl.signature"


@pytest.mark.parametrize("table, message", [({"source": "evidence", "dir": "x"}, 'source = "evidence"'),
                                            ({"source": "offline"}, "needs dir"),
                                            ({"dir": "missing"}, "does not exist")])
def test_inconsistent_or_missing_collateral_is_a_policy_error(tmp_path, table, message):
    with pytest.raises(InputError, match=message):
        collateral_for(table, "snp", b"", base=tmp_path, cache=tmp_path / "cache")


def test_fetch_for_sim_fetches_nothing(tmp_path):
    assert collateral_for({"source": "fetch"}, "sim", b"x", base=tmp_path, cache=tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()


def test_deploy_verifies_snp_offers_with_the_policy_folder(testvectors, tmp_path):
    """deploy's call site: the policy file's [collateral] dir (relative to it) supplies the SNP chain."""
    from enarx_pkg import deploy
    from enarx_pkg.attestation.policy import load_policy

    evidence = (testvectors / HCL).read_bytes()
    _snp_folder(testvectors, tmp_path / "pol" / "snp-collateral")
    policy_path = tmp_path / "pol" / "policy.toml"
    m = "f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae"
    policy_path.write_text(f'tees = ["snp"]\n[snp]\nmeasurements = ["{m}"]\n[collateral]\ndir = "snp-collateral"\n')
    col = deploy._collateral(load_policy(policy_path), policy_path, "snp", evidence)
    assert verify_evidence("snp", evidence, collateral=col, at=NOW_2026).measurement == m
