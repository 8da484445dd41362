"""Intel DCAP collateral as raw bytes: TCB info, QE identity, their signing chain and CRLs.

The verifier parses and checks these itself (:mod:`enarx_pkg.attestation.tcb`); this module only
holds them and reads them from a directory laid out as ``fetch-collateral`` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from enarx_pkg.errors import InputError

MAX_FILE = 1 << 20
FILES = {
    "tcb_info": "tcbinfo.json",
    "qe_identity": "qe_identity.json",
    "tcb_signing_chain": "tcb_signing_chain.pem",
    "pck_crl": "pck_platform_crl.der",
    "root_crl": "root_ca_crl.der",
    "pck_crl_chain": "pck_crl_issuer_chain.pem",
    "amd_crl": "amd_crl.der",
}


@dataclass(frozen=True)
class Collateral:
    """Collateral for one FMSPC. Any part may be missing; what is present is checked."""

    tcb_info: bytes | None = None
    qe_identity: bytes | None = None
    tcb_signing_chain: bytes | None = None
    pck_crl: bytes | None = None
    root_crl: bytes | None = None
    pck_crl_chain: bytes | None = None
    amd_crl: bytes | None = None

    @classmethod
    def from_dir(cls, path: Path) -> Collateral:
        """Read whichever of the known file names exist in ``path``."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"collateral directory {path} does not exist")
        parts: dict[str, bytes] = {}
        for field_name, file_name in FILES.items():
            f = path / file_name
            if f.is_file():
                if f.stat().st_size > MAX_FILE:
                    raise InputError(f"{f}: larger than {MAX_FILE} bytes")
                parts[field_name] = f.read_bytes()
        return cls(**parts)
