"""Route evidence to its verifier, and guess the TEE of an unlabelled file."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm

from enarx_pkg.attestation._errors import MalformedEvidence
from enarx_pkg.errors import UsageError

if TYPE_CHECKING:
    from enarx_pkg.attestation.claims import Claims
    from enarx_pkg.attestation.collateral import Collateral


def verify(
    tee: str,
    evidence: bytes,
    *,
    certs: Sequence[bytes] = (),
    collateral: Collateral | None = None,
    at: datetime | None = None,
) -> Claims:
    """Verify ``evidence`` as ``tee`` (``auto`` detects it). Only typed errors escape."""
    try:
        return _verify(tee, evidence, certs=certs, collateral=collateral, at=at)
    except (ValueError, TypeError, OverflowError, UnsupportedAlgorithm) as exc:
        # last line of defence: a library choked on hostile bytes in a way no check anticipated
        raise MalformedEvidence("evidence.parse", f"{type(exc).__name__}: {exc}") from exc


def _verify(
    tee: str,
    evidence: bytes,
    *,
    certs: Sequence[bytes] = (),
    collateral: Collateral | None = None,
    at: datetime | None = None,
) -> Claims:
    if tee == "auto":
        tee = detect(evidence)
    if collateral is not None:
        certs = [*certs, *collateral.certs]
    if tee == "sim":
        from enarx_pkg.attestation.sim import verify_sim

        return verify_sim(evidence, at=at)
    if tee == "snp":
        from enarx_pkg.attestation.snp import verify_snp

        return verify_snp(evidence, certs=certs, at=at, crl=collateral.amd_crl if collateral else None)
    if tee in ("tdx", "sgx"):
        from enarx_pkg.attestation.dcap import verify_quote

        claims = verify_quote(evidence, certs=certs, collateral=collateral, at=at)
        if claims.tee != tee:
            raise MalformedEvidence("quote.tee_type", f"evidence is a {claims.tee} quote, not {tee}")
        return claims
    if tee == "cca":
        from enarx_pkg.attestation.cca import verify_cca

        return verify_cca(evidence, certs=certs)
    raise UsageError(f"unknown TEE {tee!r}: expected one of auto, snp, tdx, sgx, cca, sim")


def detect(evidence: bytes) -> str:
    """Best guess at the evidence type from its leading bytes."""
    from enarx_pkg.attestation.sim import MAGIC

    if evidence.startswith(MAGIC):
        return "sim"
    if evidence[:3] == b"\xd9\x01\x8f":  # CBOR tag 399
        return "cca"
    if evidence.startswith(b"HCLA"):  # an Azure HCL report wrapping an SNP report
        return "snp"
    is_dcap = evidence[1:2] == b"\x00" and evidence[2:4] in (b"\x02\x00", b"\x03\x00")
    if len(evidence) >= 48 and evidence[0] in (3, 4, 5) and is_dcap:
        tee_type = int.from_bytes(evidence[4:8], "little")
        return "tdx" if tee_type == 0x81 else "sgx"
    if len(evidence) == 1184 or (len(evidence) >= 1184 and evidence[0] in (2, 3, 5)):
        return "snp"
    raise MalformedEvidence("evidence.type", "cannot tell which TEE produced this evidence; pass --tee")


def inspect(tee: str, evidence: bytes) -> Claims:
    """Decode evidence WITHOUT verifying anything (``attest inspect``)."""
    if tee == "auto":
        tee = detect(evidence)
    if tee == "sim":
        from enarx_pkg.attestation.sim import parse_sim

        return parse_sim(evidence)[0]
    if tee == "snp":
        from enarx_pkg.attestation.snp import parse_report

        return parse_report(evidence)
    if tee in ("tdx", "sgx"):
        from enarx_pkg.attestation.dcap import inspect_quote

        return inspect_quote(evidence)
    if tee == "cca":
        from enarx_pkg.attestation.cca import inspect_cca

        return inspect_cca(evidence)
    raise UsageError(f"unknown TEE {tee!r}: expected one of auto, snp, tdx, sgx, cca, sim")


def fmspc_of(tee: str, evidence: bytes) -> str:
    """The FMSPC of a TDX/SGX quote's PCK certificate (which collateral to fetch)."""
    from enarx_pkg.attestation.dcap import inspect_quote

    if tee not in ("tdx", "sgx"):
        raise UsageError(f"{tee} evidence has no FMSPC")
    return inspect_quote(evidence).pck.fmspc
