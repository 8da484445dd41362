"""TDX v4/v5 and SGX v3 quotes: README values, collateral conclusions, and one test per attack."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from enarx_pkg.attestation import EvidenceError, MalformedEvidence, dcap, tcb, verify_evidence
from enarx_pkg.attestation.collateral import Collateral

from .conftest import NOW_2026, TDX_2023

COLLATERAL_2023 = "tdx/collateral-2023-06-fmspc-50806f000000"
QUOTES = {  # file -> (version, MRTD prefix, debug, fmspc, pcesvn, tee_tcb_svn prefix, qe isvsvn)
    "tdx/gtdx-v4-spr-e4/quote.dat": (4, "6363b804", False, "50806f000000", 11, "03000400", 4),
    "tdx/trustee-v4-spr/quote.dat": (4, "705ee938", True, "50806f000000", 11, "03000500", 4),
    "tdx/gtdx-v5-fmspc-90c06f000000/quote.dat": (5, "7348651a", False, "90c06f000000", 13, "0b010400", 7),
    "tdx/trustee-v4-fmspc-00a06d080000/quote.dat": (4, "21e8dead", False, "00a06d080000", 11, "05030200", 7),
    "tdx/azure-v4/quote.bin": (4, "024a32b0", False, "00806f050000", 11, "02010600", 5),
    "tdx/gcp-cos113-v4/quote.dat": (4, "dae67181", False, "00806f050000", 11, "04010700", 6),
}
AT_VALID = datetime(2026, 6, 1, tzinfo=UTC)  # inside every PCK leaf's window (v5 leaf starts 2026-01-27)


@pytest.mark.parametrize("path", sorted(QUOTES))
def test_tdx_quote_verifies_with_readme_values(vec, path):
    version, mrtd, debug, fmspc, pcesvn, svn, qe_isvsvn = QUOTES[path]
    data = vec.read(path)
    c = verify_evidence("tdx", data, at=AT_VALID)
    assert (c.tee, c.version, c.debug, c.pck.fmspc, c.pck.pcesvn) == ("tdx", version, debug, fmspc, pcesvn)
    assert c.mrtd.startswith(mrtd) and c.measurement == c.mrtd and c.tee_tcb_svn.startswith(svn)
    assert int.from_bytes(dcap.parse_quote(data).qe_report[258:260], "little") == qe_isvsvn
    assert len(c.report_data) == 64 and all(len(r) == 96 for r in c.rtmr)


def test_tdx_body_fields(vec):
    c = verify_evidence("tdx", vec.read("tdx/trustee-v4-fmspc-00a06d080000/quote.dat"), at=AT_VALID)
    assert c.mrconfigid.startswith("889abf4718f037e3") and c.td_attributes == "0000001000000000"
    assert c.report_data == bytes.fromhex("26cae1c77185617fb6a03fc29bf1f924596e52352b9b7594940b576ae126cd4a"
                                          "570cc3202a900c5d19a6eb0a95b32cfd") + bytes(16)
    gcp = verify_evidence("tdx", vec.read("tdx/gcp-cos113-v4/quote.dat"), at=AT_VALID)
    assert gcp.report_data == vec.read("tdx/gcp-cos113-v4/nonce.dat")


def test_sgx_quote_values(vec):
    c = verify_evidence("sgx", vec.read("sgx/occlum-v3/quote.dat"), at=NOW_2026)
    assert c.mrenclave == "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
    assert c.mrsigner == "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"
    assert (c.isvprodid, c.isvsvn, c.debug, c.qe_svn, c.pce_svn) == (0, 0, True, 8, 13)
    assert c.report_data == b"test" + bytes(60) and c.pck.fmspc == "00606a000000"
    assert c.pck.cpusvn[:6] == (4, 4, 3, 3, 255, 255)


def test_sgx_quote_is_not_tdx(vec):
    with pytest.raises(MalformedEvidence):
        verify_evidence("tdx", vec.read("sgx/occlum-v3/quote.dat"), at=NOW_2026)


def _col(vec) -> Collateral:
    return Collateral.from_dir(vec.root / COLLATERAL_2023)


def test_collateral_2023_up_to_date(vec):
    c = verify_evidence("tdx", vec.read("tdx/trustee-v4-spr/quote.dat"), collateral=_col(vec), at=TDX_2023)
    assert c.tcb is not None and (c.tcb.status, c.tcb.qe_status, c.tcb.tcb_date[:10]) == \
        ("UpToDate", "UpToDate", "2023-02-15")


def test_collateral_2023_pre_production_has_no_tcb_level(vec):
    c = verify_evidence("tdx", vec.read("tdx/gtdx-v4-spr-e4/quote.dat"), collateral=_col(vec), at=TDX_2023)
    assert c.tcb is not None and c.tcb.status == "Unsupported" and c.tcb.qe_status == "UpToDate"


@pytest.mark.parametrize("at", [datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 7, 20, tzinfo=UTC)])
def test_collateral_outside_window_refused(vec, at):
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", vec.read("tdx/trustee-v4-spr/quote.dat"), collateral=_col(vec), at=at)
    assert exc.value.check.endswith(".validity")


def test_collateral_fmspc_mismatch_refused(vec):
    data = vec.read("tdx/azure-v4/quote.bin")
    info = json.loads(vec.read(f"{COLLATERAL_2023}/tcbinfo.json"))["tcbInfo"]
    with pytest.raises(EvidenceError) as exc:
        tcb.evaluate(dcap.parse_quote(data), dcap.inspect_quote(data).pck, info, None)
    assert exc.value.check == "collateral.fmspc"


def test_tampered_tcb_info_refused(vec):
    col = _col(vec)
    forged = col.tcb_info.replace(b'"tcbStatus":"OutOfDate"', b'"tcbStatus":"UpToDate"', 1)
    assert forged != col.tcb_info
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", vec.read("tdx/gtdx-v4-spr-e4/quote.dat"),
                        collateral=Collateral(**{**col.__dict__, "tcb_info": forged}), at=TDX_2023)
    assert exc.value.check == "collateral.tcb_info.signature"


def test_crl_from_wrong_issuer_refused(vec):
    col = _col(vec)
    swapped = Collateral(**{**col.__dict__, "pck_crl": col.root_crl})
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", vec.read("tdx/trustee-v4-spr/quote.dat"), collateral=swapped, at=TDX_2023)
    assert exc.value.check == "collateral.pck_crl.signature"


def _evaluate(vec, folder):
    data = vec.read(f"tdx/{folder}/quote.dat")
    info = json.loads(vec.read(f"tdx/{folder}/tcbinfo.json"))["tcbInfo"]
    qe_path = vec.root / f"tdx/{folder}/qe_identity.json"
    qe = json.loads(qe_path.read_bytes())["enclaveIdentity"] if qe_path.exists() else None
    return tcb.evaluate(dcap.parse_quote(data), dcap.inspect_quote(data).pck, info, qe)


def test_v5_tcb_evaluation_up_to_date(vec):
    ev = _evaluate(vec, "gtdx-v5-fmspc-90c06f000000")
    assert (ev.status, ev.module_status, ev.tcb_date[:10]) == ("UpToDate", "UpToDate", "2024-11-13")


def test_fmspc_00a06d_is_out_of_date(vec):
    ev = _evaluate(vec, "trustee-v4-fmspc-00a06d080000")
    assert (ev.status, ev.module_status, ev.qe_status) == ("OutOfDate", "UpToDate", "UpToDate")


def test_2025_collateral_refused_with_expired_signing_cert(vec):
    """Intel reissued the TCB Signing certificate; the copy we have expired 2025-05-21, so strict refusal."""
    folder = vec.root / "tdx/trustee-v4-fmspc-00a06d080000"
    col = Collateral(tcb_info=(folder / "tcbinfo.json").read_bytes(),
                     tcb_signing_chain=vec.read(f"{COLLATERAL_2023}/tcb_signing_chain.pem"))
    with pytest.raises(EvidenceError, match="expired") as exc:
        verify_evidence("tdx", vec.read("tdx/trustee-v4-fmspc-00a06d080000/quote.dat"), collateral=col,
                        at=datetime(2025, 11, 1, tzinfo=UTC))
    assert exc.value.check == "collateral.signing_chain.validity"


def test_qe_report_not_binding_attestation_key_refused(vec):
    """Swap in another quote's attestation key: the QE report's report_data no longer binds it."""
    a = bytearray(vec.read("tdx/trustee-v4-spr/quote.dat"))
    b = vec.read("tdx/gtdx-v4-spr-e4/quote.dat")
    a[636 + 64 : 636 + 128] = b[636 + 64 : 636 + 128]
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", bytes(a), at=AT_VALID)
    assert exc.value.check == "qe_report.binding"


def test_qe_auth_data_tampered_refused(vec):
    data = bytearray(vec.read("tdx/trustee-v4-spr/quote.dat"))
    q = dcap.parse_quote(bytes(data))
    pos = bytes(data).index(q.qe_auth)
    data[pos] ^= 0xFF
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", bytes(data), at=AT_VALID)
    assert exc.value.check == "qe_report.binding"


@pytest.mark.parametrize("offset", [0, 12, 48, 48 + 136, 48 + 328, 48 + 520, 631, 636, 700, 636 + 128 + 100])
def test_flipped_bit_in_signed_tdx_region_refused(vec, offset):
    data = bytearray(vec.read("tdx/trustee-v4-spr/quote.dat"))
    data[offset] ^= 0x10
    with pytest.raises(EvidenceError):
        verify_evidence("tdx", bytes(data), at=AT_VALID)


@pytest.mark.parametrize("path, tee", [("tdx/trustee-v4-spr/quote.dat", "tdx"), ("sgx/occlum-v3/quote.dat", "sgx")])
def test_quote_from_a_non_intel_quoting_enclave_refused(vec, path, tee):
    data = bytearray(vec.read(path))
    assert bytes(data[12:28]) == dcap.INTEL_QE_VENDOR  # the header's qe_vendor_id
    data[12] ^= 0xFF
    with pytest.raises(EvidenceError) as exc:
        verify_evidence(tee, bytes(data), at=AT_VALID)
    assert exc.value.check == "quote.qe_vendor_id"


@pytest.mark.parametrize("offset", [0, 48, 48 + 64, 48 + 320, 431, 436, 436 + 64, 436 + 128 + 10])
def test_flipped_bit_in_sgx_quote_refused(vec, offset):
    data = bytearray(vec.read("sgx/occlum-v3/quote.dat"))
    data[offset] ^= 0x01
    with pytest.raises(EvidenceError):
        verify_evidence("sgx", bytes(data), at=NOW_2026)


def test_trailing_bytes_tolerated_truncation_refused(vec):
    data = vec.read("tdx/trustee-v4-spr/quote.dat")
    assert verify_evidence("tdx", data + b"trailing", at=AT_VALID).mrtd.startswith("705ee938")
    for cut in (1, 100, 1000, len(data) - 700, len(data) - 636):
        with pytest.raises(MalformedEvidence):
            dcap.parse_quote(data[: len(data) - cut])


@pytest.mark.parametrize("at", [datetime(2022, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)])
def test_pck_outside_validity_refused(vec, at):
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("tdx", vec.read("tdx/trustee-v4-spr/quote.dat"), at=at)
    assert exc.value.check == "pck.chain.validity"


def test_pck_chain_with_unpinned_root_refused(vec):
    """Replace the embedded chain with a self-made CA: the root pin refuses it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX Root CA")])
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(datetime(2020, 1, 1)).not_valid_after(datetime(2040, 1, 1))
            .sign(key, hashes.SHA256()))
    with pytest.raises(EvidenceError) as exc:
        dcap.verified_pck_chain(root.public_bytes(serialization.Encoding.PEM))
    assert exc.value.check == "pck.chain.root_pin"


def test_pck_chain_missing_intermediate_refused(vec):
    q = dcap.parse_quote(vec.read("tdx/trustee-v4-spr/quote.dat"))
    pems = q.pck_chain.split(b"-----END CERTIFICATE-----")
    with pytest.raises(EvidenceError) as exc:
        dcap.verified_pck_chain(pems[0] + b"-----END CERTIFICATE-----\n" + pems[2] + b"-----END CERTIFICATE-----\n")
    assert exc.value.check.startswith("pck.chain")


@pytest.mark.parametrize("doc, key", [("gtdx-v5-fmspc-90c06f000000/tcbinfo.json", "tcbInfo"),
                                      ("trustee-v4-fmspc-00a06d080000/tcbinfo.json", "tcbInfo"),
                                      ("trustee-v4-fmspc-00a06d080000/qe_identity.json", "enclaveIdentity")])
def test_later_collateral_is_signed_by_the_tcb_signing_key(vec, doc, key):
    """The README's check: these signatures verify under the 2023 TCB Signing certificate's key (which
    Intel reissued later; its validity is what refuses them at their own dates, see above)."""
    from enarx_pkg.attestation import anchors

    chain = vec.read(f"{COLLATERAL_2023}/tcb_signing_chain.pem")
    data = vec.read(f"tdx/{doc}")
    assert tcb._signed_by(data, key, chain, anchors.intel_roots(), "collateral")["issueDate"].startswith("202")
    forged = data.replace(b'"issueDate":"20', b'"issueDate":"19', 1)
    with pytest.raises(EvidenceError) as exc:
        tcb._signed_by(forged, key, chain, anchors.intel_roots(), "collateral")
    assert exc.value.check == "collateral.signature"


@pytest.mark.parametrize("path", ["tdx/trustee-v4-spr/quote.dat", "tdx/gtdx-v4-spr-e4/quote.dat"])
def test_collateral_2023_crls_checked_and_pck_not_revoked(vec, path):
    c = verify_evidence("tdx", vec.read(path), collateral=_col(vec), at=TDX_2023)
    assert c.tcb is not None and c.tcb.crl_checked and c.tcb.qe_status == "UpToDate"


def test_fmspc_00a06d_out_of_date_is_refused_by_an_up_to_date_policy(vec):
    from dataclasses import replace

    from enarx_pkg.attestation.policy import Policy, appraise

    data = vec.read("tdx/trustee-v4-fmspc-00a06d080000/quote.dat")
    claims = replace(dcap.inspect_quote(data), tcb=_evaluate(vec, "trustee-v4-fmspc-00a06d080000"))
    pol = Policy.from_mapping({"tees": ["tdx"], "collateral": {"require": []}, "tdx": {"mrtd": [claims.mrtd]}}, "t")
    assert [(c.name, c.observed) for c in appraise(claims, pol, expected_report_data=None).failed] == \
        [("tdx.tcb_status", "OutOfDate")]
