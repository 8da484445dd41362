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
from pathlib import Path
from typing import Any

from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.errors import InputError


def collateral_for(table: Mapping[str, Any], tee: str, evidence: bytes, *, base: Path, cache: Path,
                   evidence_certs: Sequence[bytes] = ()) -> Collateral | None:
    """The collateral (with the folder's certificates) for ``evidence`` per the ``[collateral]`` ``table``.

    ``base`` is the directory relative paths in ``table`` start from (the policy file's); ``cache``
    is where ``source = "fetch"`` writes when ``dir`` is not set; ``evidence_certs`` (the host's
    certificate table) can name the product of a v2 SNP report for the fetch.
    """
    source, where = table.get("source"), table.get("dir")
    if source is None:
        source = "offline" if where else "evidence"
    if source == "evidence":
        if where:
            raise InputError("policy [collateral]: dir is set but source = \"evidence\" ignores it; "
                             "use source = \"offline\" or drop dir")
        return None
    if source == "offline" and not where:
        raise InputError("policy [collateral]: source = \"offline\" needs dir = \"...\"")
    if source == "fetch" and tee == "sim":  # a software keep has nothing to fetch
        return None
    folder = base / where if where else cache / "collateral" / tee
    if source == "fetch":
        from enarx_pkg.attestation import fetch

        folder.mkdir(parents=True, exist_ok=True)
        fetch.download(fetch.plan_for(tee, evidence, certs=evidence_certs), folder)
    return Collateral.from_dir(folder)
