"""What a guest can reach (declared sockets, preview 1 calls on them) and what is refused before it runs."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from enarx_pkg import runtime
from enarx_pkg.build import build
from enarx_pkg.errors import ExitCode, InputError
from enarx_pkg.manifest.model import File
from tests.build.helpers import prebuilt_project
from tests.conftest import REPO, free_port
from tests.network.conftest import http_get, serving, tls_version
from tests.network.test_examples import service_project

STDIO = (File("stdin", "stdin"), File("stdout", "stdout"), File("stderr", "stderr"))
P1 = '(import "wasi_snapshot_preview1" "{0}" (func ${0} {1}))'
IMPORTS = "".join(P1.format(name, sig) for name, sig in [
    ("fd_write", "(param i32 i32 i32 i32) (result i32)"), ("fd_read", "(param i32 i32 i32 i32) (result i32)"),
    ("sock_accept", "(param i32 i32 i32) (result i32)"), ("proc_exit", "(param i32)")])


def run_cli(project: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enarx_pkg", "run", str(project)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tls_project(http_module: Callable[[str], Path], tmp_path: Path) -> tuple[Path, int]:
    """The Rust HTTP server as a built project whose listen file is ``prot = "tls"``, on a free port."""
    port = free_port()
    project = service_project(tmp_path / "p", http_module("rust"), port)
    toml = project / "Enarx.toml"
    toml.write_text(toml.read_text().replace('prot = "tcp"', 'prot = "tls"'))
    build(project)
    return project, port


def test_tls_is_served_as_tls_never_plain(http_module: Callable[[str], Path], tmp_path: Path) -> None:
    """Outside a keep, `run` serves prot = "tls" with a fresh self-signed certificate (as Enarx does without
    a Steward) and says so; a plaintext client gets no HTTP answer (attested TLS in keeps: tests/tls)."""
    from tests.network.conftest import wait_listening

    project, port = _tls_project(http_module, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "run", str(project)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        try:
            plain = http_get(port)
        except ConnectionResetError:  # the TLS listener drops a client that does not speak TLS
            plain = b""
        assert b"HTTP/1.1" not in plain and b"hello from rust" not in plain  # never plain
        curl = subprocess.run(["curl", "-sSk", f"https://127.0.0.1:{port}/"], capture_output=True, text=True,
                              timeout=30)
        assert curl.returncode == 0 and "hello from rust" in curl.stdout, curl.stderr
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert b"self-signed certificate that attests nothing" in err and b"Traceback" not in err


def test_run_accepts_tls_1_2_only_with_tls12(http_module: Callable[[str], Path], tmp_path: Path) -> None:
    """TLS 1.3 only by default; ``run --tls12`` (as ``deploy --tls12`` in a keep) lets TLS 1.2 clients in."""
    from tests.network.conftest import wait_listening

    project, port = _tls_project(http_module, tmp_path)
    for flag, tls12 in (((), None), (("--tls12",), "TLSv1.2")):
        proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "run", *flag, str(project)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, proc)
            assert tls_version(port, tls12_only=False) == "TLSv1.3"
            assert tls_version(port, tls12_only=True) == tls12
        finally:
            proc.kill()
            proc.wait(timeout=30)


def test_port_in_use_is_a_clear_error_not_a_hang(http_module: Callable[[str], Path], tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        project = service_project(tmp_path / "p", http_module("rust"), port)
        build(project)
        started = time.monotonic()
        out = run_cli(project, timeout=30)
    assert out.returncode == ExitCode.TRANSPORT, out.stderr
    assert f"127.0.0.1:{port} is already in use" in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - started < 20


def test_host_cannot_reach_an_undeclared_port_or_address(http_module: Callable[[str], Path]) -> None:
    other = free_port()
    with serving(http_module("rust")) as server:
        assert http_get(server.port).endswith(b"hello from rust\n")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", other), timeout=5)
        with pytest.raises(ConnectionRefusedError):  # declared addr is 127.0.0.1 only
            socket.create_connection(("127.0.0.2", server.port), timeout=5)


def test_guest_reaches_no_undeclared_socket(tmp_path: Path) -> None:
    """Preview 1 cannot open sockets; fds past the declared ones are not sockets (EBADF)."""
    wat = (f'(module {IMPORTS} (memory (export "memory") 1)'
           '(func (export "_start") (local $e i32)'
           '  (local.set $e (call $sock_accept (i32.const 4) (i32.const 0) (i32.const 64)))'
           '  (if (i32.ne (local.get $e) (i32.const 8))'
           '    (then (call $proc_exit (i32.add (i32.const 100) (local.get $e)))))'
           '  (call $proc_exit (call $fd_write (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 64)))))')
    module = tmp_path / "m.wasm"
    module.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    files = (*STDIO, File("listen", "web", addr="127.0.0.1", port=free_port(), prot="tcp"))
    assert runtime.run(runtime.RunSpec(module, files=files, stdin=b"", cache=False)) == 8  # EBADF both times


def test_connect_reaches_the_declared_host(tmp_path: Path) -> None:
    """fd 3 is a stream to the declared host:port; the guest writes "ping", relays the answer to stdout."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        seen: list[bytes] = []

        def answer() -> None:
            conn, _ = srv.accept()
            with conn:
                seen.append(conn.recv(16))
                conn.sendall(b"pong")

        threading.Thread(target=answer, daemon=True).start()
        wat = (f'(module {IMPORTS} (memory (export "memory") 1) (data (i32.const 16) "ping")'
               '(func (export "_start")'
               '  (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 4))'
               '  (drop (call $fd_write (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 8)))'
               '  (drop (call $fd_read (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 8)))'
               '  (i32.store (i32.const 4) (i32.load (i32.const 8)))'
               '  (call $proc_exit (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))')
        module = tmp_path / "m.wasm"
        module.write_bytes(bytes(wasmtime.wat2wasm(wat)))
        out: list[bytes] = []
        files = (*STDIO, File("connect", "peer", host="127.0.0.1", port=srv.getsockname()[1], prot="tcp"))
        assert runtime.run(runtime.RunSpec(module, files=files, stdin=b"", stdout=out.append, cache=False)) == 0
    assert seen == [b"ping"] and b"".join(out) == b"pong"


def test_connect_to_a_host_that_is_down_fails_before_the_workload_starts(tmp_path: Path) -> None:
    module = tmp_path / "m.wasm"
    module.write_bytes(bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "_start")))')))
    port = free_port()
    files = (*STDIO, File("connect", "db", host="127.0.0.1", port=port, prot="tcp"))
    with pytest.raises(Exception, match=f"cannot connect to 127.0.0.1:{port}") as exc:
        runtime.run(runtime.RunSpec(module, files=files, stdin=b"", cache=False))
    assert getattr(exc.value, "exit_code", None) == ExitCode.TRANSPORT


def test_component_with_sockets_is_refused_at_build(tmp_path: Path) -> None:
    """wasmtime-py gives a component all of the host network or none: declared-only cannot be enforced."""
    files = ('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
             '[[files]]\nkind = "connect"\nhost = "127.0.0.1"\nport = 5432\nprot = "tcp"\n')
    project = prebuilt_project(tmp_path / "p", bytes(wasmtime.wat2wasm("(component)")), extra=files)
    with pytest.raises(InputError, match=r"WASI 0\.2 component") as exc:
        build(project)
    assert "whole host network" in exc.value.message
    assert not (project / "target" / "oci").exists()


def test_nonblocking_accept_and_poll_oneoff_with_a_clock(tmp_path: Path) -> None:
    """O_NONBLOCK makes sock_accept answer EAGAIN; poll_oneoff on the listener + a 200 ms clock wakes by the clock."""
    poll = P1.format("poll_oneoff", "(param i32 i32 i32 i32) (result i32)")
    flags = P1.format("fd_fdstat_set_flags", "(param i32 i32) (result i32)")
    wat = (f'(module {IMPORTS} {poll} {flags} (memory (export "memory") 1)'
           '(func $fail (param i32) (call $proc_exit (local.get 0)))'
           '(func (export "_start") (local $e i32)'
           '  (if (call $fd_fdstat_set_flags (i32.const 3) (i32.const 4)) (then (call $fail (i32.const 101))))'
           '  (local.set $e (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 64)))'
           # subscription 1: fd_read on fd 3; subscription 2: relative monotonic clock, 200 ms
           '  (i64.store (i32.const 256) (i64.const 1)) (i32.store8 (i32.const 264) (i32.const 1))'
           '  (i32.store (i32.const 272) (i32.const 3))'
           '  (i64.store (i32.const 304) (i64.const 2)) (i32.store8 (i32.const 312) (i32.const 0))'
           '  (i32.store (i32.const 320) (i32.const 1)) (i64.store (i32.const 328) (i64.const 200000000))'
           '  (if (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 2) (i32.const 600))'
           '    (then (call $fail (i32.const 102))))'
           '  (if (i32.ne (i32.load (i32.const 600)) (i32.const 1)) (then (call $fail (i32.const 103))))'
           '  (if (i64.ne (i64.load (i32.const 512)) (i64.const 2)) (then (call $fail (i32.const 104))))'
           '  (call $proc_exit (local.get $e))))')
    module = tmp_path / "m.wasm"
    module.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    files = (*STDIO, File("listen", "web", addr="127.0.0.1", port=free_port(), prot="tcp"))
    started = time.monotonic()
    assert runtime.run(runtime.RunSpec(module, files=files, stdin=b"", cache=False)) == 6  # EAGAIN
    assert 0.2 <= time.monotonic() - started < 10


def test_time_limit_ends_a_workload_waiting_in_accept(tmp_path: Path) -> None:
    from enarx_pkg.errors import WorkloadTimeout

    wat = (f'(module {IMPORTS} (memory (export "memory") 1)'
           '(func (export "_start") (drop (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 64)))))')
    module = tmp_path / "m.wasm"
    module.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    port = free_port()
    files = (*STDIO, File("listen", "web", addr="127.0.0.1", port=port, prot="tcp"))
    started = time.monotonic()
    with pytest.raises(WorkloadTimeout, match=r"time limit of 1\.0 s"):
        runtime.run(runtime.RunSpec(module, files=files, stdin=b"", cache=False, time_limit_s=1.0))
    assert time.monotonic() - started < 5
    assert port_is_free(port)  # closed with the run
