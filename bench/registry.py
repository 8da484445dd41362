"""Registry benchmark: the enarx-pkg registry side by side with CNCF distribution (docker-registry).

One command: ``.venv/bin/python bench/registry.py [--size-mib 64] [--workers 2] [--duration 3]``.
Same machine, same clients for both servers: ``wrk`` (32 connections) for manifest GET, one httpx
http.client connection streaming 1 MiB chunks for blob push (POST, PATCH, PUT) and pull (GET). Peak RSS is each
server's VmHWM (largest process), read after a small blob and again after the big one: streaming
servers stay flat. Prints medians of ``--runs`` runs and the ratios ours / distribution.
``--s3`` (or ``--s3-only``) adds the object-storage row set: both servers on one OpenStack Swift
(bench/registry_s3.py).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    headers: dict[str, str]

    def pids(self) -> list[int]:
        out = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            children = []
        return out + [int(c) for c in children]

    def peak_rss_mib(self) -> float:
        peaks = []
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"VmHWM:\s+(\d+) kB", status)
            if m:
                peaks.append(int(m.group(1)) / 1024)
        return max(peaks, default=0.0)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        try:
            httpx.get(url + "/v2/", timeout=1)
            return
        except httpx.HTTPError:
            if process.poll() is not None:
                raise SystemExit(f"server at {url} exited") from None
            time.sleep(0.05)
    raise SystemExit(f"server at {url} did not start")


def start_ours(root: Path, workers: int) -> Server:
    sys.path.insert(0, str(ROOT))
    from registry.admin import create_token
    from registry.settings import Settings

    data = root / "ours"
    token = create_token(Settings(data), "bench", ["admin"], None)[1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "registry", "serve", "--data", str(data), "--port",
                             str(port), "--workers", str(workers), "--anonymous-pull",
                             "--access-log", "off"],  # distribution's access log is off too
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait(url, proc)
    return Server(f"enarx-pkg registry ({workers} worker{'s' if workers > 1 else ''})", url, proc,
                  {"Authorization": f"Bearer {token}"})


def start_distribution(root: Path) -> Server:
    if shutil.which("docker-registry") is None:
        raise SystemExit("docker-registry is not installed (scripts/install-system-deps.sh)")
    port = free_port()
    config = root / "distribution.yml"
    # Debian's default configuration (in-memory blob descriptor cache), quiet logs, loopback only
    config.write_text(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n"
                      f"  cache:\n    blobdescriptor: inmemory\n  filesystem:\n"
                      f"    rootdirectory: {root / 'distribution'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait(url, proc)
    return Server("CNCF distribution (docker-registry)", url, proc, {})


def chunks(size: int, salt: bytes) -> Iterator[bytes]:
    block = (salt * (MIB // len(salt) + 1))[:MIB]
    for _ in range(size // MIB):
        yield block


def digest_of(size: int, salt: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks(size, salt):
        h.update(c)
    return "sha256:" + h.hexdigest()


class Conn:
    """One keep-alive HTTP/1.1 connection (http.client: cheap per byte, so the client is not the bottleneck)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = httpx.URL(server.url)
        self.http = http.client.HTTPConnection(self.url.host, self.url.port, timeout=300)

    def send(self, method: str, target: str, body: Iterator[bytes] | bytes | None = None,
             length: int = 0) -> http.client.HTTPResponse:
        headers = {**self.server.headers, "Content-Length": str(length)}
        self.http.request(method, target, body=body, headers=headers)
        return self.http.getresponse()

    def target(self, location: str, **params: str) -> str:
        url = self.url.join(location).copy_merge_params(params)
        return url.raw_path.decode()


def push(conn: Conn, repo: str, size: int, salt: bytes) -> tuple[str, float]:
    """POST + streamed PATCH + PUT, as skopeo and docker push; returns (digest, seconds)."""
    digest = digest_of(size, salt)
    start = time.perf_counter()
    r = conn.send("POST", f"/v2/{repo}/blobs/uploads/")
    r.read()
    r = conn.send("PATCH", conn.target(r.headers["location"]), chunks(size, salt), size)
    r.read()
    r = conn.send("PUT", conn.target(r.headers["location"], digest=digest))
    body = r.read()
    elapsed = time.perf_counter() - start
    if r.status != 201:
        raise SystemExit(f"{conn.server.name}: push failed: {r.status} {body[:200]!r}")
    return digest, elapsed


def pull(conn: Conn, repo: str, digest: str, size: int) -> float:
    start = time.perf_counter()
    r = conn.send("GET", f"/v2/{repo}/blobs/{digest}")
    got = 0
    while chunk := r.read(MIB):
        got += len(chunk)
    elapsed = time.perf_counter() - start
    if got != size:
        raise SystemExit(f"{conn.server.name}: pulled {got} bytes, expected {size}")
    return elapsed


def seed_manifest(client: httpx.Client, server: Server) -> str:
    blobs = []
    for data in (b"{}", b"\0asm\1\0\0\0"):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        r = client.post(f"{server.url}/v2/bench/app/blobs/uploads/", headers=server.headers)
        location = httpx.URL(server.url).join(r.headers["location"])
        client.put(location.copy_merge_params({"digest": d}), content=data, headers=server.headers).raise_for_status()
        blobs.append((d, len(data)))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": blobs[0][0],
                                      "size": blobs[0][1]},
                           "layers": [{"mediaType": "application/wasm", "digest": blobs[1][0],
                                       "size": blobs[1][1]}]}).encode()
    r = client.put(f"{server.url}/v2/bench/app/manifests/1.0.0", content=manifest,
                   headers={**server.headers, "Content-Type": MANIFEST})
    if r.status_code != 201:
        raise SystemExit(f"{server.name}: manifest push failed: {r.status_code} {r.text[:300]}")
    return f"{server.url}/v2/bench/app/manifests/1.0.0"


def wrk(url: str, duration: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-H", f"Accept: {MANIFEST}", url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m is None or errors:
        raise SystemExit(f"wrk failed or saw errors:\n{out}")
    return float(m.group(1))


def measure(server: Server, args: argparse.Namespace, client: httpx.Client) -> dict[str, float]:
    url = seed_manifest(client, server)
    rps = statistics.median(wrk(url, args.duration, 32) for _ in range(args.runs))
    conn = Conn(server)
    small_digest, _ = push(conn, "bench/small", 8 * MIB, b"small")
    pull(conn, "bench/small", small_digest, 8 * MIB)
    rss_small = server.peak_rss_mib()
    size = args.size_mib * MIB
    pushes, pulls = [], []
    for i in range(args.runs):
        salt = f"{server.name}-{i}-{time.time()}".encode()
        digest, t = push(conn, f"bench/big{i}", size, salt)
        pushes.append(args.size_mib / t)
        pulls.append(args.size_mib / pull(conn, f"bench/big{i}", digest, size))
    return {"manifest_get_rps": rps, "push_mib_s": statistics.median(pushes), "pull_mib_s": statistics.median(pulls),
            "rss_small_mib": rss_small, "rss_big_mib": server.peak_rss_mib()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64, help="blob size for push/pull (the issue asks 256)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers for the enarx-pkg registry")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--s3", action="store_true", help="also the S3 row set: both servers on OpenStack Swift")
    parser.add_argument("--s3-only", action="store_true", help="only the S3 row set")
    parser.add_argument("--s3-size-mib", type=int, default=256, help="blob size for the S3 push/pull rows")
    parser.add_argument("--s3-memory-mib", type=int, default=1024, help="push measured for replica memory (S3)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (scripts/install-system-deps.sh)")
    root = Path(tempfile.mkdtemp(prefix="enarx-bench-"))
    results: dict[str, dict[str, float]] = {}
    s3_results: dict[str, dict[str, float]] = {}
    try:
        if args.s3 or args.s3_only:
            from registry_s3 import run_s3  # bench/registry_s3.py

            s3_results = run_s3(args, root)
        starters = (lambda: start_distribution(root), lambda: start_ours(root, args.workers))
        with httpx.Client(timeout=300) as client:
            for start in () if args.s3_only else starters:
                server = start()
                try:
                    results[server.name] = measure(server, args, client)
                finally:
                    server.process.terminate()
                    server.process.wait(20)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if results:
        report(results, args)
    if s3_results:
        from registry_s3 import report_s3

        report_s3(s3_results, args)  # with --json: a second JSON document
    return 0


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(results, indent=2))
        return
    (peer_name, peer), (ours_name, ours) = results.items()
    print(f"blob size {args.size_mib} MiB, {args.runs} runs, wrk {args.duration}s x 32 connections, "
          f"{os.cpu_count()} CPUs")
    rows = [("manifest GET req/s", "manifest_get_rps", 10.0), ("blob push MiB/s", "push_mib_s", 1.5),
            ("blob pull MiB/s", "pull_mib_s", 1.0)]
    print(f"{'':24}{'distribution':>14}{'enarx-pkg':>14}{'ratio':>8}{'target':>8}")
    for label, key, target in rows:
        ratio = ours[key] / peer[key]
        print(f"{label:24}{peer[key]:>14.1f}{ours[key]:>14.1f}{ratio:>7.2f}x{target:>7.1f}x"
              f"{'' if ratio >= target else '  (below target)'}")
    rss = (("rss_small_mib", "peak RSS after 8 MiB"), ("rss_big_mib", f"peak RSS after {args.size_mib} MiB"))
    for key, label in rss:
        print(f"{label:24}{peer[key]:>13.1f}M{ours[key]:>13.1f}M")
    print(f"(servers: {peer_name}; {ours_name})")


if __name__ == "__main__":
    sys.exit(main())
