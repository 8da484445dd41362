"""Publish/pull throughput of enarx-pkg vs skopeo and oras-py against one docker-registry, and pull RSS.

    .venv/bin/python bench/transfer.py [--size-mib 256] [--runs 3] [--rss-size-mib N]

Every tool runs as its own process (CLI start-up included, as a user runs it), pushing to a fresh
repository each run so nothing is skipped, and pulling into a fresh directory. Prints medians (MiB/s)
and the ratios of enarx-pkg against each peer measured in this same run, then the peak RSS of an
``enarx-pkg pull`` of one blob of ``--rss-size-mib`` (default: the same size).

Each tool first publishes and pulls a 1 MiB package untimed (warm-up), and the Python tools run with
bytecode caching on, in a temp ``PYTHONPYCACHEPREFIX``: as installed by pip, not recompiling their
sources at every start because this sandbox sets ``PYTHONDONTWRITEBYTECODE``.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.distribution import start_registry  # noqa: E402
from tests.transfer.conftest import make_package  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENARX = str(REPO / ".venv" / "bin" / "enarx-pkg")

ORAS_PUSH = """
import sys, oras.provider
host, target, path = sys.argv[1:4]
oras.provider.Registry(hostname=host, insecure=True).push(
    target=target, files=[path + ":application/octet-stream"], disable_path_validation=True, quiet=True)
"""
ORAS_PULL = """
import sys, oras.provider
host, target, out = sys.argv[1:4]
oras.provider.Registry(hostname=host, insecure=True).pull(target=target, outdir=out)
"""


def run(argv: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Run one command; returns (seconds, child peak RSS in bytes)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def tools(host: str, layout: Path, blob: Path, work: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (publish argv, pull argv) with {i} placeholders for the run number."""
    reg = f"docker://{host}"
    return {
        "enarx-pkg": (
            [ENARX, "publish", str(layout), "--registry", host, "--repository", "bench/ours{i}", "--tag", "t"],
            [ENARX, "pull", f"{host}/bench/ours{{i}}:t", "-o", str(work / "ours{i}")],
        ),
        "skopeo": (
            ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:t", f"{reg}/bench/skopeo{{i}}:t"],
            ["skopeo", "copy", "-q", "--src-tls-verify=false", f"{reg}/bench/skopeo{{i}}:t",
             f"oci:{work}/skopeo{{i}}:t"],
        ),
        "oras-py": (
            [PY, "-c", ORAS_PUSH, host, f"{host}/bench/oras{{i}}:t", str(blob)],
            [PY, "-c", ORAS_PULL, host, f"{host}/bench/oras{{i}}:t", str(work / "oras{i}")],
        ),
    }


def measure(argv: list[str], i: int, size: int) -> float:
    secs, _ = run([a.replace("{i}", str(i)) for a in argv])
    return size / (1 << 20) / secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-size-mib", type=int, default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="enarx-bench-"))
    ENV["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    peer = start_registry(base / "registry")
    try:
        bench(base, peer.host, args.size_mib << 20, args.runs)
        rss(base, peer.host, (args.rss_size_mib or args.size_mib) << 20)
    finally:
        if peer.process:
            peer.process.terminate()
        shutil.rmtree(base, ignore_errors=True)


def _layout(base: Path, name: str, size: int) -> tuple[Path, Path]:
    layout, dg = make_package(base / name, note=name, extra=size, tag="t")
    big = max(layout.manifest(dg).layers, key=lambda d: d.size)
    return layout.path, layout.blob_path(big.digest)


def bench(base: Path, host: str, size: int, runs: int) -> None:
    results: dict[str, tuple[float, float]] = {}
    for name in ("enarx-pkg", "skopeo", "oras-py"):
        layout, blob = _layout(base, f"warm-{name}", 1 << 20)
        push, pull = tools(host, layout, blob, base / "out")[name]
        measure(push, -1, 1), measure(pull, -1, 1)
        ups, downs = [], []
        for i in range(runs):
            # a fresh random blob per run: skopeo's blob-info cache would otherwise turn a push of a blob
            # it has seen into a cross-repository mount, which measures nothing
            layout, blob = _layout(base, f"{name}{i}", size)
            push, pull = tools(host, layout, blob, base / "out")[name]
            ups.append(measure(push, i, size))
            downs.append(measure(pull, i, size))
            shutil.rmtree(layout, ignore_errors=True)
        results[name] = (statistics.median(ups), statistics.median(downs))
    print(f"docker-registry {host}, one {size >> 20} MiB blob, median of {runs} runs (MiB/s, process start included)")
    print(f"{'tool':<10} {'publish':>9} {'pull':>9}")
    for name, (up, down) in results.items():
        print(f"{name:<10} {up:9.1f} {down:9.1f}")
    ours = results["enarx-pkg"]
    for peer in ("skopeo", "oras-py"):
        up, down = results[peer]
        print(f"enarx-pkg / {peer:<8} publish {ours[0] / up:5.2f}x   pull {ours[1] / down:5.2f}x")


def rss(base: Path, host: str, size: int) -> None:
    layout, _ = _layout(base, "rss", size)
    run([ENARX, "publish", str(layout), "--registry", host, "--repository", "bench/rss", "--tag", "t"])
    shutil.rmtree(layout, ignore_errors=True)
    secs, peak = run([ENARX, "pull", f"{host}/bench/rss:t", "-o", str(base / "rss-out")])
    print(f"enarx-pkg pull of a {size >> 20} MiB blob: peak RSS {peak / 1e6:.1f} MB "
          f"({size / (1 << 20) / secs:.1f} MiB/s)")


if __name__ == "__main__":
    main()
