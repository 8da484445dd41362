"""One test per registry fault: each through a real misbehaving proxy in front of docker-registry."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.errors import TransportError, VerificationError
from enarx_pkg.oci import parse_registry
from enarx_pkg.oci.auth import Credential, static
from enarx_pkg.oci.transport import Settings
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from tests.conftest import free_port
from tests.fixtures.distribution import Peer
from tests.transfer.conftest import make_package
from tests.transfer.faultproxy import Handler, ProxyServer

FAST = Settings(backoff=0.01, retries=3, upload_chunk=1 << 20, monolithic_limit=1 << 20)
BLOB = re.compile(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$")


@pytest.fixture
def proxy(docker_registry: Peer) -> Iterator[ProxyServer]:
    p = ProxyServer(docker_registry.url).start()
    yield p
    p.stop()


def _published(peer: Peer, tmp_path: Path, repo: str, extra: int = 0) -> tuple[str, Any]:
    layout, dg = make_package(tmp_path / "src", note=repo, extra=extra)
    publish(layout, Target(parse_registry(peer.host), repo, "1"), credentials=_creds(peer))
    return dg, layout


def _creds(peer: Peer) -> Any:
    if peer.username and peer.password:
        return lambda host: Credential(peer.username or "", peer.password or "", "test")
    return None


def _big_blob_fault(mutate: Any) -> Any:
    def fault(h: Handler, method: str, path: str, body: bytes) -> bool:
        if method != "GET" or not BLOB.match(path):
            return False
        status, headers, data = h.forward(body)
        if len(data) < 1000:  # the small config blob passes; the big layer is attacked
            return False
        mutate(h, status, headers, data)
        return True
    return fault


def test_blob_with_wrong_digest_is_refused(proxy: ProxyServer, docker_registry: Peer, tmp_path: Path) -> None:
    _published(docker_registry, tmp_path, "fault/digest", extra=4096)
    def flip(h: Handler, status: int, headers: dict[str, str], data: bytes) -> None:
        h.respond(status, headers, data[:100] + bytes([data[100] ^ 1]) + data[101:])
    proxy.fault = _big_blob_fault(flip)
    with pytest.raises(VerificationError, match="digest mismatch"):
        pull(f"{proxy.host}/fault/digest:1", tmp_path / "out", settings=FAST)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.pull-")]  # temp dir cleaned


def test_truncated_body_with_consistent_length_is_refused(proxy: ProxyServer, docker_registry: Peer,
                                                          tmp_path: Path) -> None:
    _published(docker_registry, tmp_path, "fault/trunc", extra=4096)
    def cut(h: Handler, status: int, headers: dict[str, str], data: bytes) -> None:
        headers.pop("Content-Length", None)
        h.respond(status, headers, data[: len(data) // 2])  # Content-Length says half: never trust it
    proxy.fault = _big_blob_fault(cut)
    with pytest.raises(VerificationError, match="size mismatch"):
        pull(f"{proxy.host}/fault/trunc:1", tmp_path / "out", settings=FAST)
    assert not (tmp_path / "out").exists()


def test_connection_dropped_mid_body_is_a_transport_error(proxy: ProxyServer, docker_registry: Peer,
                                                          tmp_path: Path) -> None:
    _published(docker_registry, tmp_path, "fault/drop", extra=4096)
    def drop(h: Handler, status: int, headers: dict[str, str], data: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[:1000])
        h.wfile.flush()
        h.reset()
    proxy.fault = _big_blob_fault(drop)
    rc = main(["pull", f"{proxy.host}/fault/drop:1", "-o", str(tmp_path / "out")])
    assert rc == 69 and not (tmp_path / "out").exists()


def test_manifest_over_the_size_limit(proxy: ProxyServer, docker_registry: Peer, tmp_path: Path) -> None:
    def huge(h: Handler, method: str, path: str, body: bytes) -> bool:
        if "/manifests/" not in path:
            return False
        h.respond(200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                  b'{"schemaVersion":2,"pad":"' + b"x" * (5 << 20) + b'"}')
        return True
    proxy.fault = huge
    with pytest.raises(VerificationError, match="limit"):
        pull(f"{proxy.host}/fault/huge:1", tmp_path / "out", settings=FAST)


class _Recorder(BaseHTTPRequestHandler):
    """The "other host" (object storage) a blob GET is redirected to: serves bytes, records headers."""

    protocol_version = "HTTP/1.1"
    blobs: dict[str, bytes] = {}  # noqa: RUF012
    seen: list[dict[str, str]] = []  # noqa: RUF012

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        _Recorder.seen.append(dict(self.headers))
        data = _Recorder.blobs[self.path.strip("/")]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_redirect_to_another_host_gets_no_credentials(docker_registry_htpasswd: Peer, tmp_path: Path) -> None:
    peer = docker_registry_htpasswd
    dg, _ = _published(peer, tmp_path, "fault/redirect")
    storage = ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    threading.Thread(target=storage.serve_forever, daemon=True).start()
    proxy = ProxyServer(peer.url).start()

    def redirect(h: Handler, method: str, path: str, body: bytes) -> bool:
        m = BLOB.match(path)
        if method != "GET" or not m:
            return False
        status, _, data = h.forward(body)
        assert status == 200
        _Recorder.blobs[m.group(1)] = data
        h.respond(307, {"Location": f"http://127.0.0.1:{storage.server_address[1]}/{m.group(1)}"}, b"")
        return True
    proxy.fault = redirect
    try:
        got = pull(f"{proxy.host}/fault/redirect:1", tmp_path / "out", credentials=static(
            proxy.host, Credential(peer.username or "", peer.password or "", "test")), settings=FAST)
    finally:
        proxy.stop()
        storage.shutdown()
    assert got.manifest_digest == dg and got.blobs == 3
    blob_gets = [e for e in proxy.log if e["method"] == "GET" and BLOB.match(e["path"])]
    assert blob_gets and all("Authorization" in e["headers"] for e in blob_gets)  # the registry got creds
    assert len(_Recorder.seen) == 3
    assert not any(k.lower() == "authorization" for h in _Recorder.seen for k in h)  # storage did not


def _flaky_publish(proxy: ProxyServer, tmp_path: Path, repo: str, fail: dict[int, str]) -> tuple[list[int], str]:
    """Publish a 5 MiB layer in 1 MiB PATCHes; PATCH number n (1-based) fails as ``fail[n]`` says."""
    layout, dg = make_package(tmp_path / "src", note=repo, extra=(5 << 20) + 777)
    patches: list[int] = []

    def flaky(h: Handler, method: str, path: str, body: bytes) -> bool:
        if method != "PATCH":
            return False
        patches.append(int(h.headers["Content-Range"].split("-")[0]))
        how = fail.get(len(patches))
        if how == "reset":  # the connection dies before the registry sees the chunk
            h.reset()
        elif how == "500":
            h.respond(500, {}, b"")
        elif how == "lost-answer":  # the registry takes the chunk, but its answer never arrives
            h.forward(body)
            h.reset()
        return how is not None
    proxy.fault = flaky
    res = publish(layout, Target(parse_registry(proxy.host), repo, "1"), settings=FAST)
    assert res.pushed == 4
    return patches, dg


def _pulls_back(peer: Peer, repo: str, dg: str, tmp_path: Path) -> None:
    got = pull(f"{peer.host}/{repo}:1", tmp_path / "out")
    assert got.manifest_digest == dg
    for d in got.layout.manifest(dg).layers:
        assert got.layout.read_blob(d.digest)  # re-hashed: the registry holds the right bytes


def test_upload_resumes_from_registry_offset_after_reset_and_500(proxy: ProxyServer, docker_registry: Peer,
                                                                 tmp_path: Path) -> None:
    patches, dg = _flaky_publish(proxy, tmp_path, "fault/resume", {2: "reset", 4: "500"})
    mib = 1 << 20
    # after each failure the client asked the registry (GET upload URL → Range) and went on from there
    assert patches == [0, mib, mib, 2 * mib, 2 * mib, 3 * mib, 4 * mib, 5 * mib]
    assert sum(e["method"] == "GET" and "/blobs/uploads/" in e["path"] for e in proxy.log) == 2
    _pulls_back(docker_registry, "fault/resume", dg, tmp_path)


def test_upload_restarts_when_registry_drops_the_session(proxy: ProxyServer, docker_registry: Peer,
                                                         tmp_path: Path) -> None:
    # distribution signs the offset into the upload URL (_state): after an answer is lost the old URL
    # is invalid (404 BLOB_UPLOAD_INVALID), so the only correct move is a fresh upload session
    patches, dg = _flaky_publish(proxy, tmp_path, "fault/restart", {2: "lost-answer"})
    mib = 1 << 20
    assert patches == [0, mib, 0, mib, 2 * mib, 3 * mib, 4 * mib, 5 * mib]
    _pulls_back(docker_registry, "fault/restart", dg, tmp_path)


def test_upload_gives_up_on_persistent_500(proxy: ProxyServer, tmp_path: Path) -> None:
    layout, _ = make_package(tmp_path / "src", note="down")
    proxy.fault = lambda h, m, p, b: (h.respond(503, {}, b""), True)[1] if m == "POST" else False
    with pytest.raises(TransportError, match="503"):
        publish(layout, Target(parse_registry(proxy.host), "fault/down", "1"), settings=FAST)


def test_tag_moving_between_resolve_and_pull(proxy: ProxyServer, docker_registry: Peer, tmp_path: Path) -> None:
    dg, _ = _published(docker_registry, tmp_path, "fault/moving")
    other, _ = make_package(tmp_path / "other", note="the-new-one")
    reg = parse_registry(docker_registry.host)

    def move_after_resolve(h: Handler, method: str, path: str, body: bytes) -> bool:
        if method == "GET" and path.endswith("/manifests/1") and not proxy.state.get("moved"):
            h.respond(*h.forward(body))
            publish(other, Target(reg, "fault/moving", "1"))  # the tag now names another package
            proxy.state["moved"] = True
            return True
        return False
    proxy.fault = move_after_resolve
    got = pull(f"{proxy.host}/fault/moving:1", tmp_path / "out", settings=FAST)
    assert proxy.state["moved"]
    assert got.manifest_digest == dg  # everything after the resolve was fetched by digest
    config = got.layout.manifest(dg).config
    assert got.layout.read_blob(config.digest)
    manifest_gets = [e["path"] for e in proxy.log if "/manifests/" in e["path"]]
    assert [p for p in manifest_gets if p.endswith("/manifests/1")] == ["/v2/fault/moving/manifests/1"]
