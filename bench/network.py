"""Network workloads: the Rust hello server (examples/rust-http) natively vs under `enarx-pkg run`.

(a) the same source built with Debian's rustc for x86_64, run natively: the ceiling;
(b) built for wasm32-wasi and run by `enarx-pkg run` (wasmtime + the Python socket layer).
Requests/s and p50/p99 latency from `wrk -c16 -t2 -d5s --latency` (one request per connection:
the server answers `Connection: close`), then a 256 MiB response read through one socket.
(c) the same package encrypted, signed, published to the enarx-pkg registry and deployed with
`deploy --detach` to a sim keep on a local host agent, measured on the loopback port the agent
published (the keep's own socket: the agent relays no byte of it).
Goals: (b) >= 0.25x (a) requests/s; (c) >= 0.8x (b); 256 MiB through (b) >= 200 MiB/s.

Usage: .venv/bin/python bench/network.py [--seconds 5] [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENARX_PKG = [sys.executable, "-m", "enarx_pkg"]
TRANSFER = 256 << 20
DEBIAN_RUST = {"PATH": "/usr/bin:/bin", "RUSTC": "/usr/bin/rustc", "CARGO_INCREMENTAL": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(tmp: Path, port: int) -> tuple[Path, Path]:
    """(native binary, enarx project listening on ``port``), both from examples/rust-http."""
    project = tmp / "rust-http"
    shutil.copytree(ROOT / "examples" / "rust-http", project, ignore=shutil.ignore_patterns("target"))
    toml = project / "Enarx.toml"
    toml.write_text(toml.read_text().replace("port = 8080", f"port = {port}"))
    subprocess.run([*ENARX_PKG, "build", str(project)], check=True, capture_output=True, cwd=ROOT)
    env = {**os.environ, **DEBIAN_RUST}
    subprocess.run(["/usr/bin/cargo", "build", "--offline", "--release"], cwd=project, env=env, check=True,
                   capture_output=True)
    return project / "target" / "release" / "hello-http", project


@contextlib.contextmanager
def serving(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        get(port, "/")  # warm: the first request pays nothing the others do not
        yield
    finally:
        proc.kill()
        proc.wait()


def get(port: int, path: str) -> int:
    """Bytes of the response to a GET, read into one reused buffer."""
    buf = bytearray(1 << 20)
    total = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        while n := s.recv_into(buf):
            total += n
    return total


def wrk(port: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-c16", "-t2", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": _ms(out, "50%"), "p99": _ms(out, "99%"), "errors": bool(errors)}


def _ms(out: str, which: str) -> float:
    value, unit = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def transfer(port: int) -> float:
    started = time.perf_counter()
    got = get(port, f"/bytes/{TRANSFER}")
    took = time.perf_counter() - started
    assert got > TRANSFER, got
    return TRANSFER / (1 << 20) / took


def measure(argv: list[str], port: int, seconds: int, env: dict[str, str] | None = None) -> dict[str, float]:
    with serving(argv, port, env):
        row = wrk(port, seconds)
        row["mibs"] = transfer(port)
    return row


@contextlib.contextmanager
def detached(project: Path, root: Path) -> Iterator[int]:
    """A detached sim keep serving ``project`` (through bench/deploy.py's registry + agent rig); its port."""
    import json

    sys.path.insert(0, str(ROOT / "bench"))
    from deploy import Rig  # bench/deploy.py: registry, sim agent, keys, policy

    root.mkdir(parents=True, exist_ok=True)
    rig = Rig(root)
    try:
        ref = rig.package(project, "rust-http")
        state = root / "keep-state.json"
        cmd = [*rig.deploy_cmd(ref), "--detach", "--state", str(state)]
        out = subprocess.run(cmd, env=rig.env, check=True, capture_output=True, cwd=root).stdout
        [row] = json.loads(out)["hosts"]
        port = int(row["endpoints"][0]["address"].rsplit(":", 1)[1])
        get(port, "/")  # warm
        yield port
        subprocess.run([*ENARX_PKG, "keep", "stop", "--state", str(state), "--host", rig.host], env=rig.env,
                       capture_output=True, cwd=root)
    finally:
        rig.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
        port = free_port()
        native, project = prepare(Path(tmp), port)
        for r in range(args.rounds):
            native_port = free_port()
            a = measure([str(native)], native_port, args.seconds, {**os.environ, "ADDR": f"127.0.0.1:{native_port}"})
            b = measure([*ENARX_PKG, "run", str(project)], port, args.seconds)
            with detached(project, Path(tmp) / f"rig-{r}") as keep_port:
                c = wrk(keep_port, args.seconds)
                c["mibs"] = transfer(keep_port)
            report(r, a, b, c)
    return 0


def report(r: int, a: dict[str, float], b: dict[str, float], c: dict[str, float]) -> None:
    print(f"round {r + 1}: wrk -c16 -t2, one request per connection; then {TRANSFER >> 20} MiB through one socket")
    print(f"{'':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'MiB/s':>8}")
    for name, row in (("(a) native x86_64", a), ("(b) enarx-pkg run", b), ("(c) detached sim keep", c)):
        flag = "  (socket errors)" if row["errors"] else ""
        print(f"{name:28} {row['rps']:9.0f} {row['p50']:8.2f} {row['p99']:8.2f} {row['mibs']:8.0f}{flag}")
    ratio = b["rps"] / a["rps"]
    print(f"(b)/(a) requests/s: {ratio:.2f}x (goal >= 0.25x: {'met' if ratio >= 0.25 else 'NOT met'}); "
          f"(b) transfer {b['mibs']:.0f} MiB/s (goal >= 200: {'met' if b['mibs'] >= 200 else 'NOT met'})")
    rc = c["rps"] / b["rps"]
    print(f"(c)/(b) requests/s: {rc:.2f}x (goal >= 0.8x: {'met' if rc >= 0.8 else 'NOT met'}); "
          f"(c) transfer {c['mibs']:.0f} MiB/s")


if __name__ == "__main__":
    sys.exit(main())
