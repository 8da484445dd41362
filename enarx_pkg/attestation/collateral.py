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


CERT_SUFFIXES = (".pem", ".der", ".crt", ".cer")


@dataclass(frozen=True)
class Collateral:
    """Collateral for one piece of evidence. Any part may be missing; what is present is checked.

    ``certs`` are the other certificate files of the folder (an SNP VCEK/VLEK and ASK/ARK, as
    ``fetch-collateral`` saves them); the verifiers use them beside the evidence's own.
    """

    tcb_info: bytes | None = None
    qe_identity: bytes | None = None
    tcb_signing_chain: bytes | None = None
    pck_crl: bytes | None = None
    root_crl: bytes | None = None
    pck_crl_chain: bytes | None = None
    amd_crl: bytes | None = None
    certs: tuple[bytes, ...] = ()

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
                parts[field_name] = _read(f)
        named = set(FILES.values())
        certs = tuple(_read(f) for f in sorted(path.iterdir())
                      if f.is_file() and f.suffix in CERT_SUFFIXES and f.name not in named)
        return cls(**parts, certs=certs)


def _read(f: Path) -> bytes:
    if f.stat().st_size > MAX_FILE:
        raise InputError(f"{f}: larger than {MAX_FILE} bytes")
    return f.read_bytes()
