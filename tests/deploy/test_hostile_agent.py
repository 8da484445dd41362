"""A hostile host agent sends answers that never end: the deployer stops at its limit, with a typed error.

Before, every host-agent answer was read whole (``r.json()``, ``r.text``, ``r.read()``) and the output
stream accepted records up to the envelope size, so a host could make the deployer buffer without bound.
Each test counts what the hostile server managed to send before the deployer hung up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from enarx_pkg import deploy as d
from enarx_pkg import keyscan, verify
from enarx_pkg._internal import seal
from enarx_pkg.errors import TransportError, VerificationError
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.fixtures.hosts import HostAgent
from tests.security.hostile import CHUNK, endless

pytestmark = pytest.mark.timeout(120)


def deploy_to(pub: Published, url: str, token: str, policy: object) -> d.HostResult:
    settings = d.DeploySettings(ref=pub.plain, hosts=(url,), signer=verify.KeyPolicy(pub.signer_pub.read_bytes()),
                                policy_path=policy, host_token=token, insecure_sim=True)  # type: ignore[arg-type]
    [result] = d.deploy(settings)
    return result


def test_endless_create_keep_answer_is_refused(published, policy_for, sim_host, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)  # deploy reads its secrets before any host
    with endless({"/v1/keeps": (200, {"Content-Type": "application/json"})}) as (host, sent):
        r = deploy_to(published, f"http://{host}", "t", policy_for(sim_host))
    assert isinstance(r.error, TransportError) and "over the 4194304-byte limit" in r.error.message, r.error
    assert r.status is None and max(sent) < 64  # MiB: the deployer hung up near its 4 MiB limit


def test_endless_refusal_body_is_not_buffered(published, policy_for, sim_host, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)  # deploy reads its secrets before any host
    with endless({"/v1/keeps": (503, {})}) as (host, sent):
        r = deploy_to(published, f"http://{host}", "t", policy_for(sim_host))
    assert isinstance(r.error, TransportError) and r.error.status == 503, r.error
    assert max(sent) < 64


def test_endless_platform_answer_is_refused_by_keyscan() -> None:
    with endless({"/v1/platform": (200, {})}) as (host, sent), \
            pytest.raises(TransportError, match="over the 1048576-byte limit"):
        keyscan.keyscan(f"http://{host}", "t")
    assert max(sent) < 64


@contextmanager
def relaying(upstream: HostAgent, provision: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """An agent that passes create/delete to the real sim host (so attestation succeeds) and answers
    provision with ``provision`` (called with the request handler)."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path.endswith("/provision"):
                provision(self)
                self.close_connection = True
                return
            r = httpx.request(self.command, upstream.url + self.path, content=body,
                              headers={"Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json"})
            self.send_response(r.status_code)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        do_POST = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_oversized_output_record_is_refused(published, policy_for, sim_host, monkeypatch) -> None:
    """A record announced one byte over a sealed frame, then endless bytes: refused at the header."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    sent: list[int] = []

    def oversized(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        head = seal.RECORD_HEADER.pack(seal.R_FRAME, seal.MAX_FRAME_BYTES + 1)
        n = 0
        try:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
            while n < 4096:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                n += 1
        except OSError:
            pass
        sent.append(n // 16)

    with relaying(sim_host, oversized) as url:
        r = deploy_to(published, url, "t", policy_for(sim_host))
    assert isinstance(r.error, VerificationError), r.error
    assert f"over the {seal.MAX_FRAME_BYTES}-byte limit" in r.error.message, r.error.message
    assert r.status is None and MARKER not in r.stdout and max(sent) < 64
