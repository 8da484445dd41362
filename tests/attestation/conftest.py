"""Helpers for attestation tests: read the real vectors in place (never copied into the repo)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

# times at which every certificate of the named vector is valid
NOW_2026 = datetime(2026, 11, 26, tzinfo=UTC)
VLEK_VALID = datetime(2025, 6, 1, tzinfo=UTC)
TDX_2023 = datetime(2023, 6, 20, tzinfo=UTC)

SNP_VECTORS = {  # dir -> (leaf file, roots file, a time when valid)
    "gsg-milan-debug": ("vcek.der", "ask_ark_milan.pem", NOW_2026),
    "virtee-milan": ("vcek.der", "ask_ark_milan.pem", NOW_2026),
    "trustee-milan-idblock": ("vcek.der", "ask_ark_milan.pem", NOW_2026),
    "trustee-milan-vlek": ("vlek.der", "ask_ark_milan_vlek.pem", VLEK_VALID),
    "azure-genoa-vtpm": ("vcek.pem", "ask_ark_genoa.pem", NOW_2026),
}


class Vectors:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def snp(self, name: str) -> tuple[bytes, list[bytes], datetime]:
        leaf, roots, at = SNP_VECTORS[name]
        return self.read(f"snp/{name}/report.bin"), [self.read(f"snp/{name}/{leaf}"),
                                                     self.read(f"snp/roots/{roots}")], at


@pytest.fixture(scope="session")
def vec(testvectors: Path) -> Vectors:
    return Vectors(testvectors)
