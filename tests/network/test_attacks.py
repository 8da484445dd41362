"""Clients that try to exhaust a network workload: idle floods, slowloris, too many connections.

The socket layer bounds each (docs/network.md); every test also checks that an honest client is
still served. Limits are made small so the tests are quick; the defaults are the same mechanisms.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.network.conftest import STDIO, http_get, listen_file, serving

IDLE_FLOOD = 1000


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that never send a byte (connected without blocking on a full backlog)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {count + 200}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 200), hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def timed_get(port: int, timeout: float = 30.0) -> tuple[bytes, float]:
    started = time.monotonic()
    body = http_get(port, timeout=timeout)
    return body, time.monotonic() - started


def test_a_thousand_idle_connections_do_not_block_an_honest_client(http_module: Callable[[str], Path]) -> None:
    """Single-threaded blocking Rust server: idle connections never reach it (deferred accept)."""
    limits = {"max_pending": 64, "idle_timeout_s": 30.0}
    with serving(http_module("rust"), limits) as server:
        baseline = open_fds(server.proc.pid)
        with idle_connections(server.port, IDLE_FLOOD):
            time.sleep(1.0)
            body, took = timed_get(server.port)
            held = open_fds(server.proc.pid) - baseline
    assert body.endswith(b"hello from rust\n") and took < 5.0
    assert held <= limits["max_pending"] + 8  # the pool is bounded; the rest wait in (or overflow) the backlog


def test_idle_pending_connections_are_dropped_after_the_idle_timeout(http_module: Callable[[str], Path]) -> None:
    with serving(http_module("rust"), {"idle_timeout_s": 1.0}) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        started = time.monotonic()
        http_get(server.port)  # the server is busy accepting: the idle one ages out meanwhile
        with contextlib.suppress(ConnectionResetError):
            assert idle.recv(1) == b""
        assert time.monotonic() - started < 8.0


def test_slowloris_is_cut_off_and_honest_clients_are_served(http_module: Callable[[str], Path]) -> None:
    """Headers one line every 0.3 s: reset after request_timeout_s; a request queued behind it is answered."""
    with serving(http_module("rust"), {"request_timeout_s": 1.5, "idle_timeout_s": 10.0}) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(0.3)  # now the server is reading this connection's headers
        result: dict[str, tuple[bytes, float]] = {}
        honest = threading.Thread(target=lambda: result.update(get=timed_get(server.port)))
        honest.start()
        cut_after = None
        started = time.monotonic()
        while time.monotonic() - started < 8.0:
            try:
                slow.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.3)
            except OSError:
                cut_after = time.monotonic() - started
                break
        honest.join(timeout=30)
    assert cut_after is not None and cut_after < 5.0
    body, took = result["get"]
    assert body.endswith(b"hello from rust\n") and took < 6.0


def test_connections_beyond_the_limit_wait_until_one_closes(http_module: Callable[[str], Path]) -> None:
    """Go accepts every connection; with max_connections = 2, a third is answered only after one closes."""
    with serving(http_module("go"), {"max_connections": 2}) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
        for s in held:
            s.sendall(b"GET / HTTP/1.1\r\n")  # an unfinished request: Go holds the connection
        time.sleep(0.5)
        third = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        third.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        third.settimeout(1.5)
        with pytest.raises(TimeoutError):
            third.recv(1)
        for s in held:
            s.close()
        third.settimeout(20)
        answer = b"".join(iter(lambda: third.recv(65536), b""))
        third.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"hello from go\n")


def test_a_client_that_floods_a_workload_that_never_reads_is_bounded_by_the_buffers(tmp_path: Path) -> None:
    """The guest accepts one connection and never reads it: the kernel buffers fill, nothing grows in Python."""
    import wasmtime

    wat = ('(module (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))'
           '(memory (export "memory") 1)'
           '(func (export "_start") (loop $l (drop (call $accept (i32.const 3) (i32.const 0) (i32.const 0)))'
           '  (br $l))))')
    module = tmp_path / "m.wasm"
    module.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    port = free_port()
    limit = 256 << 10
    with serving(module, {"buffer_bytes": limit}, files=[*STDIO, listen_file(port)], port=port), \
            socket.create_connection(("127.0.0.1", port), timeout=10) as flood:
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limit)
        flood.settimeout(2.0)
        sent = 0
        chunk = b"x" * 65536
        with contextlib.suppress(TimeoutError):
            while sent < 64 << 20:
                sent += flood.send(chunk)
    # the server's receive buffer (the kernel doubles what is asked) plus the client's own send buffer
    assert 0 < sent <= 8 * limit, sent
