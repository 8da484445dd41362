"""Policy: schema matches the code, validation errors name the key, appraisal lists every check."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from enarx_pkg.attestation import verify_evidence
from enarx_pkg.attestation.policy import Policy, appraise, json_schema, load_policy
from enarx_pkg.attestation.sim import SimPlatform
from enarx_pkg.errors import AttestationError, InputError
from tests.conftest import REPO

from .conftest import NOW_2026

GSG_MEASUREMENT = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
VIRTEE_MEASUREMENT = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"


def test_committed_schema_matches_code():
    committed = json.loads((REPO / "schemas/policy.schema.json").read_text())
    assert committed == json_schema()
    jsonschema.Draft202012Validator.check_schema(committed)


@pytest.mark.parametrize("bad, key", [
    ({"tees": ["nope"]}, "tees.0"),
    ({"tees": ["snp"], "snp": {"measurements": ["abc"]}}, "snp.measurements.0"),
    ({"tees": ["snp"], "snp": {"colour": "red"}}, "snp"),
    ({"tees": ["sim"], "sim": {"keys": ["md5:00"]}}, "sim.keys.0"),
    ({"snp": {}}, "(top level)"),
])
def test_invalid_policy_names_key(bad, key):
    with pytest.raises(InputError, match=f"policy key {re.escape(key)}"):
        Policy.from_mapping(bad, "test.toml")


def test_load_from_enarx_toml_attestation_table(tmp_path):
    p = tmp_path / "Enarx.toml"
    p.write_text(f'args = []\n[attestation]\ntees = ["snp"]\n[attestation.snp]\nmeasurements = ["{GSG_MEASUREMENT}"]\n')
    pol = load_policy(p)
    assert pol.tees == ("snp",) and pol.section("snp")["measurements"] == [GSG_MEASUREMENT]
    (tmp_path / "bad.toml").write_text("tees = [")
    with pytest.raises(InputError, match="not valid TOML"):
        load_policy(tmp_path / "bad.toml")


def _snp_policy(**snp):
    return Policy.from_mapping({"tees": ["snp"], "snp": {"measurements": [VIRTEE_MEASUREMENT], **snp}}, "t")


@pytest.fixture(scope="module")
def virtee(vec):
    report, certs, at = vec.snp("virtee-milan")
    return verify_evidence("snp", report, certs=certs, at=at)


def test_accepts_matching_evidence(virtee):
    a = appraise(virtee, _snp_policy(min_tcb={"bootloader": 3, "microcode": 115}, products=["Milan"]),
                 expected_report_data=virtee.report_data)
    assert a.ok, a.failed
    assert {c.name for c in a.checks} >= {"tee", "report_data", "debug", "snp.measurements", "snp.tcb.microcode",
                                          "snp.products"}
    a.raise_for_failure()


def test_debug_set_refused_with_valid_crypto(vec):
    report, certs, at = vec.snp("gsg-milan-debug")
    claims = verify_evidence("snp", report, certs=certs, at=at)
    a = appraise(claims, Policy.from_mapping({"tees": ["snp"], "snp": {"measurements": [GSG_MEASUREMENT]}}, "t"),
                 expected_report_data=None)
    assert [c.name for c in a.failed] == ["debug"]
    with pytest.raises(AttestationError, match="debug"):
        a.raise_for_failure()


def test_report_data_mismatch_refused(virtee):
    a = appraise(virtee, _snp_policy(), expected_report_data=bytes(64))
    assert [c.name for c in a.failed] == ["report_data"]


def test_tcb_below_minimum_refused(virtee):
    a = appraise(virtee, _snp_policy(min_tcb={"snp": 9, "microcode": 200}), expected_report_data=None)
    assert sorted(c.name for c in a.failed) == ["snp.tcb.microcode", "snp.tcb.snp"]


def test_measurement_not_listed_refused(virtee):
    a = appraise(virtee, Policy.from_mapping({"tees": ["snp"], "snp": {"measurements": [GSG_MEASUREMENT]}}, "t"),
                 expected_report_data=None)
    assert [c.name for c in a.failed] == ["snp.measurements"]


def test_no_measurement_pinned_refused(virtee):
    a = appraise(virtee, Policy.from_mapping({"tees": ["snp"]}, "t"), expected_report_data=None)
    assert [c.name for c in a.failed] == ["measurement"]


def test_tee_not_accepted_and_every_failure_listed(virtee):
    pol = Policy.from_mapping({"tees": ["tdx"], "snp": {"measurements": [GSG_MEASUREMENT], "vmpl": [1]}}, "t")
    a = appraise(virtee, pol, expected_report_data=bytes(64))
    assert {c.name for c in a.failed} == {"tee", "report_data", "snp.measurements", "snp.vmpl"}
    with pytest.raises(AttestationError) as exc:
        a.raise_for_failure()
    for name in ("tee", "report_data", "snp.measurements", "snp.vmpl"):
        assert name in exc.value.message


def test_tdx_policy_with_collateral_status(vec):
    from datetime import UTC, datetime

    from enarx_pkg.attestation.collateral import Collateral

    col = Collateral.from_dir(vec.root / "tdx/collateral-2023-06-fmspc-50806f000000")
    claims = verify_evidence("tdx", vec.read("tdx/trustee-v4-spr/quote.dat"), collateral=col,
                             at=datetime(2023, 6, 20, tzinfo=UTC))
    pol = Policy.from_mapping({"tees": ["tdx"], "tdx": {"mrtd": [claims.mrtd], "rtmr0": [claims.rtmr[0]],
                                                        "min_tcb": {"pcesvn": 11, "tdx_module": 3}}}, "t")
    a = appraise(claims, pol, expected_report_data=None)
    assert [c.name for c in a.failed] == ["debug"]  # UpToDate, but a debug TD
    no_col = verify_evidence("tdx", vec.read("tdx/gtdx-v4-spr-e4/quote.dat"), at=NOW_2026)
    pol2 = Policy.from_mapping({"tees": ["tdx"], "tdx": {"mrtd": [no_col.mrtd]}}, "t")
    assert [c.name for c in appraise(no_col, pol2, expected_report_data=None).failed] == \
        ["tdx.sept_ve_disable", "tdx.tcb_status", "collateral.qe_identity", "collateral.crl"]  # attributes 0x40..


def test_sgx_policy(vec):
    claims = verify_evidence("sgx", vec.read("sgx/occlum-v3/quote.dat"), at=NOW_2026)
    pol = Policy.from_mapping({"tees": ["sgx"], "tcb_status": [], "collateral": {"require": []}, "sgx": {
        "mrsigner": [claims.mrsigner], "isvprodid": [0], "min_tcb": {"isvsvn": 1}}}, "t")
    failed = appraise(claims, pol, expected_report_data=None).failed
    assert sorted(c.name for c in failed) == ["debug", "sgx.tcb.isvsvn"]


def test_sim_requires_insecure_and_pinned_key(tmp_path):
    plat = SimPlatform.load_or_create(tmp_path)
    claims = verify_evidence("sim", plat.issue(bytes(64), bytes(48)))
    base = {"keys": [plat.fingerprint], "measurements": ["00" * 48]}
    ok = appraise(claims, Policy.from_mapping({"tees": ["sim"], "sim": {**base, "insecure": True}}, "t"),
                  expected_report_data=bytes(64))
    assert ok.ok
    no_flag = appraise(claims, Policy.from_mapping({"tees": ["sim"], "sim": base}, "t"), expected_report_data=None)
    assert [c.name for c in no_flag.failed] == ["sim.insecure"]
    other = SimPlatform.generate().fingerprint
    wrong_key = Policy.from_mapping({"tees": ["sim"], "sim": {**base, "keys": [other], "insecure": True}}, "t")
    assert [c.name for c in appraise(claims, wrong_key, expected_report_data=None).failed] == ["sim.key"]


def test_cca_policy_pins_cpak(vec):
    cpak = vec.read("cca/trustee-fvp/cpak-pub.json")
    c = verify_evidence("cca", vec.read("cca/trustee-fvp/token.cbor"), certs=[cpak])
    pol = Policy.from_mapping({"tees": ["cca"], "cca": {"measurements": [c.measurement], "cpak": [c.cpak_fingerprint]}},
                              "t")
    assert appraise(c, pol, expected_report_data=c.report_data).ok
    pol2 = Policy.from_mapping({"tees": ["cca"], "cca": {"measurements": [c.measurement]}}, "t")
    assert [x.name for x in appraise(c, pol2, expected_report_data=None).failed] == ["cca.cpak"]


def test_crl_required_by_policy(vec):
    from datetime import UTC, datetime

    from enarx_pkg.attestation.collateral import Collateral

    folder = vec.root / "tdx/collateral-2023-06-fmspc-50806f000000"
    quote, at = vec.read("tdx/trustee-v4-spr/quote.dat"), datetime(2023, 6, 20, tzinfo=UTC)
    pol = Policy.from_mapping({"tees": ["tdx"], "debug": True, "collateral": {"crl": True},
                               "tdx": {"mrtd": ["705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b6"
                                                "89cac1599ccea1b7d420483a9ce5f031"]}}, "t")
    with_crl = verify_evidence("tdx", quote, collateral=Collateral.from_dir(folder), at=at)
    assert appraise(with_crl, pol, expected_report_data=None).ok
    col = Collateral.from_dir(folder)
    no_crl = verify_evidence("tdx", quote, collateral=Collateral(**{**col.__dict__, "pck_crl": None}), at=at)
    assert [c.name for c in appraise(no_crl, pol, expected_report_data=None).failed] == ["collateral.crl"]


def test_a_policy_file_that_cannot_be_read_is_named_never_an_internal_error(tmp_path, capsys):
    """Missing: not found (66). A directory, or a file over 1 MiB: invalid (65), read no further than that."""
    from enarx_pkg._cli.main import main
    from enarx_pkg.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"policy file .*missing\.toml: no such file"):
        load_policy(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="cannot read"):
        load_policy(tmp_path)
    big = tmp_path / "big.toml"
    big.write_text('tees = ["sim"]\n' + "#" * (1 << 20))
    with pytest.raises(InputError, match="larger than 1048576 bytes"):
        load_policy(big)
    evidence = tmp_path / "e.bin"
    evidence.write_bytes(b"x")
    assert main(["attest", "verify", str(evidence), "--policy", str(tmp_path / "missing.toml")]) == 66
    assert main(["attest", "verify", str(evidence), "--policy", str(tmp_path)]) == 65
    err = capsys.readouterr().err
    assert "internal error" not in err and f"policy file {tmp_path}: cannot read" in err


def test_evidence_is_read_no_further_than_its_limit(tmp_path, capsys):
    """A directory is named, not an internal error; a FIFO-like endless file (/dev/zero) stops at 1 MiB."""
    from enarx_pkg._cli.main import main

    assert main(["attest", "inspect", str(tmp_path)]) == 65
    assert main(["attest", "inspect", "/dev/zero"]) == 65
    assert main(["attest", "inspect", str(tmp_path / "none.bin")]) == 66
    err = capsys.readouterr().err
    assert f"evidence file {tmp_path}: cannot read" in err and "internal error" not in err
    assert "evidence file /dev/zero: larger than 1048576 bytes" in err
    assert f"evidence file {tmp_path / 'none.bin'}: no such file" in err
