"""Cross-check against an independent verifier: Phala's pure-JS DCAP QVL (``@phala/dcap-qvl``).

Every TDX/SGX vector is verified by both, with the collateral its folder ships, at a time the vectors'
README names; the verdicts (and, where both produce one, the TCB statuses) must agree. Then the same
comparison on collateral made in the test under a test root (which both are told to trust), to
exercise the status rules on a real quote.

Known, documented differences (Intel's QVL and the specifications side with ours):
- DEBUG TDs/enclaves: dcap-qvl fails verification ("Debug mode is enabled"); ours verifies and the
  policy refuses debug (``debug`` check). Same verdict under a production policy.
- No matching TCB level: dcap-qvl throws; ours reports ``Unsupported``, as QVL's
  STATUS_TCB_NOT_SUPPORTED. Same verdict (``tcb_status`` refuses it).
- Status convergence: dcap-qvl takes the worse of platform and QE status; QVL (and ours) turn
  ConfigurationNeeded + QE OutOfDate into ``OutOfDateConfigurationNeeded``.
- Missing CRLs or QE identity: dcap-qvl cannot run without them; ours verifies and the policy's
  ``[collateral] require`` refuses. Same verdict.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from enarx_pkg.attestation import anchors, verify_evidence
from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.attestation.policy import Policy, appraise
from enarx_pkg.errors import Error

from . import intel_pki

PEER = Path(__file__).resolve().parent / "dcap-qvl-js"
COL_2023 = "tdx/collateral-2023-06-fmspc-50806f000000"
D = datetime(2023, 6, 20, tzinfo=UTC)

NO_COLLATERAL = "refused: %s.tcb_status collateral.qe_identity collateral.crl"
# vector -> (collateral folder or None, time, ours, theirs): a verdict is "accepted", or the refusal
VECTORS = {
    "tdx/trustee-v4-spr/quote.dat": (COL_2023, D, "refused: debug", "refused: Debug mode is enabled"),
    "tdx/gtdx-v4-spr-e4/quote.dat": (COL_2023, D, "refused: tdx.tcb_status", "refused: No matching TCB level found"),
    # the README's caveat: the only TCB Signing certificate available (2023's) expired 2025-05-21
    "tdx/gtdx-v5-fmspc-90c06f000000/quote.dat": ("tdx/gtdx-v5-fmspc-90c06f000000", datetime(2026, 2, 10, tzinfo=UTC),
                                                 "refused: collateral.signing_chain.validity", "refused"),
    "tdx/trustee-v4-fmspc-00a06d080000/quote.dat": ("tdx/trustee-v4-fmspc-00a06d080000",
                                                    datetime(2025, 11, 1, tzinfo=UTC),
                                                    "refused: collateral.signing_chain.validity", "refused"),
    # no collateral for these FMSPCs among the vectors: crypto valid, TCB not checked, so refused
    "tdx/azure-v4/quote.bin": (None, datetime(2026, 6, 1, tzinfo=UTC), NO_COLLATERAL % "tdx", "refused"),
    "tdx/gcp-cos113-v4/quote.dat": (None, datetime(2026, 6, 1, tzinfo=UTC), NO_COLLATERAL % "tdx", "refused"),
    "sgx/occlum-v3/quote.dat": (None, datetime(2026, 6, 1, tzinfo=UTC), "refused: debug " + NO_COLLATERAL[9:] % "sgx",
                                "refused"),
}


@pytest.fixture(scope="module")
def peer() -> Path:
    if shutil.which("node") is None or not (PEER / "node_modules/@phala/dcap-qvl").is_dir():
        pytest.skip("@phala/dcap-qvl not installed (scripts/install-npm-deps.sh runs npm ci in "
                    "tests/attestation/dcap-qvl-js)")
    return PEER


def theirs(peer: Path, quote: Path, folder: Path, at: datetime, root: Path | None = None) -> dict:
    args = ["node", str(peer / "verify.js"), str(quote), str(folder), str(int(at.timestamp()))]
    out = subprocess.run(args + ([str(root)] if root else []), capture_output=True, text=True, timeout=60,
                         check=True)
    return json.loads(out.stdout)


def ours(quote: bytes, folder: Path | None, at: datetime) -> tuple[str, str]:
    """(verdict, TCB status) under a production policy pinning this quote's measurement."""
    col = Collateral.from_dir(folder) if folder else None
    tee = "sgx" if quote[4] == 0 else "tdx"
    try:
        claims = verify_evidence(tee, quote, collateral=col, at=at)
    except Error as exc:
        return f"refused: {exc.check}", ""  # type: ignore[attr-defined]
    key = {"tdx": "mrtd", "sgx": "mrenclave"}[tee]
    policy = Policy.from_mapping({"tees": [tee], tee: {key: [claims.measurement]}}, "cross-check")
    failed = appraise(claims, policy, expected_report_data=None).failed
    status = claims.tcb.status if claims.tcb else ""
    return ("refused: " + " ".join(c.name for c in failed) if failed else "accepted"), status


@pytest.mark.parametrize("path", sorted(VECTORS))
def test_real_vectors_agree_with_dcap_qvl(peer, testvectors, tmp_path, path):
    folder_rel, at, want_ours, want_theirs = VECTORS[path]
    folder = tmp_path / "collateral"  # the vector's own files, completed with 2023's signing chain and CRLs
    folder.mkdir()
    for src in ([testvectors / COL_2023] if folder_rel and folder_rel != COL_2023 else []) + \
               ([testvectors / folder_rel] if folder_rel else []):
        for f in src.iterdir():
            if f.name != "quote.dat":
                shutil.copyfile(f, folder / f.name)
    verdict, status = ours((testvectors / path).read_bytes(), folder if folder_rel else None, at)
    peer_says = theirs(peer, testvectors / path, folder, at)
    assert verdict == want_ours, verdict
    assert peer_says["ok"] is False, peer_says
    assert want_theirs == "refused" or want_theirs == f"refused: {peer_says['error']}"
    if "tcb_status" in want_ours and folder_rel:
        assert status == "Unsupported"


# --- the same comparison on collateral made in the test (both told to trust the test root) ---

Q = "tdx/trustee-v4-fmspc-00a06d080000"
AT = datetime(2025, 11, 1, tzinfo=UTC)  # inside this folder's tcbInfo and QE identity windows


def _crl(issuer: intel_pki.Node) -> bytes:
    return (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
            .last_update(intel_pki.NB).next_update(intel_pki.NA)
            .sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def _made(testvectors: Path, tmp: Path, level_status: str | None = None, qe_status: str | None = None):
    quote = (testvectors / f"{Q}/quote.dat").read_bytes()
    pki = intel_pki.make_pki(quote)
    info = json.loads((testvectors / f"{Q}/tcbinfo.json").read_bytes())["tcbInfo"]
    qe = json.loads((testvectors / f"{Q}/qe_identity.json").read_bytes())["enclaveIdentity"]
    if level_status:
        for level in info["tcbLevels"]:
            level["tcbStatus"] = level_status if level["tcbStatus"] == "OutOfDate" else level["tcbStatus"]
    if qe_status:
        qe["tcbLevels"][0]["tcbStatus"] = qe_status
    tmp.mkdir()
    (tmp / "tcbinfo.json").write_bytes(intel_pki.signed_json("tcbInfo", info, pki.tcb_signing.key))
    (tmp / "qe_identity.json").write_bytes(intel_pki.signed_json("enclaveIdentity", qe, pki.tcb_signing.key))
    (tmp / "tcb_signing_chain.pem").write_bytes(pki.tcb_signing.pem + pki.root.pem)
    (tmp / "pck_crl_issuer_chain.pem").write_bytes(pki.platform_ca.pem + pki.root.pem)
    (tmp / "pck_platform_crl.der").write_bytes(_crl(pki.platform_ca))
    (tmp / "root_ca_crl.der").write_bytes(_crl(pki.root))
    (tmp / "root.der").write_bytes(pki.root.cert.public_bytes(serialization.Encoding.DER))
    (tmp / "quote.dat").write_bytes(intel_pki.requote(quote, pki.pck.pem + pki.platform_ca.pem + pki.root.pem,
                                                      pki.pck.key))
    return pki


@pytest.mark.parametrize("level, qe, expected_ours, expected_theirs", [
    (None, None, "OutOfDate", "OutOfDate"),
    ("UpToDate", None, "UpToDate", "UpToDate"),
    ("SWHardeningNeeded", None, "SWHardeningNeeded", "SWHardeningNeeded"),
    ("UpToDate", "OutOfDate", "OutOfDate", "OutOfDate"),
    ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded", "OutOfDate"),  # convergence: QVL's rule
])
def test_made_collateral_statuses_agree_with_dcap_qvl(peer, testvectors, tmp_path, level, qe, expected_ours,
                                                       expected_theirs):
    folder = tmp_path / "col"
    pki = _made(testvectors, folder, level, qe)
    with anchors.replaced_for_tests(intel=pki.root_pin):
        claims = verify_evidence("tdx", (folder / "quote.dat").read_bytes(), collateral=Collateral.from_dir(folder),
                                 at=AT)
    peer_says = theirs(peer, folder / "quote.dat", folder, AT, folder / "root.der")
    assert claims.tcb is not None and claims.tcb.status == expected_ours
    assert peer_says == {"ok": True, "status": expected_theirs, "advisory_ids": []}
