"""deploy streams stdin: sealed frames leave the deployer as data arrives and reach the workload as they come.

The probe workload echoes its stdin, so what comes back shows when the keep received each chunk.
"""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enarx_pkg import deploy as d
from enarx_pkg import verify
from enarx_pkg._internal import seal
from enarx_pkg.errors import VerificationError
from tests.conftest import REPO
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.deploy.proxy import Proxy, join_records, running, split_records, tamper_records
from tests.fixtures.hosts import HostAgent, start_host, stop_host


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)


def settings(pub: Published, host: HostAgent, url: str, policy: Path, **kw: object) -> d.DeploySettings:
    base: dict[str, object] = dict(ref=pub.plain, hosts=(url,), policy_path=policy, host_token=host.token,
                                   signer=verify.KeyPolicy(pub.signer_pub.read_bytes()), insecure_sim=True)
    return d.DeploySettings(**(base | kw))  # type: ignore[arg-type]


def read_until(fd: int, needle: bytes, seen: bytearray, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while needle not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {needle!r} within {seconds} s; got {bytes(seen)!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"stdout closed before {needle!r}; got {bytes(seen)!r}"
        seen += chunk


def test_cli_streams_stdin_while_the_workload_runs(published, sim_host, policy_for) -> None:
    """The second line is written only after the first came back: a deployer that buffered stdin
    until EOF would never see the first echo, and this test would time out."""
    cmd = [sys.executable, "-m", "enarx_pkg", "deploy", published.plain, "--host", sim_host.url,
           "--host-token-file", str(sim_host.token_file), "--policy", str(policy_for(sim_host)),
           "--key", str(published.signer_pub), "--insecure-sim", "--stdin"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    seen = bytearray()
    try:
        proc.stdin.write(b"first line\n")
        proc.stdin.flush()
        read_until(proc.stdout.fileno(), b"first line\n", seen)
        assert b"second" not in seen
        proc.stdin.write(b"second line\n")
        proc.stdin.close()
        seen += proc.stdout.read()
        assert proc.wait(30) == 1  # the probe's status: the package's args ["one"] -> argc - 1
    finally:
        proc.kill()
        proc.wait()
    assert MARKER in seen and seen.endswith(b"first line\nsecond line\n")


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_stdin_streams_with_bounded_agent_memory(published, policy_for, tmp_path) -> None:
    """8 MiB in (and echoed back) through an agent whose peak RSS grows by far less than that."""
    host = start_host(tmp_path / "host", pool=1)
    try:
        [warm] = d.deploy(settings(published, host, host.url, policy_for(host), stdin=b"warm\n"))
        assert warm.error is None and warm.stdout.endswith(b"warm\n"), warm.error
        before = vm_hwm_kib(host.process.pid)
        data = bytes(range(256)) * (8 * 4096)  # 8 MiB
        [r] = d.deploy(settings(published, host, host.url, policy_for(host), stdin=io.BytesIO(data)))
        grown = vm_hwm_kib(host.process.pid) - before
    finally:
        stop_host(host)
    assert r.error is None, r.error and r.error.message
    assert r.status == 1 and r.stdout.endswith(data)
    assert grown < 4 * 1024, f"the agent's peak RSS grew by {grown} KiB relaying 8 MiB of stdin"


def test_several_hosts_each_get_the_whole_stdin_stream(published, sim_host, policy_for) -> None:
    results = d.deploy(settings(published, sim_host, sim_host.url, policy_for(sim_host),
                                hosts=(sim_host.url, sim_host.url), stdin=io.BytesIO(b"to both\n")))
    assert [r.status for r in results] == [1, 1]
    assert all(r.stdout.endswith(b"to both\n") for r in results)


# -- the host tampers with sealed stdin frames: the keep refuses, the workload never sees them -------

FIRST, SECOND = b"\xa1" * 65536, b"\xb2" * 100  # two sealed frames (64 KiB chunks), then end-of-input


@pytest.mark.parametrize("how, words", [
    ("drop", "arrived where 0 was expected"),
    ("replay", "arrived where 1 was expected"),
    ("reorder", "arrived where 0 was expected"),
    ("flip", "failed authentication"),
])
def test_tampered_stdin_frames_are_refused_by_the_keep(published, sim_host, policy_for, how, words) -> None:
    def tamper(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if not path.endswith("/stdin"):
            return path, body
        recs = split_records(body)
        assert [len(p) for _, p in recs] == [len(FIRST) + seal.FRAME_OVERHEAD, len(SECOND) + seal.FRAME_OVERHEAD,
                                             seal.FRAME_OVERHEAD]
        if how == "flip":
            kind, frame = recs[0]
            recs[0] = (kind, frame[:20] + bytes([frame[20] ^ 1]) + frame[21:])
        else:
            recs = tamper_records(recs, how)
        return path, join_records(recs)

    proxy = Proxy(sim_host.url, on_request=tamper, stream_responses=True)
    with running(proxy):
        [r] = d.deploy(settings(published, sim_host, proxy.url, policy_for(sim_host),
                                stdin=io.BytesIO(FIRST + SECOND)))
    assert isinstance(r.error, VerificationError), r.error
    assert "in the keep" in r.error.message and words in r.error.message, r.error.message
    assert r.status is None
    out = bytes(r.stdout)
    assert SECOND[:4] not in out  # nothing after the tampered frame reached the workload
    if how == "replay":  # the genuine first frame at most once (the keep may die before echoing it)
        assert out.count(FIRST[:1]) in (0, len(FIRST))
    else:
        assert FIRST[:1] not in out
