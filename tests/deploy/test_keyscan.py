"""``host keyscan``: a policy written from a host's report on first contact (like ssh-keyscan).

Real sim agent and keeps for the round trip; real SNP/TDX/SGX vectors for what gets pinned per TEE.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from enarx_pkg import deploy as d
from enarx_pkg import keyscan, verify
from enarx_pkg._cli.main import main
from enarx_pkg.attestation import policy as ap
from enarx_pkg.attestation import verify_evidence
from enarx_pkg.errors import AttestationError
from tests.deploy.conftest import MARKER, SECRET
from tests.deploy.proxy import Proxy, running


def test_keyscan_policy_makes_deploy_succeed(published, sim_host, tmp_path, capsys, monkeypatch) -> None:
    assert main(["host", "keyscan", sim_host.url, "--host-token-file", str(sim_host.token_file)]) == 0
    out, err = capsys.readouterr()
    assert "NOT authenticated" in err and "trusted source" in err and "--insecure-sim" in err
    policy = tmp_path / "policy.toml"
    policy.write_text(out)
    pinned = tomllib.loads(out)
    assert pinned == {"tees": ["sim"], "sim": {"insecure": True, "keys": [sim_host.fingerprint],
                                              "measurements": [sim_host.measurement], "min_svn": 1}}
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    [r] = d.deploy(d.DeploySettings(ref=published.plain, hosts=(sim_host.url,), policy_path=policy,
                                    signer=verify.KeyPolicy(published.signer_pub.read_bytes()),
                                    host_token=sim_host.token, insecure_sim=True))
    assert r.error is None, r.error and r.error.message
    assert MARKER in r.stdout and r.status == 1


def test_keyscan_json(sim_host, capsys) -> None:
    assert main(["host", "keyscan", sim_host.url, "--host-token-file", str(sim_host.token_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tee"] == "sim" and report["policy"]["sim"]["keys"] == [sim_host.fingerprint]
    assert tomllib.loads(report["toml"]) == report["policy"] and "NOT authenticated" in report["warning"]


def test_keyscan_destroys_its_keep(sim_host) -> None:
    proxy = Proxy(sim_host.url)
    with running(proxy):
        keyscan.keyscan(proxy.url, sim_host.token)
    [create] = [e for e in proxy.log if e.path == "/v1/keeps"]
    keep_id = json.loads(create.response)["keep_id"]
    assert f"DELETE /v1/keeps/{keep_id}" in proxy.paths()


def test_keyscan_refuses_evidence_from_another_keep(sim_host) -> None:
    """Binding: the host answers with keep A's key but keep B's genuine evidence for the same nonce."""
    nonces: list[bytes] = []

    def note(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if path == "/v1/keeps":
            nonces.append(body)
        return path, body

    def swap(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "POST" and path == "/v1/keeps":
            other = httpx.post(sim_host.url + "/v1/keeps", headers={"Authorization": f"Bearer {sim_host.token}"},
                               json={"nonce": json.loads(nonces[-1])["nonce"]},
                               timeout=60).json()  # the pool may have to start this keep cold
            mine = json.loads(body)
            mine["evidence"] = other["evidence"]
            return json.dumps(mine).encode()
        return body

    proxy = Proxy(sim_host.url, note, swap)
    with running(proxy), pytest.raises(AttestationError, match="not bound"):
        keyscan.keyscan(proxy.url, sim_host.token)
    assert any(p.startswith("DELETE /v1/keeps/") for p in proxy.paths())  # the scanned keep is destroyed anyway


def test_keyscan_refuses_a_platform_report_that_disagrees_with_the_evidence(sim_host) -> None:
    def other_key(method: str, path: str, status: int, body: bytes) -> bytes:
        if path == "/v1/platform":
            return json.dumps(json.loads(body) | {"sim_key_fingerprint": "sha256:" + "0" * 64}).encode()
        return body

    proxy = Proxy(sim_host.url, on_response=other_key)
    with running(proxy), pytest.raises(AttestationError, match="reports sim key"):
        keyscan.keyscan(proxy.url, sim_host.token)


def test_keyscan_without_the_token_is_refused(sim_host) -> None:
    assert main(["host", "keyscan", sim_host.url]) == 69  # no token: the agent answers 401


# -- what is pinned for hardware TEEs, from real evidence ----------------------------------------------

NOW = datetime(2026, 6, 1, tzinfo=UTC)
VECTORS = {  # tee, evidence, certificates, what the policy must pin
    "snp-milan": ("snp", "snp/virtee-milan/report.bin", ["snp/virtee-milan/vcek.der", "snp/roots/ask_ark_milan.pem"],
                  {"products": ["Milan"], "min_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}}),
    "tdx": ("tdx", "tdx/gtdx-v4-spr-e4/quote.dat", [], {}),
    "sgx": ("sgx", "sgx/occlum-v3/quote.dat", [], {"isvprodid": [0], "min_tcb": {"isvsvn": 0}}),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_pins_from_real_evidence_accept_that_evidence(testvectors: Path, name: str) -> None:
    tee, evidence, certs, expected = VECTORS[name]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*serial number.*")  # AMD certificates have serial 0
        claims = verify_evidence(tee, (testvectors / evidence).read_bytes(),
                                 certs=[(testvectors / c).read_bytes() for c in certs], at=NOW)
    policy, notes = keyscan.pins(claims)
    section = policy[tee]
    assert policy["tees"] == [tee] and expected.items() <= section.items()
    if tee == "snp":
        assert section["measurements"] == [claims.measurement]
    if tee == "tdx":
        assert section["mrtd"] == [claims.mrtd]
        assert [section[f"rtmr{i}"] for i in range(4)] == [[r] for r in claims.rtmr]
    if tee == "sgx":
        assert section["mrenclave"] == [claims.mrenclave] and section["mrsigner"] == [claims.mrsigner]
    loaded = ap.Policy.from_mapping(tomllib.loads(keyscan.render(policy, "vector")), "vector")
    failed = {c.name for c in ap.appraise(claims, loaded, expected_report_data=None).failed}
    # debug stays forbidden; TCB status, QE identity and CRLs (required by default for TDX/SGX) need collateral
    assert failed <= {"debug", f"{tee}.tcb_status", "collateral.qe_identity", "collateral.crl", "tdx.sept_ve_disable"}
    assert ("tdx.sept_ve_disable" in failed) == any("SEPT_VE_DISABLE" in n for n in notes)
    assert ("debug" in failed) == claims.debug == any("debug" in n for n in notes)
