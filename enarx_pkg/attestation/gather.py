"""Gather what verifying one piece of evidence needs, as a policy's ``[collateral]`` table says.

``source = "evidence"`` (the default without ``dir``): only the certificates that came with the
evidence (an SNP host's certificate table, the PCK chain inside a quote). ``"offline"`` (the default
with ``dir``): the files in ``dir``, relative to the policy file: Intel TCB info, QE identity and
CRLs, and for SNP the VCEK/VLEK, ASK/ARK and ``amd_crl.der``. ``"fetch"``: what this evidence needs
downloaded from AMD KDS (for the report's own product: Milan, Genoa or Turin) or Intel PCS into
``dir`` (default: the caller's cache), then read like ``offline``. Everything gathered is untrusted
input: the verifiers check it against the pinned roots like the evidence itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.errors import InputError


@dataclass(frozen=True)
class Gathered:
    """Certificates and collateral to pass to :func:`enarx_pkg.attestation.verify_evidence`."""

    certs: tuple[bytes, ...]
    collateral: Collateral | None


def gather(tee: str, evidence: bytes, evidence_certs: Sequence[bytes], table: Mapping[str, Any], *,
           base: Path, cache: Path) -> Gathered:
    """Certificates and collateral for ``evidence`` per the ``[collateral]`` ``table``.

    ``base`` is the directory relative paths in ``table`` start from (the policy file's); ``cache``
    is where ``source = "fetch"`` writes when ``dir`` is not set.
    """
    source, where = table.get("source"), table.get("dir")
    if source is None:
        source = "offline" if where else "evidence"
    if source == "evidence":
        if where:
            raise InputError("policy [collateral]: dir is set but source = \"evidence\" ignores it; "
                             "use source = \"offline\" or drop dir")
        return Gathered(tuple(evidence_certs), None)
    if source == "offline" and not where:
        raise InputError("policy [collateral]: source = \"offline\" needs dir = \"...\"")
    if source == "fetch" and tee == "sim":  # a software keep has nothing to fetch
        return Gathered(tuple(evidence_certs), None)
    folder = base / where if where else cache / "collateral" / tee
    if source == "fetch":
        from enarx_pkg.attestation import fetch

        folder.mkdir(parents=True, exist_ok=True)
        fetch.download(fetch.plan_for(tee, evidence, certs=evidence_certs), folder)
    return from_dir(tee, evidence_certs, folder)


def from_dir(tee: str, evidence_certs: Sequence[bytes], folder: Path) -> Gathered:
    """The evidence's own certificates plus the certificates and collateral files in ``folder``."""
    from enarx_pkg.attestation import files

    collateral = Collateral.from_dir(folder)
    return Gathered(tuple(evidence_certs) + tuple(files.read_certs(folder, tee)), collateral)
