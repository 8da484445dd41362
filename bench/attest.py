"""Attestation verification throughput vs the bare signature checks it cannot avoid (same run).

    .venv/bin/python bench/attest.py [--seconds 0.5] [--rounds 5]

SNP: full verify_snp (cold: chain caches cleared every time; warm: chain cached) vs one
`cryptography` ECDSA P-384 verify of the report signature. TDX: full DCAP quote verification
(RFC 5280 path validation and Intel's roles for the PCK chain, cached by its bytes when warm) vs two
P-256 verifies (quote signature + QE report signature), and with the 2023 collateral (TCB info, QE
identity and CRL signatures cached by their bytes; windows, levels and revocation checked every
time). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg.attestation import _x509, dcap, snp
from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.attestation.dcap import _sig

VECTORS = Path(__file__).resolve().parent.parent.parent / "shared" / "testvectors"
AT = datetime(2026, 6, 1, tzinfo=UTC)


def _once(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def rates(cases: dict[str, Callable[[], object]], seconds: float, rounds: int) -> dict[str, float]:
    """Median operations per second; cases are interleaved round by round so machine load hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(_once(fn, seconds))
    return {name: statistics.median(v) for name, v in samples.items()}


def snp_cases() -> dict[str, Callable[[], object]]:
    report = (VECTORS / "snp/virtee-milan/report.bin").read_bytes()
    certs = [(VECTORS / "snp/virtee-milan/vcek.der").read_bytes(),
             (VECTORS / "snp/roots/ask_ark_milan.pem").read_bytes()]
    key = _x509.load_certs(certs[:1])[0].public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    sig, signed = snp._signature(report), report[: snp.SIGNED_LEN]

    def cold() -> object:
        snp._chain_for_pinned.cache_clear()
        snp._verified_chain_pinned.cache_clear()
        return snp.verify_snp(report, certs=certs, at=AT)

    return {
        "bare P-384 verify": lambda: key.verify(sig, signed, ec.ECDSA(hashes.SHA384())),
        "verify_snp cold": cold,
        "verify_snp warm": lambda: snp.verify_snp(report, certs=certs, at=AT),
    }


def tdx_cases() -> dict[str, Callable[[], object]]:
    quote = (VECTORS / "tdx/trustee-v4-spr/quote.dat").read_bytes()
    q = dcap.parse_quote(quote)
    pck = dcap.verified_pck_chain(q.pck_chain.rstrip(b"\0")).key
    att = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + q.att_key)
    s1, s2 = _sig(q.signature), _sig(q.qe_report_sig)

    def bare() -> None:
        att.verify(s1, q.signed, ec.ECDSA(hashes.SHA256()))
        pck.verify(s2, q.qe_report, ec.ECDSA(hashes.SHA256()))

    def cold() -> object:
        dcap._verified_pck_chain.cache_clear()
        return dcap.verify_quote(quote, at=AT)

    col = Collateral.from_dir(VECTORS / "tdx/collateral-2023-06-fmspc-50806f000000")
    at_2023 = datetime(2023, 6, 20, tzinfo=UTC)
    return {"bare 2x P-256 verify": bare, "verify_quote cold": cold,
            "verify_quote warm": lambda: dcap.verify_quote(quote, at=AT),
            "+ collateral warm": lambda: dcap.verify_quote(quote, collateral=col, at=at_2023)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.3, help="length of one timed round")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    for title, cases in (("SEV-SNP report", snp_cases()), ("TDX quote v4", tdx_cases())):
        measured = rates(cases, args.seconds, args.rounds)
        bare = next(iter(measured.values()))
        print(f"{title}:")
        for name, r in measured.items():
            print(f"  {name:<22} {r:10.0f} /s   {r / bare:5.2f}x bare")
    print("targets: warm SNP >= 0.80x bare P-384; warm TDX >= 0.50x bare P-256 pair")


if __name__ == "__main__":
    main()
