"""The host's disk is the host's: what a keep reads from it after the pull, or writes to it, is not trusted.

Each test is one move of a host that owns the disk, against a real agent's keep. The keep's private
directory is found through the temp file it holds open while it fetches a blob (the host's registry
proxy sees that request), as a host can: it reads the directory while the encrypted probe runs,
replaces the verified module blob, or puts its own input where the workload's stdin was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from enarx_pkg.errors import VerificationError
from enarx_pkg.oci.client import Client
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import MEDIA_ENARX_CONFIG, MEDIA_WASM, ImageManifest
from tests.conftest import REPO
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.deploy.proxy import Proxy, running
from tests.deploy.test_attacks import deploy_via
from tests.deploy.test_keep_isolation import EVIL_WAT, PLANTED, keeps_of
from tests.deploy.test_stdin import read_until

TOML_LINE = b'PROBE = "env-from-enarx-toml"'  # a line of the probe's Enarx.toml, encrypted in the package
# the keep makes itself undumpable (keep/memory.py): only root finds its directory through /proc/PID/fd
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="finds the keep's directory through /proc/PID/fd (root)")


def host_reads(root: Path) -> bytes:
    """Every file below ``root``, as the host that owns the disk can read it."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


def test_decrypted_package_is_not_on_the_hosts_disk(published, sim_host, policy_for, monkeypatch) -> None:
    """The encrypted probe runs on its stdin; once its echo of the first line came back, the host reads
    every file under the keep's directory: no decrypted module (it holds the marker), no Enarx.toml."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    roots: list[Path] = []

    def find_keep(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if "/blobs/" in path and not roots:
            roots.append(keep_dir(pulling_into(sim_host.process.pid)))
        return path, body

    registry = Proxy(published.registry_url, find_keep)
    seen = bytearray()
    with running(registry):
        cmd = [sys.executable, "-m", "enarx_pkg", "deploy", published.encrypted, "--host", sim_host.url,
               "--host-token-file", str(sim_host.token_file), "--policy", str(policy_for(sim_host)),
               "--key", str(published.signer_pub), "--decryption-key", str(published.recipient_key),
               "--insecure-sim", "--stdin", "--keep-registry", registry.url]
        proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(b"running\n")
            proc.stdin.flush()
            read_until(proc.stdout.fileno(), b"running\n", seen)  # the workload runs in the keep now
            on_disk = host_reads(roots[0])
            proc.stdin.close()
            seen += proc.stdout.read()
            assert proc.wait(60) == 1, proc.stderr.read() if proc.stderr else b""
        finally:
            proc.kill()
            proc.wait()
    assert MARKER in seen and f"PROBE_SECRET={SECRET}".encode() in seen  # the decrypted probe ran
    assert len(on_disk) > 1000 and not roots[0].exists()  # its pulled (encrypted) layout was there, and went with it
    for plaintext in (MARKER, TOML_LINE, SECRET.encode()):
        assert plaintext not in on_disk, f"the host's disk holds the keep's plaintext {plaintext!r}"


def test_a_module_the_host_swaps_on_disk_after_the_pull_verified_it_never_runs(
        published, sim_host, policy_for, monkeypatch) -> None:
    """The keep verified the plain module's blob as it arrived; while it pulls its last blob (the
    registry holds that answer), the host replaces the verified file in the keep's directory (found
    through the temp file the keep holds open for that last blob) with its own module."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    layers = layer_digests(published)
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


def layer_digests(published: Published) -> dict[str, str]:
    """media type -> digest of the plain probe's layers."""
    with Client(parse_registry(published.registry_host), None) as client:
        fetched = client.fetch_manifest("probe", published.plain_digest)
    return {d.media_type: d.digest for d in ImageManifest.from_bytes(fetched.data, "probe manifest").layers}


def keep_dir(inside: Path) -> Path:
    """The keep's private directory (the outermost ``enarx-keep-*`` above ``inside``)."""
    return [p for p in inside.parents if p.name.startswith("enarx-keep-")][-1]


def pulling_into(agent_pid: int) -> Path:
    """The blob directory of the agent's keep that is pulling now (it holds a temp file open there)."""
    for proc in keeps_of(agent_pid):
        for fd in (proc / "fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if "/blobs/sha256/" in target and "/enarx-keep-" in target:
                return Path(target).parent
    raise AssertionError("no keep of this agent has a blob open")


def test_the_host_cannot_replace_the_workloads_stdin(published, sim_host, policy_for, monkeypatch) -> None:
    """A deploy with sealed stdin: while the keep pulls (the registry holds its last blob), the host
    puts its own input where the keep's private directory had the workload's stdin. The workload must
    read the deployer's sealed input, never the host's."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    config = layer_digests(published)[MEDIA_ENARX_CONFIG]
    planted: list[Path] = []

    def plant_stdin(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if path.endswith(f"/blobs/{config}") and not planted:
            root = keep_dir(pulling_into(sim_host.process.pid))
            fake = root / ".host-input"
            fake.write_bytes(b"INPUT-FROM-THE-HOST\n")
            os.replace(fake, root / "stdin")  # where the keep had its stdin FIFO (it has none now)
            planted.append(root)
        return path, body

    registry = Proxy(published.registry_url, plant_stdin)
    with running(registry):
        r = deploy_via(published, sim_host, sim_host.url, policy_for(sim_host), keep_registry=registry.url,
                       stdin=b"input-from-the-deployer\n")
    assert planted, "the keep never asked for its last blob"
    assert r.error is None and MARKER in r.stdout, r.error
    assert b"INPUT-FROM-THE-HOST" not in r.stdout and r.stdout.endswith(b"input-from-the-deployer\n")
