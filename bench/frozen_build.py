"""What the frozen host costs: `enarx-pkg build` of examples/python with and without it.

The peer is the same build with `[build] deterministic = false` (componentize-py on the real
host), measured side by side, alternating, in this run. Target: frozen ≤ 1.2× unfrozen. The first
round is untimed (it fills componentize-py's and zig's caches and compiles the frozen-host library).
Usage: .venv/bin/python bench/frozen_build.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENARX_PKG = Path(sys.executable).parent / "enarx-pkg"


def project(tmp: Path, name: str, deterministic: bool) -> Path:
    dest = tmp / name
    shutil.copytree(ROOT / "examples" / "python", dest, ignore=shutil.ignore_patterns("target", "__pycache__"))
    toml = dest / "Enarx.toml"
    text = toml.read_text()
    toml.write_text(text.replace("deterministic = true", f"deterministic = {str(deterministic).lower()}"))
    return dest


def timed_build(where: Path) -> float:
    shutil.rmtree(where / "target", ignore_errors=True)
    for cache in where.rglob("__pycache__"):
        shutil.rmtree(cache)
    t = time.perf_counter()
    subprocess.run([str(ENARX_PKG), "build", str(where), "--json"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        frozen, real = project(Path(tmp), "frozen", True), project(Path(tmp), "real", False)
        timed_build(frozen), timed_build(real)
        ours, peer = [], []
        for _ in range(opts.runs):
            ours.append(timed_build(frozen))
            peer.append(timed_build(real))
        a, b = statistics.median(ours), statistics.median(peer)
        for label, median, runs in (("frozen host", a, ours), ("deterministic = false", b, peer)):
            print(f"build examples/python, {label:21} median {median:6.2f} s  (runs: "
                  f"{', '.join(f'{x:.1f}' for x in runs)})")
        print(f"ratio frozen/unfrozen: {a / b:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
