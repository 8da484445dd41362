"""A keep's memory never becomes a file on the host's disk, however the host starts and ends it.

A modified agent starts a real keep with an unlimited core size, provisions it with a secret (the
keep is pulling from a registry that never answers, so it holds the opened envelope), and crashes it
with SIGABRT (wasmtime handles SIGSEGV itself). The keep had set its core size to 0 and made itself
undumpable when the nonce arrived, so no core file holds its key, the layer key or the secret.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import threading
from pathlib import Path

from enarx_pkg._internal import seal
from enarx_pkg.host.pool import KEEP_CWD, KEEP_ENV, KeepCommand
from tests.deploy.rawkeep import Keep, attested

SECRET = b"keep-memory-secret-3e8a11"


def core_limit(pid: int) -> str:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max core file size"))
    return " ".join(line.split()[4:6])


def core_files(pid: int) -> list[Path]:
    """Where the kernel writes a core of a process whose working directory is / (a pipe pattern: nowhere)."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|"):
        return []
    base = Path(KEEP_CWD) / pattern.replace("%p", str(pid)).replace("%P", str(pid))
    return [p for p in (base, Path(f"{base}.{pid}")) if p.is_file()]


def unlimited_cores() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def test_a_keep_crashed_by_its_host_leaves_no_core(tmp_path: Path) -> None:
    stall = socket.create_server(("127.0.0.1", 0))
    pulling = threading.Event()
    threading.Thread(target=lambda: (stall.accept(), pulling.set()), daemon=True).start()
    data = tmp_path / "data"
    proc = subprocess.Popen(KeepCommand("sim", str(data)).argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=KEEP_ENV, cwd=KEEP_CWD, preexec_fn=unlimited_cores)
    keep, found = Keep(proc), []
    try:
        measurement = keep.measurement()
        assert core_limit(proc.pid) == "unlimited unlimited"  # the host's setting, while no secret exists
        sealed_to = attested(keep, data, measurement)
        assert core_limit(proc.pid) == "0 0"
        envelope = seal.Envelope(f"http://127.0.0.1:{stall.getsockname()[1]}", "probe", "sha256:" + "a" * 64,
                                 os.urandom(32), secrets={"API_KEY": seal.SecretValue(SECRET)})
        keep.send(seal.R_PROVISION, seal.seal_envelope(envelope, sealed_to))
        assert pulling.wait(120), "the keep never started its pull"
        os.kill(proc.pid, signal.SIGABRT)
        assert proc.wait(timeout=120) == -signal.SIGABRT
        found = core_files(proc.pid)
    finally:
        keep.stop()
        stall.close()
        for core in found:
            leaked = SECRET in core.read_bytes()
            core.unlink()
            assert not leaked, f"{core} holds the keep's secret"
    assert found == [], f"the kernel wrote the keep's memory to {found}"
