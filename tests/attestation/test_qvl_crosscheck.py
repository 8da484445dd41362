"""Cross-check against an independent verifier: Phala's pure-JS DCAP QVL (``@phala/dcap-qvl``).

Every TDX/SGX vector is verified by both, with the collateral its folder ships, at a time the vectors'
README names; the verdicts (and, where both produce one, the TCB statuses) must agree. The same
comparison, one mutation at a time, on collateral made under a test root: ``test_qvl_mutations``.

Known, documented differences (Intel's QVL and the specifications side with ours):
- DEBUG TDs/enclaves and TDs without SEPT_VE_DISABLE: dcap-qvl fails verification ("Debug mode is
  enabled", "SEPT_VE_DISABLE is not enabled"); ours verifies and the policy refuses them (``debug``,
  ``tdx.sept_ve_disable`` checks). Same verdict under a production policy.
- No matching TCB level: dcap-qvl throws; ours reports ``Unsupported``, as QVL's
  STATUS_TCB_NOT_SUPPORTED. Same verdict (``tcb_status`` refuses it).
- Status convergence: dcap-qvl takes the worse of platform and QE status; QVL (and ours) turn
  ConfigurationNeeded + QE OutOfDate into ``OutOfDateConfigurationNeeded``.
- Missing CRLs or QE identity: dcap-qvl cannot run without them; ours verifies and the policy's
  ``[collateral] require`` refuses. Same verdict.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from . import qvl_peer
from .qvl_peer import ours, theirs

COL_2023 = "tdx/collateral-2023-06-fmspc-50806f000000"
D = datetime(2023, 6, 20, tzinfo=UTC)

NO_COLLATERAL = "refused: %s.tcb_status collateral.qe_identity collateral.crl"
NO_SEPT_VE = "refused: tdx.sept_ve_disable " + NO_COLLATERAL[9:] % "tdx"
# vector -> (collateral folder or None, time, ours, theirs): a verdict is "accepted", or the refusal
VECTORS = {
    "tdx/trustee-v4-spr/quote.dat": (COL_2023, D, "refused: debug", "refused: Debug mode is enabled"),
    "tdx/gtdx-v4-spr-e4/quote.dat": (COL_2023, D, "refused: tdx.sept_ve_disable tdx.tcb_status",
                                     "refused: No matching TCB level found"),
    # the README's caveat: the only TCB Signing certificate available (2023's) expired 2025-05-21
    "tdx/gtdx-v5-fmspc-90c06f000000/quote.dat": ("tdx/gtdx-v5-fmspc-90c06f000000", datetime(2026, 2, 10, tzinfo=UTC),
                                                 "refused: collateral.signing_chain.validity", "refused"),
    "tdx/trustee-v4-fmspc-00a06d080000/quote.dat": ("tdx/trustee-v4-fmspc-00a06d080000",
                                                    datetime(2025, 11, 1, tzinfo=UTC),
                                                    "refused: collateral.signing_chain.validity", "refused"),
    # no collateral for these FMSPCs among the vectors: crypto valid, TCB not checked, so refused
    "tdx/azure-v4/quote.bin": (None, datetime(2026, 6, 1, tzinfo=UTC), NO_SEPT_VE, "refused"),  # attributes 0
    "tdx/gcp-cos113-v4/quote.dat": (None, datetime(2026, 6, 1, tzinfo=UTC), NO_COLLATERAL % "tdx", "refused"),
    "sgx/occlum-v3/quote.dat": (None, datetime(2026, 6, 1, tzinfo=UTC), "refused: debug " + NO_COLLATERAL[9:] % "sgx",
                                "refused"),
}


@pytest.fixture(scope="module")
def peer() -> Path:
    return qvl_peer.need_peer()


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
    peer_says = theirs(testvectors / path, folder, at)
    assert verdict == want_ours, verdict
    assert peer_says["ok"] is False, peer_says
    assert want_theirs == "refused" or want_theirs == f"refused: {peer_says['error']}"
    if "tcb_status" in want_ours and folder_rel:
        assert status == "Unsupported"
