"""The host's disk is the host's: a keep never writes the package's plaintext there.

The encrypted probe is deployed with the CLI and kept running on its stdin; while it runs (its echo
of the first line came back), the host reads every file under the keep's private directory (found
through the stdin FIFO the keep holds open), as a host that owns the disk can. The decrypted module
(which holds the probe's marker) and its Enarx.toml must not be there; the workload still ran, with
its secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.deploy.conftest import MARKER, SECRET
from tests.deploy.test_keep_isolation import keeps_of
from tests.deploy.test_stdin import read_until

TOML_LINE = b'PROBE = "env-from-enarx-toml"'  # a line of the probe's Enarx.toml, encrypted in the package


def keep_root(agent_pid: int) -> Path:
    """The private directory of the agent's running keep: the one whose stdin FIFO it holds open."""
    for proc in keeps_of(agent_pid):
        for fd in (proc / "fd").iterdir():
            target = Path(os.readlink(fd)) if fd.is_symlink() else None
            if target is not None and target.name == "stdin" and target.parent.name.startswith("enarx-keep-"):
                return target.parent
    raise AssertionError("no keep of this agent has a stdin FIFO open")


def host_reads(root: Path) -> bytes:
    """Every file below ``root``, as the host that owns the disk can read it."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


def test_decrypted_package_is_not_on_the_hosts_disk(published, sim_host, policy_for, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    cmd = [sys.executable, "-m", "enarx_pkg", "deploy", published.encrypted, "--host", sim_host.url,
           "--host-token-file", str(sim_host.token_file), "--policy", str(policy_for(sim_host)),
           "--key", str(published.signer_pub), "--decryption-key", str(published.recipient_key),
           "--insecure-sim", "--stdin"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    seen = bytearray()
    try:
        proc.stdin.write(b"running\n")
        proc.stdin.flush()
        read_until(proc.stdout.fileno(), b"running\n", seen)  # the workload runs in the keep now
        root = keep_root(sim_host.process.pid)
        on_disk = host_reads(root)
        proc.stdin.close()
        seen += proc.stdout.read()
        assert proc.wait(60) == 1, proc.stderr.read() if proc.stderr else b""
    finally:
        proc.kill()
        proc.wait()
    assert MARKER in seen and f"PROBE_SECRET={SECRET}".encode() in seen  # the decrypted probe ran
    assert len(on_disk) > 1000 and not root.exists()  # its pulled (encrypted) layout was there, and went with it
    for plaintext in (MARKER, TOML_LINE, SECRET.encode()):
        assert plaintext not in on_disk, f"the host's disk holds the keep's plaintext {plaintext!r}"
