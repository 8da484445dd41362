"""Signature verification speed: `python bench/verify.py` (about 30 s).

1. key-signed package verifications/s (blobs re-hashed + DSSE + statement), in process, against the
   floor: one bare ECDSA P-256 verify with `cryptography`;
2. offline keyless bundle verifications/s through enarx-pkg, against sigstore-python's own
   `Verifier.verify_artifact` on the same real bundle;
3. wall time of `enarx-pkg verify --key` (a fresh process) against `python -c "import sigstore.verify"`
   (the floor for any keyless verification), `enarx-pkg verify --help` (CLI start-up) and `python -c pass`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO.parent / "shared" / "testvectors" / "sigstore"
sys.path.insert(0, str(REPO))
PY = sys.executable


def per_second(fn: Callable[[], object], seconds: float = 2.0) -> float:
    """Median operations/s over 5 rounds of ~seconds/5 each."""
    rates = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            fn()
            n += 1
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def wall(argv: list[str], runs: int = 7) -> float:
    """Median wall time of a fresh process, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=REPO)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def key_based(tmp: Path) -> tuple[float, float, Path, Path]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from enarx_pkg import keys, sign, verify
    from tests.signing.conftest import make_package

    layout, _ = make_package(tmp / "layout")
    keys.generate(tmp / "k", password_env=None)
    sign.sign_layout(layout, None, key=keys.load_private(tmp / "k.key", password_env=None))
    policy = verify.KeyPolicy((tmp / "k.pub").read_bytes())
    ours = per_second(lambda: verify.verify_layout(layout, None, policy))
    key = ec.generate_private_key(ec.SECP256R1())
    msg = b"x" * 1500
    sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    floor = per_second(lambda: key.public_key().verify(sig, msg, ec.ECDSA(hashes.SHA256())))
    return ours, floor, tmp / "layout", tmp / "k.pub"


def keyless() -> tuple[float, float]:
    from sigstore.models import Bundle
    from sigstore.verify import Verifier, policy

    from enarx_pkg import verify

    data = (VECTORS / "bundle_v3.txt.sigstore").read_bytes()
    artifact = (VECTORS / "bundle_v3.txt").read_bytes()
    ours_policy = verify.IdentityPolicy(identity="william@yossarian.net", issuer="https://github.com/login/oauth",
                                        staging=True)
    ours = per_second(lambda: verify.verify_artifact_bundle(data, artifact, ours_policy))
    verifier = Verifier.staging(offline=True)
    peer_policy = policy.Identity(identity="william@yossarian.net", issuer="https://github.com/login/oauth")
    peer = per_second(lambda: verifier.verify_artifact(artifact, Bundle.from_json(data), peer_policy))
    return ours, peer


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, floor, layout, pub = key_based(Path(tmp))
        print(f"key-signed package verify:   {ours:8.0f}/s   bare ECDSA P-256 verify: {floor:8.0f}/s"
              f"   ratio {ours / floor:.2f}")
        k_ours, k_peer = keyless()
        print(f"offline keyless bundle:      {k_ours:8.0f}/s   sigstore-python direct:  {k_peer:8.0f}/s"
              f"   ratio {k_ours / k_peer:.2f}")
        exe = str(Path(PY).parent / "enarx-pkg")
        cli = wall([exe, "verify", str(layout), "--key", str(pub)])
        imp = wall([PY, "-c", "import sigstore.verify"])
        helps = wall([exe, "verify", "--help"])
        bare = wall([PY, "-c", "pass"])
        print(f"wall: enarx-pkg verify --key {cli:6.0f} ms   python -c 'import sigstore.verify' {imp:6.0f} ms"
              f"   ratio {cli / imp:.2f}")
        print(f"      floors: enarx-pkg verify --help {helps:6.0f} ms (CLI start-up: typer)"
              f"   python -c pass {bare:5.0f} ms")


if __name__ == "__main__":
    main()
