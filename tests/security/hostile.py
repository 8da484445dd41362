"""A hostile HTTP peer on 127.0.0.1: answers chosen paths with a status, headers and a body that never ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = b"x" * 65536


@contextmanager
def endless(routes: dict[str, tuple[int, dict[str, str]]]) -> Iterator[tuple[str, list[int]]]:
    """Serve ``routes`` (path -> status, headers; ``{port}`` filled in); every body is endless, chunked.

    Yields (host:port, a list that records how many MiB each answer managed to send).
    """
    sent: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            status, headers = routes.get(self.path.split("?")[0], (404, {}))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v.format(port=self.server.server_address[1]))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            n = 0
            try:
                while n < 4096:  # 256 MiB at most, so a broken client fails the test rather than the machine
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                    n += 1
            except OSError:
                pass
            sent.append(n // 16)
            self.close_connection = True

        do_GET = do_HEAD = do_PUT = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", sent
    finally:
        server.shutdown()
        server.server_close()


def sent_before_answer(url: str, path: str, headers: dict[str, str], filler: bytes = b" ",
                       limit: int = 64 << 20) -> tuple[int, bytes]:
    """POST an endless chunked body of ``filler`` to ``url + path``; return (bytes sent before the
    server answered, the start of its answer). A server that buffers the whole body never answers
    before ``limit``, and then this times out."""
    import select
    import socket

    host, port = url.removeprefix("http://").split(":")
    sent = 0
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{lines}Transfer-Encoding: chunked\r\n\r\n".encode())
        data = (filler * (65536 // len(filler) + 1))[:65536]
        chunk = b"%x\r\n%s\r\n" % (len(data), data)
        while sent < limit:
            if select.select([s], [], [], 0)[0]:
                break
            try:
                s.sendall(chunk)
            except OSError:
                break
            sent += len(data)
        s.settimeout(10)
        return sent, s.recv(4096)
