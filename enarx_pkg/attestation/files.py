"""Reading evidence, certificates and collateral from disk for the CLI (the verifiers never do I/O)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enarx_pkg._internal import bounded
from enarx_pkg.attestation.collateral import CERT_SUFFIXES, Collateral
from enarx_pkg.attestation.collateral import FILES as COLLATERAL_FILES
from enarx_pkg.attestation.policy import Appraisal, appraise, load_policy
from enarx_pkg.errors import InputError, NotFoundError, UsageError

MAX_EVIDENCE = 1 << 20
_CERT_SUFFIXES = set(CERT_SUFFIXES)


def read_evidence(path: Path) -> bytes:
    """Evidence bytes; an Azure ``evidence*.json`` holding a ``report`` int array yields the HCL report."""
    data = bounded.file(path, "evidence file", MAX_EVIDENCE)  # a FIFO or /dev/zero cannot make it read on
    if path.suffix == ".hex":
        try:
            return bytes.fromhex(data.decode("ascii").strip())
        except ValueError as exc:
            raise InputError(f"{path}: not a hex file") from exc
    return data


def read_certs(directory: Path | None, tee: str) -> list[bytes]:
    """Certificates (or, for CCA, the CPAK JWK/PEM) from a directory."""
    if directory is None:
        return []
    if not directory.is_dir():
        raise NotFoundError(f"certificate directory {directory} does not exist")
    suffixes = {".json", ".pem"} if tee == "cca" else _CERT_SUFFIXES
    not_certs = set(COLLATERAL_FILES.values())  # CRLs, TCB info, ... are read as collateral, not certificates
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in suffixes and p.name not in not_certs)
    return [p.read_bytes() for p in files if p.stat().st_size <= MAX_EVIDENCE]


def parse_time(text: str | None) -> datetime | None:
    """``--at``: an ISO 8601 date or time; naive values are UTC."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time (e.g. 2025-06-01T00:00:00Z)") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class VerifyRequest:
    evidence: Path
    policy: Path
    tee: str = "auto"
    certs: Path | None = None
    collateral: Path | None = None
    at: str | None = None
    expected_report_data: str | None = None


def verify_file(req: VerifyRequest) -> tuple[Any, Appraisal]:
    """Verify an evidence file and appraise it against a policy file (``attest verify``)."""
    from enarx_pkg.attestation import dispatch

    policy = load_policy(req.policy)
    data = read_evidence(req.evidence)
    tee = dispatch.detect(data) if req.tee == "auto" else req.tee
    col = Collateral.from_dir(req.collateral) if req.collateral else None  # its certificates come with it
    certs = read_certs(req.certs, tee) + (read_certs(req.collateral, tee) if tee == "cca" else [])
    claims = dispatch.verify(tee, data, certs=certs, collateral=col, at=parse_time(req.at))
    expected = None
    if req.expected_report_data is not None:
        try:
            expected = bytes.fromhex(req.expected_report_data)
        except ValueError as exc:
            raise UsageError("--expected-report-data must be hex") from exc
    return claims, appraise(claims, policy, expected_report_data=expected)


def to_jsonable(obj: Any) -> Any:
    """Claims dataclasses → JSON-ready values (bytes as hex, datetimes as ISO 8601)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, tuple | list):
        return [to_jsonable(x) for x in obj]
    return obj
