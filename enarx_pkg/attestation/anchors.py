"""Pinned vendor trust anchors: SHA-256 of each root's DER SubjectPublicKeyInfo.

These are published facts (AMD KDS ARKs, the Intel SGX Root CA). The certificates themselves are
never shipped: they arrive with the evidence, from ``--certs`` / ``--collateral``, or from
``fetch-collateral``. A root whose key hash is not listed here is refused.
"""

from __future__ import annotations

AMD_ARK_SPKI_SHA256: dict[str, str] = {
    "Milan": "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
    "Genoa": "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
    "Turin": "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
}

INTEL_SGX_ROOT_SPKI_SHA256 = "a0af031289f5d5d4132f9186068a7fc13628633ba235777472e29b6b6c67a49e"
