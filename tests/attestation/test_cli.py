"""The CLI as a user runs it: `attest inspect|verify`, `platform info`, with exit codes."""

from __future__ import annotations

import json

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.attestation.sim import SimPlatform

VIRTEE_M = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"


@pytest.fixture
def certs_dir(tmp_path, testvectors):
    """A --certs directory assembled by the test (symlinks to the vectors, nothing copied into the repo)."""
    d = tmp_path / "certs"
    d.mkdir()
    (d / "vcek.der").symlink_to(testvectors / "snp/virtee-milan/vcek.der")
    (d / "chain.pem").symlink_to(testvectors / "snp/roots/ask_ark_milan.pem")
    return d


def _policy(tmp_path, text: str):
    p = tmp_path / "policy.toml"
    p.write_text(text)
    return str(p)


def test_inspect_json(testvectors, capsys):
    assert main(["attest", "inspect", str(testvectors / "snp/virtee-milan/report.hex"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is False and out["claims"]["measurement"] == VIRTEE_M


def test_inspect_text_warns_not_verified(testvectors, capsys):
    assert main(["attest", "inspect", str(testvectors / "tdx/azure-v4/quote.bin")]) == 0
    cap = capsys.readouterr()
    assert "NOT verified" in cap.err and "mrtd: 024a32b0" in cap.out


def test_verify_accepts(testvectors, tmp_path, certs_dir, capsys):
    pol = _policy(tmp_path, f'tees = ["snp"]\n[snp]\nmeasurements = ["{VIRTEE_M}"]\nmin_tcb = {{ snp = 8 }}\n')
    rc = main(["attest", "verify", str(testvectors / "snp/virtee-milan/report.bin"), "--policy", pol,
               "--certs", str(certs_dir)])
    out = capsys.readouterr().out
    assert rc == 0 and "PASS  snp.tcb.snp" in out and out.rstrip().endswith("accepted")


def test_verify_refuses_debug_listing_checks(testvectors, tmp_path, capsys):
    d = testvectors / "snp/gsg-milan-debug"
    m = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
    pol = _policy(tmp_path, f'tees = ["snp"]\n[snp]\nmeasurements = ["{m}"]\n')
    rc = main(["attest", "verify", str(d / "report.bin"), "--policy", pol, "--certs", str(d),
               "--collateral", str(testvectors / "snp/roots"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 78 and out["ok"] is False and [c["name"] for c in out["checks"] if not c["passed"]] == ["debug"]


def test_verify_vlek_time(testvectors, tmp_path, capsys):
    d = testvectors / "snp/trustee-milan-vlek"
    m = "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0"
    pol = _policy(tmp_path, f'tees = ["snp"]\n[snp]\nmeasurements = ["{m}"]\nsigning_keys = ["vlek"]\n'
                  'vmpl = [1]\n')  # AWS runs the guest at VMPL 1; only VMPL 0 is accepted by default
    args = ["attest", "verify", str(d / "report.bin"), "--policy", pol, "--certs", str(d),
            "--collateral", str(testvectors / "snp/roots")]
    assert main([*args, "--at", "2025-06-01T00:00:00Z"]) == 0
    assert main([*args, "--at", "2026-11-26"]) == 78
    assert "expired" in capsys.readouterr().err
    assert main([*args, "--at", "yesterday"]) == 2


def test_verify_tdx_with_collateral(testvectors, tmp_path, capsys):
    q = testvectors / "tdx/trustee-v4-spr/quote.dat"
    mrtd = "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031"
    pol = _policy(tmp_path, f'tees = ["tdx"]\n[tdx]\nmrtd = ["{mrtd}"]\ndebug = true\n')
    rc = main(["attest", "verify", str(q), "--policy", pol, "--at", "2023-06-20T00:00:00Z",
               "--collateral", str(testvectors / "tdx/collateral-2023-06-fmspc-50806f000000")])
    out = capsys.readouterr().out
    assert rc == 0 and "PASS  tdx.tcb_status: observed UpToDate" in out


def test_verify_malformed_exit_65(tmp_path, capsys):
    ev = tmp_path / "short.bin"
    ev.write_bytes(b"\x02\x00\x00\x00" + bytes(600))
    pol = _policy(tmp_path, 'tees = ["snp"]\n')
    assert main(["attest", "verify", str(ev), "--policy", pol, "--tee", "snp"]) == 65
    assert "snp.length" in capsys.readouterr().err


def test_verify_sim_warns_loudly(tmp_path, capsys):
    plat = SimPlatform.load_or_create(tmp_path)
    ev = tmp_path / "sim.bin"
    ev.write_bytes(plat.issue(bytes(64), bytes(48)))
    pol = _policy(tmp_path, f'tees = ["sim"]\n[sim]\ninsecure = true\nkeys = ["{plat.fingerprint}"]\n'
                            f'measurements = ["{"00" * 48}"]\n')
    assert main(["attest", "verify", str(ev), "--policy", pol]) == 0
    assert "SIM EVIDENCE" in capsys.readouterr().err


def test_platform_info_json(capsys):
    assert main(["platform", "info", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "configfs-tsm" in out["interfaces"] and "sim" in out["tees"]


@pytest.mark.internet
@pytest.mark.skip(reason="needs the internet (AMD KDS)")
def test_fetch_collateral_from_kds(testvectors, tmp_path):
    assert main(["attest", "fetch-collateral", str(testvectors / "snp/virtee-milan/report.bin"),
                 "--product", "Milan", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "vcek.der").exists()


def test_fetch_plans_name_the_right_urls(testvectors):
    from enarx_pkg.attestation.fetch import plan_for

    snp = plan_for("snp", (testvectors / "snp/virtee-milan/report.bin").read_bytes(), "Milan")
    assert snp[0].url.startswith("https://kdsintf.amd.com/vcek/v1/Milan/d49554ec") and "snpSPL=8" in snp[0].url
    tdx = plan_for("tdx", (testvectors / "tdx/azure-v4/quote.bin").read_bytes())
    assert tdx[0].url.endswith("/tdx/certification/v4/tcb?fmspc=00806f050000")
