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

import wasmtime

from enarx_pkg.errors import VerificationError
from enarx_pkg.oci.client import Client
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import MEDIA_ENARX_CONFIG, MEDIA_WASM, ImageManifest
from tests.conftest import REPO
from tests.deploy.conftest import MARKER, SECRET
from tests.deploy.proxy import Proxy, running
from tests.deploy.test_attacks import deploy_via
from tests.deploy.test_keep_isolation import EVIL_WAT, PLANTED, keeps_of
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


def test_a_module_the_host_swaps_on_disk_after_the_pull_verified_it_never_runs(
        published, sim_host, policy_for, monkeypatch) -> None:
    """The keep verified the plain module's blob as it arrived; while it pulls its last blob (the
    registry holds that answer), the host replaces the verified file in the keep's directory (found
    through the temp file the keep holds open for that last blob) with its own module."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    with Client(parse_registry(published.registry_host), None) as client:
        fetched = client.fetch_manifest("probe", published.plain_digest)
    layers = {d.media_type: d.digest for d in ImageManifest.from_bytes(fetched.data, "probe manifest").layers}
    module, config = layers[MEDIA_WASM], layers[MEDIA_ENARX_CONFIG]
    swapped: list[Path] = []

    def swap_module(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if path.endswith(f"/blobs/{config}") and not swapped:
            blobs = pulling_into(sim_host.process.pid)
            planted = blobs / ".planted"
            planted.write_bytes(wasmtime.wat2wasm(EVIL_WAT))
            os.replace(planted, blobs / module.split(":")[1])
            swapped.append(blobs)
        return path, body

    registry = Proxy(published.registry_url, swap_module)
    with running(registry):
        r = deploy_via(published, sim_host, sim_host.url, policy_for(sim_host), keep_registry=registry.url)
    assert swapped, "the keep never asked for its last blob"
    assert PLANTED not in r.stdout and MARKER not in r.stdout
    assert isinstance(r.error, VerificationError), r.error
    assert "changed on the keep's disk after it was pulled" in r.error.message and r.status is None


def pulling_into(agent_pid: int) -> Path:
    """The blob directory of the agent's keep that is pulling now (it holds a temp file open there)."""
    for proc in keeps_of(agent_pid):
        for fd in (proc / "fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if "/blobs/sha256/" in target and "/enarx-keep-" in target:
                return Path(target).parent
    raise AssertionError("no keep of this agent has a blob open")
