"""A registry that cannot be reached: the message says what happened (refused, TLS, timeout) and where."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from enarx_pkg._cli.main import main
from enarx_pkg._internal import neterr
from enarx_pkg.errors import TransportError
from enarx_pkg.oci.transport import Settings
from enarx_pkg.pull import pull
from tests.conftest import free_port

QUICK = Settings(timeout=0.5, retries=1, backoff=0.01)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never answers."""
    sock = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    sock.close()


def test_connection_refused_says_so_with_the_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["pull", f"127.0.0.1:{port}/team/app:1.0", "-o", str(tmp_path / "out")]) == 69
    err = capsys.readouterr().err
    assert "connection refused" in err and f"http://127.0.0.1:{port}/v2/" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_tls_to_a_plain_http_registry_says_plain_http(docker_registry: Any, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "--https", f"{docker_registry.host}/none/app:1.0", "-o", str(tmp_path / "o")]) == 69
    err = capsys.readouterr().err
    assert "TLS failure: the server does not speak TLS" in err and f"https://{docker_registry.host}/" in err
    assert "--plain-http" in err


def test_timeout_says_timed_out(silent_server: int, tmp_path: Path) -> None:
    with pytest.raises(TransportError) as info:
        pull(f"127.0.0.1:{silent_server}/team/app:1.0", tmp_path / "out", settings=QUICK)
    assert "timed out" in info.value.message and f"127.0.0.1:{silent_server}" in info.value.message


def test_name_not_resolved_is_named() -> None:
    # built from the resolver's own error (no lookup leaves this machine)
    try:
        raise socket.gaierror(-2, "Name or service not known")
    except socket.gaierror as inner:
        try:
            raise httpx.ConnectError(str(inner)) from inner
        except httpx.ConnectError as exc:
            assert neterr.describe(exc).startswith("host name not resolved")
            assert neterr.hint(exc) == "check the spelling of the host name"


def test_ctrl_c_exits_130_and_leaves_nothing(silent_server: int, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "pull", f"127.0.0.1:{silent_server}/team/app:1.0",
                             "-o", str(tmp_path / "out")], stderr=subprocess.PIPE, cwd=tmp_path)
    time.sleep(2.0)  # blocked waiting for the registry's answer
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and b"aborted" in err and b"Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no half-pulled layout, no staging dir
