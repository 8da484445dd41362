"""Attestation: pure verifiers for SEV-SNP, TDX, SGX, CCA and sim evidence, policy appraisal, collectors.

Verifiers take bytes and return frozen claims or raise an error naming the failed check; they and the
policy appraisal do no I/O. Heavy modules are imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence
from enarx_pkg.attestation.collateral import Collateral

if TYPE_CHECKING:
    from enarx_pkg.attestation.claims import Claims

__all__ = ["Collateral", "EvidenceError", "MalformedEvidence", "verify_evidence"]

TEES = ("snp", "tdx", "sgx", "cca", "sim")


def verify_evidence(
    tee: str,
    evidence: bytes,
    *,
    certs: Sequence[bytes] = (),
    collateral: Collateral | None = None,
    at: datetime | None = None,
) -> Claims:
    """Verify ``evidence`` of the given TEE; ``certs`` are extra DER/PEM certificates (VCEK, ASK, ARK, CPAK)."""
    from enarx_pkg.attestation import dispatch

    return dispatch.verify(tee, evidence, certs=certs, collateral=collateral, at=at)
