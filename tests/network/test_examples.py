"""The Rust, C and Go HTTP examples, built once, run by ``enarx-pkg run`` and driven by real clients."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port
from tests.network.conftest import Server, serving, wait_listening

GREETING = {"rust": b"hello from rust\n", "c": b"hello from c\n", "go": b"hello from go\n"}


def service_project(root: Path, module: Path, port: int) -> Path:
    """A project packaging ``module`` with an Enarx.toml that listens on ``port`` (prot tcp, loopback)."""
    root.mkdir(parents=True)
    shutil.copyfile(module, root / "server.wasm")
    (root / "Enarx.toml").write_text(
        '[package]\nname = "svc"\nversion = "1.0.0"\n\n[build]\nrecipe = "prebuilt"\noutput = "server.wasm"\n\n'
        '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
        f'[[files]]\nkind = "listen"\nname = "web"\nprot = "tcp"\naddr = "127.0.0.1"\nport = {port}\n')
    return root


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enarx_pkg", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module", params=["rust", "c", "go"])
def cli_server(request: pytest.FixtureRequest, http_module: Callable[[str], Path],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Server]]:
    """``enarx-pkg build`` + ``enarx-pkg run`` of the example, as a user would, on a free port."""
    lang = str(request.param)
    port = free_port()
    project = service_project(tmp_path_factory.mktemp(f"svc-{lang}") / "p", http_module(lang), port)
    built = cli("build", str(project))
    assert built.returncode == 0, built.stderr
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "run", str(project)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        yield lang, Server(proc, port)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_curl_gets_the_greeting(cli_server: tuple[str, Server]) -> None:
    lang, server = cli_server
    out = subprocess.run(["curl", "-sS", "-i", "--max-time", "20", server.url + "/"], capture_output=True,
                         timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"HTTP/1.1 200 OK") and out.stdout.endswith(GREETING[lang])


def test_httpx_makes_many_requests(cli_server: tuple[str, Server]) -> None:
    lang, server = cli_server
    with httpx.Client(timeout=20) as client:
        bodies = [client.get(f"{server.url}/").content for _ in range(50)]
    assert bodies == [GREETING[lang]] * 50


def test_wrk_drives_it_without_errors(cli_server: tuple[str, Server]) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    _, server = cli_server
    out = subprocess.run(["wrk", "-c8", "-t1", "-d1s", server.url + "/"], capture_output=True, text=True,
                         timeout=60, check=False)
    done = re.search(r"(\d+) requests in", out.stdout)
    assert done and int(done.group(1)) > 50, out.stdout
    assert "Non-2xx" not in out.stdout and "Socket errors" not in out.stdout, out.stdout


def test_the_c_server_echoes_the_request_line(http_module: Callable[[str], Path]) -> None:
    with serving(http_module("c")) as server:
        body = httpx.get(f"{server.url}/echo/this", timeout=20).text
    assert body == "GET /echo/this HTTP/1.1"


def test_32_mib_stream_arrives_whole(http_module: Callable[[str], Path]) -> None:
    total = 32 << 20
    with serving(http_module("rust")) as server, httpx.stream("GET", f"{server.url}/bytes/{total}", timeout=30) as r:
        got = sum(len(chunk) for chunk in r.iter_raw())
        assert r.status_code == 200 and r.headers["content-length"] == str(total)
    assert got == total


def test_ctrl_c_stops_a_service_with_130_and_frees_its_port(http_module: Callable[[str], Path], tmp_path: Path) -> None:
    import signal

    port = free_port()
    project = service_project(tmp_path / "p", http_module("rust"), port)
    assert cli("build", str(project)).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "run", str(project)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_listening(port, proc)
    proc.send_signal(signal.SIGINT)  # it is waiting in sock_accept: the socket layer notices within 0.2 s
    assert proc.wait(timeout=20) == 130
    assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the listening socket went with the run


def test_the_older_network_dialect_runs_the_same(http_module: Callable[[str], Path], tmp_path: Path) -> None:
    """[stdin]/[stdout]/[stderr] + [network.incoming.PORT] give the same fds as [[files]]: fd 3 listens."""
    port = free_port()
    project = service_project(tmp_path / "p", http_module("rust"), port)
    (project / "Enarx.toml").write_text(
        '[package]\nname = "svc"\nversion = "1.0.0"\n\n[build]\nrecipe = "prebuilt"\noutput = "server.wasm"\n\n'
        '[stdin]\nkind = "host"\n[stdout]\nkind = "host"\n[stderr]\nkind = "host"\n\n'
        f'[network.incoming.{port}]\nname = "web"\nprot = "tcp"\naddr = "127.0.0.1"\n')
    assert cli("build", str(project)).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "run", str(project)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=20).content == GREETING["rust"]
    finally:
        proc.kill()
        proc.wait(timeout=30)
