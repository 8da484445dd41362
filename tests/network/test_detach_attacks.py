"""Clients that try to exhaust a DETACHED keep (the service outlives its deployer, so nobody is watching):
1,000 idle connections and slowloris, against the keep's default limits (docs/network.md), on the port
the agent published. An honest client is still served in each case."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from enarx_pkg._internal.socktable import Limits
from tests.fixtures.hosts import HostAgent
from tests.network.detached import (
    Detached,
    Service,
    cli,
    deploy_detached,
    keep_pids,
    range_host,
    signed_and_published,
)
from tests.network.test_attacks import IDLE_FLOOD, idle_connections, open_fds

DEFAULTS = Limits()  # a detached keep runs under the default network limits


@pytest.fixture(scope="module")
def attack_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostAgent]:
    for host, _ in range_host(tmp_path_factory.mktemp("attack-host"), 2):
        yield host


def published(lang: str, built_example: Callable[[str], Path], registry: object, root: Path) -> Service:
    return signed_and_published(built_example(f"{lang}-http"), f"net/attack-{lang}", root, registry)


@pytest.fixture
def detached(request: pytest.FixtureRequest, built_example: Callable[[str], Path], docker_registry: object,
             attack_host: HostAgent, tmp_path: Path) -> Iterator[Detached]:
    """The example named by the test's ``lang`` parameter, deployed detached; stopped afterwards."""
    d = deploy_detached(published(request.param, built_example, docker_registry, tmp_path), attack_host, tmp_path)
    yield d
    cli("keep", "stop", d.keep_id, "--host", attack_host.url, env=d.env)


def port_of(d: Detached) -> int:
    return int(str(d.endpoints[0]["address"]).rsplit(":", 1)[1])


def serving_pid(host: HostAgent, port: int) -> int:
    """The keep process that holds the listening socket on ``port`` (found by its socket inode)."""
    inode = _listening_inode(port)
    for pid in keep_pids(host):
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no keep process of {host.url} listens on {port}")


def _listening_inode(port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # local address, state LISTEN
            return fields[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def honest(d: Detached, greeting: str) -> None:
    """A real client (httpx, then curl) gets the greeting."""
    assert httpx.get(d.url + "/", timeout=60).text == greeting
    out = subprocess.run(["curl", "-sS", "--max-time", "60", d.url + "/"], capture_output=True, text=True,
                         timeout=90, check=False)
    assert out.returncode == 0 and out.stdout == greeting, out.stderr


@pytest.mark.parametrize("detached", ["rust"], indirect=True)
def test_a_thousand_idle_connections_to_a_detached_keep(detached: Detached, attack_host: HostAgent) -> None:
    """Single-threaded blocking Rust server: 1,000 silent clients never reach it (deferred accept), the keep
    holds at most ``max_pending`` of them, and an honest client is served during the flood and after it."""
    pid = serving_pid(attack_host, port_of(detached))
    baseline = open_fds(pid)
    with idle_connections(port_of(detached), IDLE_FLOOD) as flood:
        honest(detached, "hello from rust\n")
        held = open_fds(pid) - baseline
        assert len(flood) == IDLE_FLOOD
    assert 0 <= held <= DEFAULTS.max_pending + 8, held  # the pool is bounded; the rest wait in the backlog
    honest(detached, "hello from rust\n")


@pytest.mark.parametrize("detached", ["go"], indirect=True)
def test_slowloris_against_a_detached_keep(detached: Detached) -> None:
    """20 clients that send one header line every 0.5 s and never finish: honest clients are served while
    they trickle, and the keep resets every one of them once ``request_timeout_s`` has passed."""
    slow = [socket.create_connection(("127.0.0.1", port_of(detached)), timeout=10) for _ in range(20)]
    cut: dict[int, float] = {}
    stop = threading.Event()
    started = time.monotonic()

    def trickle() -> None:
        for s in slow:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        while not stop.is_set() and len(cut) < len(slow):
            for i, s in enumerate(slow):
                if i not in cut:
                    try:
                        s.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        cut[i] = time.monotonic() - started
            stop.wait(0.5)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        honest(detached, "hello from go\n")  # Go serves each connection on its own goroutine
        thread.join(timeout=DEFAULTS.request_timeout_s + 120)  # generous: the machine may be loaded
    finally:
        stop.set()
        for s in slow:
            s.close()
    assert len(cut) == len(slow), f"{len(slow) - len(cut)} slow clients were never cut off"
    assert min(cut.values()) >= DEFAULTS.request_timeout_s - 1  # cut by the request timeout, not before
    honest(detached, "hello from go\n")
