"""Network test set-up: the HTTP example servers built once per session, and servers run on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port
from tests.network.detached import Service, signed_and_published

STDIO = [{"kind": "stdin", "name": "stdin"}, {"kind": "stdout", "name": "stdout"}, {"kind": "stderr", "name": "stderr"}]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def http_module(built_example: Callable[[str], Path]) -> Callable[[str], Path]:
    """``http_module("rust"|"c"|"go")``: the example server's built module (each built once per session)."""
    from enarx_pkg import manifest

    def get(lang: str) -> Path:
        project = built_example(f"{lang}-http").parent.parent
        build = manifest.load(project).build
        assert build is not None
        return project / build.output

    return get


def listen_file(port: int, name: str = "web", prot: str = "tcp") -> dict[str, Any]:
    return {"kind": "listen", "name": name, "addr": "127.0.0.1", "port": port, "prot": prot}


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    """Until something accepts on ``port`` (the probe sends nothing, so the server never sees it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"server exited with {proc.returncode}: {err!r}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port} within {timeout} s")


@contextlib.contextmanager
def serving(module: Path, limits: dict[str, Any] | None = None, files: list[dict[str, Any]] | None = None,
            port: int | None = None) -> Iterator[Server]:
    """The module run by the real runtime in a child process, listening on a free loopback port."""
    port = port or free_port()
    spec = {"module": str(module), "files": files or [*STDIO, listen_file(port)], "limits": limits or {}}
    proc = subprocess.Popen([sys.executable, "-m", "tests.network.serve", json.dumps(spec)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        yield Server(proc, port)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def http_get(port: int, path: str = "/", timeout: float = 10.0) -> bytes:
    """A raw HTTP/1.1 GET on loopback; the whole response (the example servers close after one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="session")
def rust_service(tmp_path_factory: pytest.TempPathFactory, built_example: Callable[[str], Path],
                 docker_registry: object) -> Service:
    """The Rust HTTP example, signed and published to a real registry once per run (read only by tests)."""
    return signed_and_published(built_example("rust-http"), "net/rust-http", tmp_path_factory.mktemp("detach-pkg"),
                                docker_registry)


def tls_version(port: int, *, tls12_only: bool) -> str | None:
    """The TLS version a client (TLS 1.2 at most if ``tls12_only``) gets from the server; None if refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the version is what is tested here
    if tls12_only:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, ctx.wrap_socket(raw) as tls:
            return tls.version()
    except (ssl.SSLError, ConnectionResetError):
        return None
