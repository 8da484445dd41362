"""A loopback HTTP proxy that plays a malicious host or registry: it records and tampers with traffic.

Responses are read whole from upstream before being (possibly altered and) sent on, which is fine
for tests: keeps here finish in well under a second. With ``stream_responses`` they are relayed as
they arrive instead (no response hook), which a deploy that streams stdin needs: its upload starts
only once the provision response has begun. Chunked request bodies are read whole, then forwarded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from enarx_pkg._internal import seal

RequestHook = Callable[[str, str, bytes], tuple[str, bytes]]
ResponseHook = Callable[[str, str, int, bytes], bytes]


@dataclass
class Exchange:
    method: str
    path: str
    request: bytes
    status: int
    response: bytes


@dataclass
class Proxy:
    upstream: str
    on_request: RequestHook | None = None
    on_response: ResponseHook | None = None
    log: list[Exchange] = field(default_factory=list)
    url: str = ""
    stream_responses: bool = False

    def paths(self) -> list[str]:
        return [f"{e.method} {e.path}" for e in self.log]

    def recorded(self) -> bytes:
        """Every byte that crossed the proxy in either direction (bodies and paths)."""
        return b"".join(e.path.encode() + e.request + e.response for e in self.log)


def _handler(proxy: Proxy, client: httpx.Client) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() != "chunked":
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""
            body = bytearray()
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)

        def _forward(self) -> None:
            body = self._body()
            path = self.path
            if proxy.on_request:
                path, body = proxy.on_request(self.command, path, body)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "transfer-encoding")}
            if proxy.stream_responses:
                self._relay(path, body, headers)
                return
            r = client.request(self.command, proxy.upstream + path, content=body, headers=headers)
            out = r.content
            if proxy.on_response:
                out = proxy.on_response(self.command, path, r.status_code, out)
            proxy.log.append(Exchange(self.command, path, body, r.status_code, out))
            self.send_response(r.status_code)
            self._end_to_end_headers(r.headers)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        def _relay(self, path: str, body: bytes, headers: dict[str, str]) -> None:
            out = bytearray()
            with client.stream(self.command, proxy.upstream + path, content=body, headers=headers) as r:
                self.send_response(r.status_code)
                self._end_to_end_headers(r.headers)
                bodyless = self.command == "HEAD" or r.status_code in (204, 304)
                self.send_header(*(("Content-Length", "0") if bodyless else ("Transfer-Encoding", "chunked")))
                self.end_headers()
                for chunk in [] if bodyless else r.iter_raw():
                    out += chunk
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if not bodyless:
                    self.wfile.write(b"0\r\n\r\n")
            proxy.log.append(Exchange(self.command, path, body, r.status_code, bytes(out)))

        def _end_to_end_headers(self, headers: httpx.Headers) -> None:
            # framing and encoding headers describe upstream's wire form, which the proxy re-frames
            for k, v in headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(k, v)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    return Handler


@contextmanager
def running(proxy: Proxy) -> Iterator[Proxy]:
    with httpx.Client(timeout=60) as client:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy, client))
        proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield proxy
        finally:
            server.shutdown()
            server.server_close()


def split_records(body: bytes) -> list[tuple[int, bytes]]:
    reader = seal.RecordReader()
    records = reader.feed(body)
    assert reader.pending == 0
    return records


def join_records(records: list[tuple[int, bytes]]) -> bytes:
    return b"".join(seal.record(k, p) for k, p in records)


def tamper_records(records: list[tuple[int, bytes]], how: str) -> list[tuple[int, bytes]]:
    """What a host in the middle can do to a sealed frame stream without a key: drop, replay or reorder."""
    out = list(records)
    if how == "drop":
        del out[0]
    elif how == "replay":
        out.insert(1, out[0])
    elif how == "reorder":
        out[0], out[1] = out[1], out[0]
    else:
        raise ValueError(f"unknown tampering {how!r}")
    return out
