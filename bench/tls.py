"""Full TLS handshakes/s against a keep's attested certificate vs a plain Python ssl echo server (same run).

    .venv/bin/python bench/tls.py [--seconds 1.0] [--rounds 5]

One server process (Python ``ssl``, TLS 1.3, ECDSA P-256) serves two ports: (a) a certificate from a
throwaway CA, which the client verifies the usual way (CA file + hostname), and (b) a self-contained
keep certificate (sim evidence), which the client checks with ``enarx_pkg.tls.client.AttestedPeer``.
Each handshake is new (no session resumption) and carries one 5-byte echo. Also shown: (b) with the
appraisal cache off, i.e. the evidence verified and the policy appraised on every handshake.
Goal (issue 13): attested ≥ 0.7× plain.

Last, the issue's own measure: the Go example's net/http server (examples/go-http, keep-alive) as a
wasm workload under the runtime, its listen file served over TCP vs with ``prot = "tls"`` terminated
by the runtime exactly as in a keep (``RunSpec.tls``). Goal: TLS >= 0.5x TCP requests/s.

Then the same in keeps (``--keep-only`` runs just this): the Go example deployed to two detached sim
keeps on one agent, over TCP in one and ``prot = "tls"`` (``deploy --tls-ca`` certificate) in the
other, wrk on each keep's published port in alternating rounds. Goal: TLS >= 0.5x TCP.

Before that, keep-alive requests/s (wrk -c16) of one plaintext HTTP server (a threaded Python server standing
in for the workload) reached over TCP directly vs through ``terminate.TlsListener`` (TLS terminated
the way a keep does it). Goal (issue 13, measured in a keep once keeps serve sockets): TLS ≥ 0.5× TCP.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enarx_pkg.attestation.policy import load_policy
from enarx_pkg.tls import ca, client, issue, keep
from enarx_pkg.tls.extension import AppraisedKeep
from tests.tls.conftest import PACKAGE, SimKeep, write_pair


def _echo(ctx: ssl.SSLContext, sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(64))
        except (OSError, ssl.SSLError):
            continue


def _server(pairs: list[tuple[str, str]], ports: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import threading

    for cert, key in pairs:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        ports.put(sock.getsockname()[1])
        threading.Thread(target=_echo, args=(ctx, sock), daemon=True).start()
    threading.Event().wait()


def _http_server(sock: socket.socket) -> None:
    """Keep-alive HTTP/1.1 on plaintext connections accepted from ``sock`` (the workload's stand-in)."""
    import threading

    def one(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf.split(b"\r\n\r\n", 1)[1]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n")

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def _keepalive_server(pair: tuple[str, str], ports: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import threading

    from enarx_pkg.tls import terminate

    direct = socket.create_server(("127.0.0.1", 0), backlog=128)
    public = socket.create_server(("127.0.0.1", 0), backlog=128)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pair)
    listener = terminate.TlsListener(public, lambda: ctx).start()
    for sock in (direct, listener.inner):
        threading.Thread(target=_http_server, args=(sock,), daemon=True).start()
    ports.put(direct.getsockname()[1])
    ports.put(public.getsockname()[1])
    threading.Event().wait()


def _wrk(url: str, seconds: int) -> float:
    import re
    import subprocess

    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", url], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    return float(found.group(1)) if found else 0.0


def keepalive(pair: tuple[str, str], seconds: int) -> None:
    ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    proc = multiprocessing.Process(target=_keepalive_server, args=(pair, ports), daemon=True)
    proc.start()
    tcp_port, tls_port = ports.get(timeout=30), ports.get(timeout=30)
    tcp = _wrk(f"http://127.0.0.1:{tcp_port}/", seconds)
    tls = _wrk(f"https://127.0.0.1:{tls_port}/", seconds)
    proc.terminate()
    print(f"keep-alive requests/s (wrk -t2 -c16 -d{seconds}s), same plaintext server")
    print(f"  {'over TCP':32s} {tcp:8.0f}/s  1.00x")
    ratio = tls / tcp if tcp else 0.0
    print(f"  {'through the keep TLS listener':32s} {tls:8.0f}/s  {ratio:5.2f}x TCP")
    print(f"goal TLS >= 0.5x TCP: {'meets' if ratio >= 0.5 else 'MISSES'}")


_RUNTIME_SERVER = """
import sys, threading
from pathlib import Path
from enarx_pkg import runtime
from enarx_pkg.manifest.model import File
from enarx_pkg.tls import identity, sockets
sys.path.insert(0, sys.argv[4])
from tests.tls.conftest import PACKAGE, SimKeep
prot, port, module = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
files = (File("stdin", "stdin"), File("stdout", "stdout"), File("stderr", "stderr"),
         File("listen", "web", addr="127.0.0.1", port=port, prot=prot))
tls = None
if prot == "tls":
    tls = sockets.TlsSetup(identity.KeepIdentity(identity.self_contained(["127.0.0.1"], PACKAGE, SimKeep().source)))
runtime.run(runtime.RunSpec(module, files=files, stdin=b"", time_limit_s=None, tls=tls))
"""


def wasm_rows(seconds: int) -> None:
    """The Go example under the runtime: listen over TCP vs TLS terminated as in a keep."""
    import contextlib
    import re
    import subprocess

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        project = Path(tmp) / "go-http"
        shutil.copytree(root / "examples" / "go-http", project, ignore=shutil.ignore_patterns("target"))
        subprocess.run([sys.executable, "-m", "enarx_pkg", "build", str(project)], check=True,
                       capture_output=True, cwd=root)
        from enarx_pkg import manifest

        build = manifest.load(project).build
        assert build is not None
        module = project / build.output
        rates = {}
        for prot in ("tcp", "tls"):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            proc = subprocess.Popen([sys.executable, "-c", _RUNTIME_SERVER, prot, str(port), str(module), str(root)],
                                    cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                    time.sleep(0.2)
                scheme = "https" if prot == "tls" else "http"
                out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", f"{scheme}://127.0.0.1:{port}/"],
                                     capture_output=True, text=True, timeout=seconds + 60).stdout
                found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
                rates[prot] = float(found.group(1)) if found else 0.0
            finally:
                proc.kill()
                proc.wait()
    print(f"Go net/http wasm server under the runtime, keep-alive (wrk -t2 -c16 -d{seconds}s)")
    print(f"  {'listen over TCP':32s} {rates['tcp']:8.0f}/s  1.00x")
    ratio = rates["tls"] / rates["tcp"] if rates["tcp"] else 0.0
    print(f"  {'prot = tls, terminated as in a keep':32s} {rates['tls']:8.0f}/s  {ratio:5.2f}x TCP")
    print(f"goal TLS >= 0.5x TCP: {'meets' if ratio >= 0.5 else 'MISSES'}")


def _go_variant(root: Path, prot: str) -> Path:
    """examples/go-http with its listen file's ``prot`` set (the module is the same for both)."""
    import shutil

    project = root / f"go-{prot}"
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "go-http", project,
                    ignore=shutil.ignore_patterns("target"))
    toml = project / "Enarx.toml"
    toml.write_text(toml.read_text().replace('prot = "tcp"', f'prot = "{prot}"'))
    return project


def detached_rows(seconds: int, rounds: int) -> None:
    """The issue's measure in keeps: the Go example deployed to two detached sim keeps on one agent, its
    listen file over TCP in one and ``prot = "tls"`` (certified with ``deploy --tls-ca``) in the other;
    wrk against each keep's published port, alternating, so both see the same machine load."""
    import json
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from deploy import Rig  # bench/deploy.py: registry, sim agent, keys, policy

    with tempfile.TemporaryDirectory(prefix="bench-tls-keep-") as tmp:
        root = Path(tmp)
        (root / "rig").mkdir()
        rig = Rig(root / "rig")
        try:
            subprocess.run([sys.executable, "-m", "enarx_pkg", "ca", "init", "--cert", str(root / "ca.crt"), "--key",
                            str(root / "ca.key")], check=True, capture_output=True)
            ports = {}
            certify = ["--tls-ca", str(root / "ca.crt"), "--tls-ca-key", str(root / "ca.key")]
            for prot in ("tcp", "tls"):
                ref = rig.package(_go_variant(root, prot), f"go-{prot}")
                extra = certify if prot == "tls" else []
                out = subprocess.run([*rig.deploy_cmd(ref), "--detach", "--state", str(root / f"{prot}.json"), *extra],
                                     env=rig.env, check=True, capture_output=True, cwd=root).stdout
                address = json.loads(out)["hosts"][0]["endpoints"][0]["address"]
                ports[prot] = int(address.rsplit(":", 1)[1])
            rates: dict[str, list[float]] = {"tcp": [], "tls": []}
            for _ in range(rounds):
                rates["tcp"].append(_wrk(f"http://127.0.0.1:{ports['tcp']}/", seconds))
                rates["tls"].append(_wrk(f"https://127.0.0.1:{ports['tls']}/", seconds))
        finally:
            rig.close()
    tcp, tls = statistics.median(rates["tcp"]), statistics.median(rates["tls"])
    ratio = tls / tcp if tcp else 0.0
    print(f"Go net/http wasm server in detached sim keeps, keep-alive (wrk -t2 -c16 -d{seconds}s, "
          f"median of {rounds}, alternating)")
    print(f"  {'listen over TCP':32s} {tcp:8.0f}/s  1.00x   rounds: {', '.join(f'{r:.0f}' for r in rates['tcp'])}")
    print(f"  {'prot = tls, --tls-ca cert':32s} {tls:8.0f}/s  {ratio:5.2f}x TCP   rounds: "
          f"{', '.join(f'{r:.0f}' for r in rates['tls'])}")
    print(f"goal TLS >= 0.5x TCP: {'meets' if ratio >= 0.5 else 'MISSES'}")


def _material(d: Path) -> tuple[list[tuple[str, str]], Path, Path, SimKeep]:
    sim = SimKeep()
    authority = ca.make_ca("bench CA")
    (d / "ca.crt").write_bytes(authority.pem)
    key = keep.new_key()
    csr = keep.certificate_request(key, ["localhost"], keep.keep_evidence(key, PACKAGE, sim.source))
    record = AppraisedKeep("sim", "00" * 48, "sha256:" + "0" * 64, PACKAGE, "sha256:" + "0" * 64)
    plain = write_pair(d / "plain", key, [issue.issue(authority, csr, record, ["localhost"])])
    akey, acert = sim.certificate(["localhost"])
    attested = write_pair(d / "attested", akey, [acert])
    return [(str(plain[0]), str(plain[1])), (str(attested[0]), str(attested[1]))], d / "ca.crt", \
        sim.policy(d / "policy.toml"), sim


def _rate(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keepalive-seconds", type=int, default=5)
    ap.add_argument("--keep-only", action="store_true", help="only the detached-keep row (TLS vs TCP in keeps)")
    args = ap.parse_args(argv)
    if args.keep_only:
        detached_rows(args.keepalive_seconds, 3)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pairs, ca_file, policy_file, _ = _material(Path(tmp))
        ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        proc = multiprocessing.Process(target=_server, args=(pairs, ports), daemon=True)
        proc.start()
        plain_port, attested_port = ports.get(timeout=30), ports.get(timeout=30)
        plain_ctx = ssl.create_default_context(cafile=str(ca_file))
        plain_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        policy = load_policy(policy_file)
        cached = client.AttestedPeer(policy, package=PACKAGE)

        def plain() -> None:
            with plain_ctx.wrap_socket(socket.create_connection(("127.0.0.1", plain_port)),
                                       server_hostname="localhost") as tls:
                tls.sendall(b"hello")
                tls.recv(64)

        def attested(peer: client.AttestedPeer | None = None) -> None:
            tls, _ = client.wrap(socket.create_connection(("127.0.0.1", attested_port)),
                                 peer or cached, "localhost")
            with tls:
                tls.sendall(b"hello")
                tls.recv(64)

        cases: dict[str, Callable[[], object]] = {
            "plain ssl (CA-verified)": plain,
            "attested (appraisal cached)": attested,
            "attested (verified every time)": lambda: attested(client.AttestedPeer(policy, package=PACKAGE)),
        }
        samples: dict[str, list[float]] = {n: [] for n in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                samples[name].append(_rate(fn, args.seconds))
        proc.terminate()
    med = {n: statistics.median(v) for n, v in samples.items()}
    base = med["plain ssl (CA-verified)"]
    print(f"full TLS 1.3 handshakes/s (median of {args.rounds} x {args.seconds:.1f} s, one 5-byte echo each)")
    for name, rate in med.items():
        print(f"  {name:32s} {rate:8.0f}/s  {rate / base:5.2f}x plain")
    verdict = "meets" if med["attested (appraisal cached)"] >= 0.7 * base else "MISSES"
    print(f"goal attested >= 0.7x plain: {verdict}")
    with tempfile.TemporaryDirectory() as tmp:
        pairs, *_ = _material(Path(tmp))
        keepalive(pairs[0], args.keepalive_seconds)
    wasm_rows(args.keepalive_seconds)
    detached_rows(args.keepalive_seconds, 3)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
