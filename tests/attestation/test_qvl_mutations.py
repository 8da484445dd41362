"""One mutation at a time, judged by our verifier AND by @phala/dcap-qvl (both trusting a test root).

Each case starts from the real quote of ``tdx/trustee-v4-fmspc-00a06d080000`` (header, TD body, QE
report, PCK extension) and that folder's TCB info and QE identity, re-signed under a test PKI, and
changes one thing: a TCB status, a validity window, a CRL entry, an FMSPC/PCEID, a signature, a
binding, a TD attribute. Our verdict must be the refusal named (typed error ``check`` or failed
policy checks); dcap-qvl's must be a refusal too, with the reason named. The same for SGX, on the
Occlum v3 quote with SGX TCB info and QE identity made from its PCK (none is among the vectors).

Where dcap-qvl accepts what we refuse, the case says so and why we follow Intel's QVL and the
specifications instead (dcap-qvl does not read CRL dates, the PCEID, QE report_data[32:64], the
TDX module identity, or certificate roles).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from . import qvl_peer
from .qvl_peer import NOT_REVOKED, Case

FOLDER = "tdx/trustee-v4-fmspc-00a06d080000"
AT = datetime(2025, 11, 1, tzinfo=UTC)  # inside this folder's tcbInfo and QE identity windows


@pytest.fixture(scope="module", autouse=True)
def _peer() -> None:
    qvl_peer.need_peer()


@pytest.fixture()
def case(testvectors: Path) -> Case:
    """The real quote, its platform level made UpToDate, so that only the mutation can refuse it."""
    made = Case.of(testvectors, FOLDER)
    _levels(made, "UpToDate")
    return made


def _flip(offset_from_end: int):  # type: ignore[no-untyped-def]
    def edit(b: bytes) -> bytes:
        i = len(b) - offset_from_end
        return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]
    return edit


def _levels(c: Case, status: str) -> None:
    for level in c.info["tcbLevels"]:
        level["tcbStatus"] = status


def _sign_collateral_with_pck(c: Case) -> None:
    c.collateral_signer = c.pki.pck


def _quote_sig(c: Case) -> None:  # the quote signature sits right after header, body and sig_data_len
    c.after["quote.dat"] = lambda q: q[:636] + bytes([q[636] ^ 1]) + q[637:]


def _qe_report_sig(c: Case) -> None:
    c.after["quote.dat"] = lambda q: q[:636 + 128 + 6 + 384] + bytes([q[636 + 128 + 6 + 384] ^ 1]) + \
        q[636 + 128 + 6 + 385:]


# case -> (mutation, our verdict, dcap-qvl's error (a substring), or None where dcap-qvl accepts)
MUTATIONS: dict[str, tuple[Any, str, str | None]] = {
    "unchanged (control)": (lambda c: None, "accepted", "OK"),
    # collateral validity
    "tcbInfo past nextUpdate": (lambda c: c.info.update(nextUpdate="2025-10-31T00:00:00Z"),
                                "refused: collateral.tcb_info.validity", "TCBInfo expired"),
    "tcbInfo issued in the future": (lambda c: c.info.update(issueDate="2025-11-02T00:00:00Z"),
                                     "refused: collateral.tcb_info.validity", "TCBInfo issue date is in the future"),
    "QE identity past nextUpdate": (lambda c: c.qe.update(nextUpdate="2025-10-31T00:00:00Z"),
                                    "refused: collateral.qe_identity.validity", "QE Identity expired"),
    "PCK CRL past nextUpdate": (lambda c: setattr(c, "pck_crl_next", datetime(2025, 10, 31, tzinfo=UTC)),
                                "refused: collateral.pck_crl.validity", None),  # dcap-qvl reads no CRL dates
    "root CA CRL past nextUpdate": (lambda c: setattr(c, "root_crl_next", datetime(2025, 10, 31, tzinfo=UTC)),
                                    "refused: collateral.root_crl.validity", None),
    # revocation
    "PCK revoked": (lambda c: c.pck_revoked.append(c.pki.pck.cert), "refused: collateral.pck_crl.revoked",
                    "Certificate is revoked"),
    "PCK Platform CA revoked": (lambda c: c.root_revoked.append(c.pki.platform_ca.cert),
                                "refused: collateral.root_crl.revoked", "Certificate is revoked"),
    "TCB Signing revoked": (lambda c: c.root_revoked.append(c.pki.tcb_signing.cert),
                            "refused: collateral.root_crl.revoked", "Certificate is revoked"),
    # which platform the collateral is for
    "FMSPC of another platform": (lambda c: c.info.update(fmspc="00606A000000"), "refused: collateral.fmspc",
                                  "Fmspc mismatch"),
    "PCEID of another PCE": (lambda c: c.info.update(pceId="0001"), "refused: collateral.pceid", None),
    "SGX TCB info for a TD": (lambda c: c.info.update(id="SGX"), "refused: collateral.tcb_info.kind",
                              "TDX quote with non-TDX TCB info"),
    "TCB info of an undefined tcbType": (lambda c: c.info.update(tcbType=1), "refused: collateral.tcb_info.kind",
                                         None),  # dcap-qvl does not read tcbType; QVL refuses all but 0
    # collateral signatures and roles
    "tcbInfo changed after signing": (
        lambda c: c.after.update({"tcbinfo.json": lambda b: b.replace(b'"tcbEvaluationDataNumber":17',
                                                                      b'"tcbEvaluationDataNumber":18')}),
        "refused: collateral.tcb_info.signature", "Signature is invalid for tcb_info"),
    "QE identity changed after signing": (
        lambda c: c.after.update({"qe_identity.json": lambda b: b.replace(b'"isvprodid":2', b'"isvprodid":3')}),
        "refused: collateral.qe_identity.signature", "Signature is invalid for qe_identity"),
    "collateral signed by the PCK": (_sign_collateral_with_pck, "refused: collateral.signing_chain.role", None),
    # QE identity and TDX module identity
    "QE MRSIGNER not Intel's": (lambda c: c.qe.update(mrsigner="AB" * 32), "refused: collateral.qe_identity",
                                "QE MRSIGNER mismatch"),
    "QE ISVSVN below every level": (lambda c: [lv["tcb"].update(isvsvn=99) for lv in c.qe["tcbLevels"]],
                                    "refused: tdx.tcb_status", "below minimum required"),
    "TDX module MRSIGNER not Intel's": (
        lambda c: [m.update(mrsigner="AB" * 48) for m in c.info["tdxModuleIdentities"]],
        "refused: collateral.tdx_module", None),  # dcap-qvl does not read tdxModuleIdentities
    # the quote's own signatures and bindings
    "quote signature": (_quote_sig, "refused: quote.signature", "ISV enclave report signature is invalid"),
    "QE report signature": (_qe_report_sig, "refused: qe_report.signature", "Signature is invalid for qe_report"),
    "attestation key not bound by the QE report": (lambda c: setattr(c, "bound_auth", bytes(32)),
                                                   "refused: qe_report.binding", "QE report hash mismatch"),
    "QE report_data[32:64] not zero": (lambda c: c.qe_report.__setitem__(slice(352, 353), b"\x01"),
                                       "refused: qe_report.binding", None),  # Intel's QVL compares all 64 bytes
    "debug quoting enclave": (lambda c: c.qe_report.__setitem__(48, c.qe_report[48] | 0x02),
                              "refused: qe_report.debug", "Debug mode is enabled"),
    # TD attributes
    "TD DEBUG": (lambda c: c.body.__setitem__(120, 0x01), "refused: debug", "Debug mode is enabled"),
    "TD under debug, another TUD bit": (lambda c: c.body.__setitem__(120, 0x40), "refused: debug",
                                        "Debug mode is enabled"),
    "SEPT_VE_DISABLE clear": (lambda c: c.body.__setitem__(123, c.body[123] & ~0x10 & 0xFF),
                              "refused: tdx.sept_ve_disable", "SEPT_VE_DISABLE is not enabled"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_refused_by_both(case: Case, tmp_path: Path, name: str) -> None:
    mutate, want_ours, want_theirs = MUTATIONS[name]
    mutate(case)
    _judged_as(case, tmp_path, want_ours, want_theirs)


def _judged_as(case: Case, tmp_path: Path, want_ours: str, want_theirs: str | None) -> None:
    """Our verdict is ``want_ours``; dcap-qvl's is "OK" (UpToDate), None (it accepts, documented) or its error."""
    (verdict, _), peer = case.judged(case.write(tmp_path / "col"), AT)
    assert verdict == want_ours, (verdict, peer)
    if want_theirs == "OK":
        assert peer["ok"] and peer["status"] == "UpToDate", peer
    elif want_theirs is None:  # documented: dcap-qvl accepts; we follow Intel's QVL and the specifications
        assert peer["ok"], peer
    else:
        assert not peer["ok"] and want_theirs in peer["error"], peer


@pytest.mark.parametrize("status", [*NOT_REVOKED, "Revoked"])
def test_every_tcb_status_against_two_policies(case: Case, tmp_path: Path, status: str) -> None:
    """The platform level's status decides; a production policy takes UpToDate only, a lenient one
    every status but Revoked. dcap-qvl reports the same status and refuses Revoked itself."""
    _status_judged(case, tmp_path, status, "tdx")


def _status_judged(case: Case, tmp_path: Path, status: str, tee: str) -> None:
    """Platform level ``status``: ours under a strict and a lenient policy, and dcap-qvl's verdict."""
    _levels(case, status)
    folder = case.write(tmp_path / "col")
    (strict, got), peer = case.judged(folder, AT)
    (lenient, _), _ = case.judged(folder, AT, tcb_status=NOT_REVOKED)
    assert got == status
    assert strict == ("accepted" if status == "UpToDate" else f"refused: {tee}.tcb_status")
    assert lenient == (f"refused: {tee}.tcb_status" if status == "Revoked" else "accepted")
    if status == "Revoked":
        assert peer == {"ok": False, "error": "TCB status is invalid: Revoked"}
    else:
        assert peer["ok"] and peer["status"] == status, peer


@pytest.mark.parametrize("level, qe, expected_ours, expected_theirs", [
    ("UpToDate", "OutOfDate", "OutOfDate", "OutOfDate"),
    ("UpToDate", "Revoked", "Revoked", None),
    ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded", "OutOfDate"),  # convergence: QVL's rule
])
def test_qe_status_converges(case: Case, tmp_path: Path, level: str, qe: str, expected_ours: str,
                             expected_theirs: str | None) -> None:
    _levels(case, level)
    case.qe["tcbLevels"][0]["tcbStatus"] = qe
    (_, got), peer = case.judged(case.write(tmp_path / "col"), AT)
    assert got == expected_ours
    assert (peer.get("status") if peer["ok"] else None) == expected_theirs, peer


def test_report_data_must_be_our_nonce(case: Case, tmp_path: Path) -> None:
    """Both verifiers read the same REPORTDATA; a quote made for another nonce is refused by the binding."""
    nonce = hashlib.sha512(b"enarx-pkg/keep/v1" + bytes(64)).digest()
    case.body[520:584] = nonce
    folder = case.write(tmp_path / "col")
    (ours_ok, _), peer = case.judged(folder, AT, report_data=nonce)
    (ours_other, _), _ = case.judged(folder, AT, report_data=hashlib.sha512(b"another nonce").digest())
    assert ours_ok == "accepted" and peer["ok"] and bytes.fromhex(peer["report_data"]) == nonce
    assert ours_other == "refused: report_data"


# --- SGX: the Occlum v3 quote (made a production enclave) with SGX collateral made from its PCK ---

SGX_QUOTE = "sgx/occlum-v3/quote.dat"


@pytest.fixture()
def sgx(testvectors: Path) -> Case:
    return Case.sgx(testvectors, SGX_QUOTE)


SGX_MUTATIONS: dict[str, tuple[Any, str, str | None]] = {
    "unchanged (control)": (lambda c: None, "accepted", "OK"),
    "DEBUG enclave": (lambda c: c.body.__setitem__(48, c.body[48] | 0x02), "refused: debug", "Debug mode is enabled"),
    "debug quoting enclave": (lambda c: c.qe_report.__setitem__(48, c.qe_report[48] | 0x02),
                              "refused: qe_report.debug", "Debug mode is enabled"),
    "TDX TCB info for an enclave": (lambda c: c.info.update(id="TDX"), "refused: collateral.tcb_info.kind",
                                    "SGX quote with non-SGX TCB info"),
    "TD_QE identity for an enclave": (lambda c: c.qe.update(id="TD_QE"), "refused: collateral.qe_identity.kind",
                                      "Unsupported QE Identity id/version"),
    "FMSPC of another platform": (lambda c: c.info.update(fmspc="00A06D080000"), "refused: collateral.fmspc",
                                  "Fmspc mismatch"),
    "PCK revoked": (lambda c: c.pck_revoked.append(c.pki.pck.cert), "refused: collateral.pck_crl.revoked",
                    "Certificate is revoked"),
    "quote signature": (lambda c: c.after.update({"quote.dat": lambda q: q[:436] + bytes([q[436] ^ 1]) + q[437:]}),
                        "refused: quote.signature", "ISV enclave report signature is invalid"),
    "attestation key not bound by the QE report": (lambda c: setattr(c, "bound_auth", b"\x01" * 32),
                                                   "refused: qe_report.binding", "QE report hash mismatch"),
    "QE MRSIGNER not Intel's": (lambda c: c.qe.update(mrsigner="AB" * 32), "refused: collateral.qe_identity",
                                "QE MRSIGNER mismatch"),
}


@pytest.mark.parametrize("name", list(SGX_MUTATIONS))
def test_sgx_mutation_refused_by_both(sgx: Case, tmp_path: Path, name: str) -> None:
    mutate, want_ours, want_theirs = SGX_MUTATIONS[name]
    mutate(sgx)
    _judged_as(sgx, tmp_path, want_ours, want_theirs)


@pytest.mark.parametrize("status", [*NOT_REVOKED, "Revoked"])
def test_every_sgx_tcb_status_against_two_policies(sgx: Case, tmp_path: Path, status: str) -> None:
    _status_judged(sgx, tmp_path, status, "sgx")


@pytest.mark.parametrize("name, check", [("unchanged (control)", ""), ("debug quoting enclave", "qe_report.debug"),
                                         ("PCK revoked", "collateral.pck_crl.revoked"),
                                         ("attestation key not bound by the QE report", "qe_report.binding")])
def test_cli_refusal_names_the_check(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                     check: str) -> None:
    """The same refusals as a user sees them: `attest verify` exits 78 naming the check, no traceback
    (and 0 for the unchanged quote)."""
    from enarx_pkg._cli.main import main
    from enarx_pkg.attestation import anchors

    MUTATIONS[name][0](case)
    folder = case.write(tmp_path / "col")
    policy = tmp_path / "policy.toml"
    policy.write_text('tees = ["tdx"]\n[tdx]\nmrtd = ["' + case.body[136:184].hex() + '"]\n')
    with anchors.replaced_for_tests(intel=case.pki.root_pin):
        code = main(["attest", "verify", str(folder / "quote.dat"), "--tee", "tdx", "--policy", str(policy),
                     "--collateral", str(folder), "--at", AT.isoformat()])
    err = capsys.readouterr().err
    assert (code == 0) if not check else (code == 78 and check in err and "Traceback" not in err), err
