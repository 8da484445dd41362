"""A hostile host agent on 127.0.0.1: chosen routes answered by a script, the rest relayed to a real agent.

Each script gets the request handler and the request body and writes whatever it likes (stalls,
trickles, malformed JSON, terminal escapes). Relayed requests carry the deployer's own headers, so
the real agent still checks tokens and capabilities.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Script = Callable[[BaseHTTPRequestHandler, bytes], None]


@contextmanager
def agent(upstream: str | None, scripts: dict[tuple[str, str], Script]) -> Iterator[str]:
    """Serve ``scripts`` keyed by (method, path suffix); relay everything else to ``upstream``."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0)) \
                if self.headers.get("transfer-encoding") != "chunked" else _chunked(self)
            for (method, suffix), script in scripts.items():
                if self.command == method and self.path.endswith(suffix):
                    with contextlib.suppress(OSError):  # the deployer hung up, as it should
                        script(self, body)
                    self.close_connection = True
                    return
            if upstream is None:
                return reply(self, 404, {"error": "no such route"})
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
            r = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=60)
            self.send_response(r.status_code)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        do_GET = do_POST = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _chunked(h: BaseHTTPRequestHandler) -> bytes:
    body = bytearray()
    while size := int(h.rfile.readline().split(b";")[0], 16):
        body += h.rfile.read(size)
        h.rfile.readline()
    h.rfile.readline()
    return bytes(body)


def reply(h: BaseHTTPRequestHandler, status: int, obj: object = None, raw: bytes | None = None) -> None:
    data = raw if raw is not None else json.dumps(obj).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def trickle(h: BaseHTTPRequestHandler, every_s: float, count: int = 600) -> None:
    """Headers, then one byte of a never-finished JSON answer every ``every_s`` seconds."""
    h.send_response(201)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    for _ in range(count):
        h.wfile.write(b" ")
        h.wfile.flush()
        time.sleep(every_s)


def trickle_headers(h: BaseHTTPRequestHandler, every_s: float, count: int = 600) -> None:
    """A status line, then one byte of an endless header every ``every_s`` seconds (no read ever times out)."""
    h.wfile.write(b"HTTP/1.1 201 Created\r\nX-Slow: ")
    for _ in range(count):
        h.wfile.write(b"a")
        h.wfile.flush()
        time.sleep(every_s)


def stall(h: BaseHTTPRequestHandler, seconds: float = 120) -> None:
    """Accept the request, answer 200 with a streaming body, then say nothing."""
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    h.wfile.flush()
    time.sleep(seconds)
