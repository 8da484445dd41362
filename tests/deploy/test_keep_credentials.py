"""A sealed registry credential is presented only to the registry origin it was sealed for (issue 11, hole 4).

The keep pulls from a hostile registry (``--keep-registry``) that wants Basic credentials and then
points the keep at another loopback server, one port away: by redirecting blob GETs there, or by
naming it as its token service. That server records every header it receives; the credential must
never be among them.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from enarx_pkg._cli.main import main
from tests.deploy.conftest import MARKER, SECRET, Published

USER, PASSWORD = "keeper", "registry-pass-4c2e91d7"  # a test credential
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
Respond = Callable[["Server", BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes] | None]


@dataclass
class Server:
    """A loopback HTTP server: ``respond`` answers, or None relays the request to ``upstream``."""

    upstream: str
    respond: Respond
    seen: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def saw_credential(self) -> bool:
        return any(PASSWORD in v or BASIC.split()[1] in v or k.lower() == "authorization"
                   for h in self.seen for k, v in h.items())


def _handler(server: Server, http: httpx.Client) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.seen.append(dict(self.headers.items()) | {":path": self.path})
            answer = server.respond(server, self)
            if answer is None:
                r = http.request(self.command, server.upstream + self.path, headers={"Accept": self.headers["Accept"]
                                                                                    or "*/*"})
                keep = ("content-type", "docker-content-digest")
                answer = r.status_code, {k: v for k, v in r.headers.items() if k.lower() in keep}, r.content
            status, headers, body = answer
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

    return Handler


@contextmanager
def serving(*servers: Server) -> Iterator[None]:
    with httpx.Client(timeout=60) as http:
        running = []
        for s in servers:
            srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(s, http))
            s.url = f"http://127.0.0.1:{srv.server_address[1]}"
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            running.append(srv)
        try:
            yield
        finally:
            for srv in running:
                srv.shutdown()
                srv.server_close()


def recorder(pub: Published) -> Server:
    """The other origin: a token service and a blob store, recording what it is sent."""
    def respond(_: Server, req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes] | None:
        return (200, {"Content-Type": "application/json"}, b'{"token": "t"}') if req.path.startswith("/token") else None
    return Server(pub.registry_url, respond)


def hostile_registry(pub: Published, other: Server, mode: str) -> Server:
    """Wants the sealed Basic credential; then sends the keep to ``other`` (``redirect`` or ``realm``)."""
    def respond(_: Server, req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes] | None:
        auth = req.headers.get("Authorization", "")
        if mode == "realm" and auth != "Bearer t":
            return 401, {"WWW-Authenticate": f'Bearer realm="{other.url}/token",service="hostile"'}, b""
        if mode == "redirect" and auth != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="hostile"'}, b""
        if mode == "redirect" and "/blobs/" in req.path:
            return 307, {"Location": other.url + req.path}, b""
        return None
    return Server(pub.registry_url, respond)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    monkeypatch.setenv("ENARX_PKG_REGISTRY_USERNAME", USER)  # the keep registry's credential, sealed to the keep
    monkeypatch.setenv("ENARX_PKG_REGISTRY_PASSWORD", PASSWORD)
    monkeypatch.delenv("ENARX_PKG_REGISTRY_HOST", raising=False)


def deploy_from(pub: Published, registry: Server, sim_host, policy_for, capfdbinary) -> tuple[int, bytes, bytes]:
    with pytest.MonkeyPatch.context() as mp:
        # the credential is issued for the keep's registry (the deployer seals a credential only to the
        # origin it belongs to: tests/deploy/test_hostile_host.py)
        mp.setenv("ENARX_PKG_REGISTRY_HOST", registry.url.removeprefix("http://"))
        code = main(["deploy", pub.plain, "--host", sim_host.url, "--host-token-file", str(sim_host.token_file),
                     "--policy", str(policy_for(sim_host)), "--key", str(pub.signer_pub), "--insecure-sim",
                     "--keep-registry", registry.url])
    out, err = capfdbinary.readouterr()
    assert PASSWORD.encode() not in out + err
    return code, out, err


def test_blob_redirect_to_another_origin_gets_no_credential(published, sim_host, policy_for, capfdbinary) -> None:
    other = recorder(published)
    registry = hostile_registry(published, other, "redirect")
    with serving(other, registry):
        code, out, _ = deploy_from(published, registry, sim_host, policy_for, capfdbinary)
    assert code == 1 and MARKER in out  # pulled through the redirect, every digest checked
    assert any("/blobs/" in h[":path"] for h in other.seen)  # the blobs did come from the other origin
    assert not other.saw_credential()
    assert any(h.get("Authorization") == BASIC for h in registry.seen)  # presented where it was sealed for


def test_token_realm_on_another_origin_is_refused(published, sim_host, policy_for, capfdbinary) -> None:
    other = recorder(published)
    registry = hostile_registry(published, other, "realm")
    with serving(other, registry):
        code, out, err = deploy_from(published, registry, sim_host, policy_for, capfdbinary)
    assert code == 77 and b"another origin" in err and MARKER not in out
    assert not other.saw_credential() and not registry.saw_credential()
    assert json.dumps(other.seen).count("/token") == 0  # not even asked anonymously: the keep stopped first
