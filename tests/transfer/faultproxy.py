"""A real HTTP proxy on 127.0.0.1 in front of docker-registry that misbehaves on cue.

Each test sets ``proxy.fault`` to a function ``(handler, method, path, body) -> bool``; returning
True means the fault handled (or broke) the exchange, False means forward it normally.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.conftest import free_port

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}
Fault = Callable[["Handler", str, str, bytes], bool]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer

    def log_message(self, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self) -> None:
        body = self._body()
        self.server.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
        fault = self.server.fault
        if fault is not None and fault(self, self.command, self.path, body):
            return
        self.respond(*self.forward(body))

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    def forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        r = self.server.upstream.request(self.command, self.server.upstream_url + self.path, headers=headers,
                                         content=body)
        return r.status_code, {k: v for k, v in r.headers.items() if k.lower() not in HOP}, r.content

    def respond(self, status: int, headers: dict[str, str], body: bytes, length: int | None = None) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reset(self) -> None:
        """Drop the connection with a TCP RST, as a crashing load balancer would."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_url: str) -> None:
        super().__init__(("127.0.0.1", free_port()), Handler)
        self.upstream_url = upstream_url
        self.upstream = httpx.Client(timeout=30)
        self.fault: Fault | None = None
        self.log: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def start(self) -> ProxyServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.upstream.close()
