"""Packaging a 50 MB prebuilt module with `enarx-pkg build` vs `sha256sum` + `cp` of the same file.

Target: build ≤ 1.5x the peer. Medians of N runs (default 5), measured side by side in this run.
enarx-pkg runs with Python's bytecode cache on (a temporary PYTHONPYCACHEPREFIX, warmed by one
untimed build), as an installed package would: PYTHONDONTWRITEBYTECODE would recompile every
enarx_pkg module on every start.
Usage: .venv/bin/python bench/build.py [--runs N] [--mb SIZE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parent.parent
ENARX_PKG = Path(sys.executable).parent / "enarx-pkg"


def big_module(size_mb: int) -> bytes:
    """A valid WASI command of about ``size_mb`` MB: mostly passive data, as large binaries are."""
    chunk = "\\00" * (1 << 20)
    data = " ".join(f'(data "{chunk}")' for _ in range(size_mb))
    return bytes(wasmtime.wat2wasm(f'(module (memory (export "memory") 1) {data} (func (export "_start")))'))


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=50)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "big"
        project.mkdir()
        (project / "big.wasm").write_bytes(big_module(opts.mb))
        (project / "Enarx.toml").write_text('[package]\nname = "big"\nversion = "1.0.0"\n'
                                            '[build]\nrecipe = "prebuilt"\noutput = "big.wasm"\n')
        size = (project / "big.wasm").stat().st_size
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        timed([str(ENARX_PKG), "build", str(project), "--json"], project, env)  # warm the bytecode cache
        ours, peer = [], []
        for _ in range(opts.runs):
            shutil.rmtree(project / "target", ignore_errors=True)
            ours.append(timed([str(ENARX_PKG), "build", str(project), "--json"], project, env))
            Path(tmp, "copy.wasm").unlink(missing_ok=True)
            peer.append(timed(["sh", "-c", "sha256sum big.wasm >/dev/null && cp big.wasm ../copy.wasm"], project))
    mo, mp = statistics.median(ours), statistics.median(peer)
    print(f"module size            {size / 1e6:.1f} MB, {opts.runs} runs each")
    print(f"enarx-pkg build        median {mo * 1000:8.1f} ms")
    print(f"sha256sum + cp (peer)  median {mp * 1000:8.1f} ms")
    print(f"ratio                  {mo / mp:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
