"""``prot = "tls"`` through the runtime: a real wasm HTTP server (examples/rust-http) behind the keep's TLS.

The runtime gets a :class:`TlsSetup` (as the keep gives it, with an identity made from sim evidence),
terminates TLS in front of the workload's listen fd, and real clients talk to it through a relay
that records what the host would see.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from enarx_pkg import manifest, runtime
from enarx_pkg.attestation.policy import load_policy
from enarx_pkg.errors import InputError
from enarx_pkg.manifest.model import File
from enarx_pkg.tls import client, identity, sockets
from tests.conftest import free_port
from tests.tls.conftest import PACKAGE, SimKeep
from tests.tls.peers import Relay

BODY = b"hello from rust"
STDIO = (File("stdin", "stdin"), File("stdout", "stdout"), File("stderr", "stderr"))


@pytest.fixture(scope="module")
def rust_http(built_example: Callable[[str], Path]) -> Path:
    project = built_example("rust-http").parent.parent
    build = manifest.load(project).build
    assert build is not None
    return project / build.output


def _serve(module: Path, setup: sockets.TlsSetup | None, port: int, errors: list[BaseException]) -> threading.Thread:
    files = (*STDIO, File("listen", "web", addr="127.0.0.1", port=port, prot="tls"))
    spec = runtime.RunSpec(module, files=files, stdin=b"", stdout=lambda b: None, stderr=lambda b: None,
                           time_limit_s=20, tls=setup)

    def go() -> None:
        try:
            runtime.run(spec)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def tls_server(rust_http: Path) -> Iterator[tuple[int, SimKeep, Relay]]:
    import socket
    import time

    sim = SimKeep()
    setup = sockets.TlsSetup(identity.KeepIdentity(identity.self_contained(["127.0.0.1"], PACKAGE, sim.source)))
    port, errors = free_port(), []
    _serve(rust_http, setup, port, errors)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not errors:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    assert not errors, errors
    yield port, sim, Relay(port)


def test_wasm_server_answers_attested_httpx_and_the_host_sees_ciphertext(tls_server, tmp_path):
    _, sim, relay = tls_server
    peer = client.AttestedPeer(load_policy(sim.policy(tmp_path / "p.toml")), package=PACKAGE)
    with httpx.Client(transport=client.httpx_transport(peer)) as http:
        for _ in range(3):
            r = http.get(f"https://127.0.0.1:{relay.port}/", headers={"X-Secret": "SECRET-HEADER-93d1"})
            assert r.status_code == 200 and r.content.startswith(BODY)
    assert len(relay.captured) > 1000
    assert BODY not in relay.captured and b"SECRET-HEADER-93d1" not in relay.captured


def test_attest_tls_accepts_the_wasm_server(tls_server, tmp_path):
    from tests.tls.conftest import cli

    port, sim, _ = tls_server
    out = cli("attest", "tls", f"127.0.0.1:{port}", "--policy", str(sim.policy(tmp_path / "p.toml")),
              "--package", PACKAGE)
    assert out.returncode == 0 and "accepted" in out.stdout, out.stderr


def test_openssl_s_client_gets_the_page(tls_server):
    port, _, _ = tls_server
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", "-ign_eof"],
                         input="GET / HTTP/1.1\r\nHost: x\r\n\r\n", capture_output=True, text=True, timeout=30)
    assert "hello from rust" in out.stdout, out.stderr


def test_run_without_a_keep_still_refuses_tls(rust_http):
    errors: list[BaseException] = []
    _serve(rust_http, None, free_port(), errors).join(30)
    assert errors and isinstance(errors[0], InputError) and 'prot = "tls"' in errors[0].message
