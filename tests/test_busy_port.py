"""A server whose port is taken says so before anything else (exit 69, the address), and writes nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enarx_pkg", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def test_registry_serve_on_a_busy_port(taken: int, tmp_path: Path) -> None:
    r = _run("registry", "serve", "--data", str(tmp_path / "data"), "--port", str(taken), cwd=tmp_path)
    assert r.returncode == 69, r.stderr
    assert f"cannot listen on 127.0.0.1:{taken}: the address is already in use" in r.stderr
    assert r.stdout == ""  # nothing announced
    assert "Traceback" not in r.stderr


def test_host_serve_on_a_busy_port_keeps_its_token_and_key(taken: int, tmp_path: Path) -> None:
    data = tmp_path / "host"
    r = _run("host", "serve", "--backend", "sim", "--listen", f"127.0.0.1:{taken}", "--data", str(data),
             cwd=tmp_path)
    assert r.returncode == 69, r.stderr
    assert f"cannot listen on 127.0.0.1:{taken}" in r.stderr and "host agent on" not in r.stdout
    assert not data.exists()  # no token, no sim key written for a server that never ran


@pytest.mark.parametrize(("args", "code", "words"), [
    (("--token-file", "agent.token"), 66, "--token-file agent.token does not exist"),
    (("--publish-range", "9-2"), 2, "--publish-range '9-2': expected LOW-HIGH"),
])
def test_host_serve_refuses_a_bad_option_before_writing_anything(tmp_path: Path, args: tuple[str, ...], code: int,
                                                                  words: str) -> None:
    """A missing token file is 'not found' (66, with what to do), and neither it nor a bad range leaves a
    data directory, token or sim key behind."""
    data = tmp_path / "host"
    r = _run("host", "serve", "--backend", "sim", "--listen", "127.0.0.1:9", "--data", str(data), *args,
             cwd=tmp_path)  # refused before the address is even tried
    assert r.returncode == code and words in r.stderr, r.stderr
    assert not data.exists() and "host agent on" not in r.stdout and "Traceback" not in r.stderr
