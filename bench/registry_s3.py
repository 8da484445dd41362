"""The S3 row set of ``bench/registry.py``: both registries keeping blobs in the same OpenStack Swift.

Started by ``bench/registry.py --s3``. One Swift all-in-one on 127.0.0.1 (``tests/fixtures/swift.py``),
one bucket per server; credentials reach both servers through the standard AWS environment variables.
CNCF distribution 2.8 uses its ``s3`` driver (path-style addressing is automatic with
``regionendpoint``; redirects off, so blob GETs go through the registry as ours do by default);
ours runs ``registry serve --storage s3://BUCKET/PREFIX --s3-endpoint URL``. Rows: manifest GET
req/s (wrk), blob push and pull MiB/s, and the peak RSS of each replica (all its processes summed,
sampled every 50 ms) during a ``--s3-memory-mib`` push.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.fixtures.swift import Swift

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the registry package and tests.fixtures, ahead of bench/registry.py


def _load_bench() -> Any:
    """bench/registry.py (its clients and helpers) under a name that does not shadow the registry package."""
    spec = importlib.util.spec_from_file_location("bench_registry", Path(__file__).with_name("registry.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_registry"] = module
    spec.loader.exec_module(module)
    return module


bench = sys.modules.get("bench_registry") or _load_bench()
MIB = bench.MIB


def replica_rss_mib(server: Any) -> tuple[float, float]:
    """Current RSS of the replica: (its largest process, the server process and its workers summed)."""
    sizes = []
    for pid in server.pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        sizes += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")]
    return max(sizes, default=0.0), sum(sizes)


class RssSampler:
    """Samples :func:`replica_rss_mib` in a thread; ``peak`` is the largest value seen."""

    def __init__(self, server: Any) -> None:
        self.server, self.peak, self.peak_process = server, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            largest, total = replica_rss_mib(self.server)
            self.peak, self.peak_process = max(self.peak, total), max(self.peak_process, largest)
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _env(swift: Swift) -> dict[str, str]:
    """Only Swift's credentials from the AWS family (an inherited AWS_CA_BUNDLE makes distribution's SDK panic)."""
    from tests.fixtures.swift import env_without_aws

    return {**env_without_aws(), **swift.env()}


def start_distribution_s3(root: Path, swift: Swift, bucket: str) -> Any:
    port = bench.free_port()
    config = root / "distribution-s3.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n"
        "  cache:\n    blobdescriptor: inmemory\n  redirect:\n    disable: true\n  s3:\n"
        f"    region: {swift.region}\n    regionendpoint: {swift.endpoint}\n    bucket: {bucket}\n"
        "    rootdirectory: /dist\n    secure: false\n    v4auth: true\n    chunksize: 10485760\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(swift))
    url = f"http://127.0.0.1:{port}"
    bench.wait(url, proc)
    return bench.Server("CNCF distribution 2.8 (s3 driver)", url, proc, {})


def start_ours_s3(root: Path, swift: Swift, bucket: str, workers: int) -> Any:
    from registry.admin import create_token
    from registry.settings import Settings

    data = root / "ours-s3"
    token = create_token(Settings(data), "bench", ["admin"], None)[1]
    port = bench.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "registry", "serve", "--data", str(data), "--port",
                             str(port), "--workers", str(workers), "--anonymous-pull", "--access-log", "off",
                             "--storage", f"s3://{bucket}/reg", "--s3-endpoint", swift.endpoint],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env=_env(swift))
    url = f"http://127.0.0.1:{port}"
    bench.wait(url, proc)
    return bench.Server(f"enarx-pkg registry --storage s3:// ({workers} workers)", url, proc,
                        {"Authorization": f"Bearer {token}"})


def wrk(url: str, duration: int) -> float:
    """bench.wrk with a 10 s request timeout: distribution on Swift answers in ~2 s at 32 connections here."""
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{duration}s", "--timeout", "10s", "-H", f"Accept: {bench.MANIFEST}",
                          url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None or re.search(r"Non-2xx or 3xx responses|Socket errors: .*timeout [1-9]", out):
        raise SystemExit(f"wrk failed or saw errors:\n{out}")
    return float(m.group(1))


def measure_s3(server: Any, args: argparse.Namespace, client: httpx.Client) -> dict[str, float]:
    url = bench.seed_manifest(client, server)
    rps = statistics.median(wrk(url, args.duration) for _ in range(args.runs))
    conn = bench.Conn(server)
    size = args.s3_size_mib * MIB
    pushes, pulls = [], []
    for i in range(args.runs):
        salt = f"{server.name}-{i}-{time.time()}".encode()
        digest, t = bench.push(conn, f"bench/s3big{i}", size, salt)
        pushes.append(args.s3_size_mib / t)
        pulls.append(args.s3_size_mib / bench.pull(conn, f"bench/s3big{i}", digest, size))
    idle = replica_rss_mib(server)[1]
    with RssSampler(server) as sampler:  # a fresh connection: the last one may have idled out
        bench.push(bench.Conn(server), "bench/s3memory", args.s3_memory_mib * MIB, f"mem-{time.time()}".encode())
    return {"manifest_get_rps": rps, "push_mib_s": statistics.median(pushes), "pull_mib_s": statistics.median(pulls),
            "rss_idle_mib": idle, "rss_push_peak_mib": sampler.peak, "rss_push_peak_process_mib": sampler.peak_process}


def run_s3(args: argparse.Namespace, root: Path) -> dict[str, dict[str, float]]:
    """Start Swift, then each server on a bucket of its own; the measurements by server name."""
    from tests.fixtures.swift import available, new_bucket, run_swift

    why = available()
    if why:
        raise SystemExit(f"OpenStack Swift is needed for --s3: {why}")
    results: dict[str, dict[str, float]] = {}
    (root / "swift").mkdir()
    with run_swift(root / "swift") as swift, httpx.Client(timeout=300) as client:
        starters = (lambda: start_distribution_s3(root, swift, new_bucket(swift)),
                    lambda: start_ours_s3(root, swift, new_bucket(swift), args.workers))
        for start in starters:
            server = start()
            try:
                results[server.name] = measure_s3(server, args, client)
                print(f"{server.name}: {json.dumps(results[server.name])}", file=sys.stderr, flush=True)
            finally:
                server.process.terminate()
                server.process.wait(20)
    return results


def report_s3(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"s3": results}, indent=2))
        return
    (peer_name, peer), (ours_name, ours) = results.items()
    print(f"\nS3 row set (OpenStack Swift s3api on 127.0.0.1): blob {args.s3_size_mib} MiB, memory during a "
          f"{args.s3_memory_mib} MiB push, {args.runs} runs")
    print(f"{'':28}{'distribution':>14}{'enarx-pkg':>14}{'ratio':>8}{'target':>8}")
    for label, key, target in (("manifest GET req/s", "manifest_get_rps", 10.0), ("blob push MiB/s", "push_mib_s", 1.0),
                               ("blob pull MiB/s", "pull_mib_s", 1.0)):
        ratio = ours[key] / peer[key]
        print(f"{label:28}{peer[key]:>14.1f}{ours[key]:>14.1f}{ratio:>7.2f}x{target:>7.1f}x"
              f"{'' if ratio >= target else '  (below target)'}")
    print(f"{'replica RSS idle (all procs)':28}{peer['rss_idle_mib']:>13.1f}M{ours['rss_idle_mib']:>13.1f}M")
    print(f"{'peak in push, all procs':28}{peer['rss_push_peak_mib']:>13.1f}M{ours['rss_push_peak_mib']:>13.1f}M")
    peak = ours["rss_push_peak_process_mib"]
    print(f"{'peak in push, largest proc':28}{peer['rss_push_peak_process_mib']:>13.1f}M{peak:>13.1f}M"
          f"{'':>8}  <150M{'' if peak < 150 else '  (above target)'}")
    print(f"(servers: {peer_name}; {ours_name})")
