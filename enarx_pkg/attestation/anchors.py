"""Pinned vendor trust anchors: SHA-256 of each root's DER SubjectPublicKeyInfo.

These are published facts (AMD KDS ARKs, the Intel SGX Root CA). The certificates themselves are
never shipped: they arrive with the evidence, from ``--certs`` / ``--collateral``, or from
``fetch-collateral``. A root whose key hash is not listed here is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

AMD_ARK_SPKI_SHA256: dict[str, str] = {
    "Milan": "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
    "Genoa": "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
    "Turin": "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
}

INTEL_SGX_ROOT_SPKI_SHA256 = "a0af031289f5d5d4132f9186068a7fc13628633ba235777472e29b6b6c67a49e"

_test_intel_root: str | None = None
_test_amd_arks: dict[str, str] | None = None


def intel_roots() -> frozenset[str]:
    """The pinned Intel SGX Root CA key(s) in force (a test may have replaced them)."""
    return frozenset({_test_intel_root or INTEL_SGX_ROOT_SPKI_SHA256})


def amd_arks() -> dict[str, str]:
    """Product -> pinned ARK key in force (a test may have replaced them)."""
    return dict(_test_amd_arks or AMD_ARK_SPKI_SHA256)


@contextmanager
def replaced_for_tests(*, intel: str | None = None, amd: dict[str, str] | None = None) -> Iterator[None]:
    """Pin a test root IN PLACE of the vendor's, for a chain a test made itself.

    Only Python code can call this: no option, environment variable, file or policy key reaches it,
    so the CLI and ``deploy`` always verify against the vendor roots above.
    """
    global _test_intel_root, _test_amd_arks
    saved = _test_intel_root, _test_amd_arks
    _test_intel_root, _test_amd_arks = intel, amd
    try:
        yield
    finally:
        _test_intel_root, _test_amd_arks = saved
