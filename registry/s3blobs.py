"""Blobs in an S3-compatible bucket: the :class:`registry.storage.Storage` for ``--storage s3://…``.

Keys (under the prefix): ``blobs/sha256/<2 hex>/<64 hex>`` for committed blobs, ``uploads/<upload id>.<part>``
for one request's bytes, ``uploads/a-<random>`` for an upload assembled from several parts.

Each request streams its body into a part object of its own: one PUT when it is small, an S3
multipart upload of 8 MiB parts otherwise (each part with its Content-MD5). Which part objects make
up an upload is in the database, so any replica can continue or finish an upload another replica
started. Finishing never writes a digest-named key before the digest is known from the bytes
themselves: a single part was hashed by the request that streamed it; several parts are read back,
hashed and stored as one object, then copied under the digest (server-side) only if it matches.
"""

from __future__ import annotations

import ctypes
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import iterate_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from registry.blobresponse import parse_range
from registry.errors import OciError
from registry.objectstore import MIN_PART, S3Location, S3Store

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from registry.settings import Settings
    from registry.upload_state import Part

PART_BYTES = 8 << 20  # multipart part size for a request's body (S3's minimum is 5 MiB)
IN_FLIGHT = 2  # parts of one request being sent at once
_PART_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="s3-part")
PRESIGN_TTL_S = 300
_PART_RE = re.compile(r"^[a-f0-9]{32}\.[a-f0-9]{16}$")


class _ObjectPart:
    """One request's bytes, streamed into one object (a PUT if small, multipart otherwise).

    Parts go up on a small shared pool, at most ``IN_FLIGHT`` of them at a time, while the request
    goes on receiving and hashing the next 8 MiB (memory per upload stays under ~40 MiB).
    """

    def __init__(self, store: S3Store, key: str) -> None:
        self.store, self.key = store, key
        self.buf = bytearray()
        self.multipart: str | None = None
        self.sent: list[Future[str]] = []

    def write(self, data: bytes | bytearray) -> None:
        self.buf += data
        while len(self.buf) >= PART_BYTES + MIN_PART:  # keep >= 5 MiB back, so the last part is never tiny
            self._send(bytes(self.buf[:PART_BYTES]))
            del self.buf[:PART_BYTES]

    def _send(self, piece: bytes) -> None:
        if self.multipart is None:
            self.multipart = self.store.start_multipart(self.key)
        unfinished = [f for f in self.sent if not f.done()]
        if len(unfinished) >= IN_FLIGHT:
            unfinished[0].result()  # bounded: wait for the oldest (raises its error here)
        self.sent.append(_PART_POOL.submit(self.store.put_part, self.key, self.multipart, len(self.sent) + 1, piece))

    def close(self) -> None:
        if self.multipart is None:
            self.store.put_object(self.key, bytes(self.buf))
        else:
            if self.buf:
                self._send(bytes(self.buf))
            etags = [f.result() for f in self.sent]
            self.store.complete_multipart(self.key, self.multipart, etags)
        self.buf.clear()

    def abort(self) -> None:
        for f in self.sent:  # never abort under a part still being sent
            if not f.cancel():
                wait([f])
        if self.multipart is not None:
            self.store.abort_multipart(self.key, self.multipart)
        self.buf.clear()


def _return_big_buffers_to_the_os() -> None:
    """Tune glibc so freed part buffers go back to the OS.

    glibc raises its mmap threshold after each large free (up to 32 MiB) and keeps freed memory in
    one arena per thread, so 8 MiB part buffers passing through a dozen threads grew a worker by
    ~150 MB during a 512 MiB push (bench/registry.py --s3). A fixed 1 MiB threshold (buffers from
    1 MiB up are mmap'ed and unmapped when freed) and two arenas kept it at ~120 MB. No-op elsewhere.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        return


def _read_ahead(pieces: Iterator[bytes], depth: int = 2) -> Iterator[bytes]:
    """``pieces``, read by a thread of its own up to ``depth`` pieces ahead of the consumer.

    The store's next MiB arrives while the event loop sends the previous one to the client. A
    consumer that goes away (client disconnect) closes this generator; the reader then stops at its
    next piece and closes the store's response.
    """
    ahead: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for piece in pieces:
                if not offer(piece):
                    break
            else:
                offer(None)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    threading.Thread(target=pump, name="s3-read-ahead", daemon=True).start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class _RedirectGet(RedirectResponse):
    """307 to a presigned GET URL, except for HEAD, answered here: that URL is signed for GET only."""

    def __init__(self, url: str, size: int, headers: dict[str, str]) -> None:
        super().__init__(url, 307, headers=headers)
        self.size = size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "HEAD":
            await super().__call__(scope, receive, send)
            return
        kept = {k: v for k, v in self.headers.items() if k not in ("location", "content-length", "content-type")}
        await Response(None, 200, headers={**kept, "Accept-Ranges": "bytes", "Content-Length": str(self.size),
                                           "Content-Type": "application/octet-stream"})(scope, receive, send)


class _BlobStream(StreamingResponse):
    """The blob's bytes from the store; a HEAD gets the headers and never asks the store for the bytes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "HEAD":
            await super().__call__(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": b""})


class S3BlobStore:
    """Blobs and upload parts in one bucket (see :class:`registry.storage.Storage`)."""

    checkpoints = False  # a part object exists only once its request ended
    remote = True

    def __init__(self, store: S3Store, redirect: bool = False) -> None:
        self.store = store
        self.redirect = redirect
        _return_big_buffers_to_the_os()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        assert settings.storage is not None
        store = S3Store(S3Location.parse(settings.storage), settings.s3_endpoint, settings.s3_region)
        return cls(store, redirect=settings.s3_redirect)

    # -- committed blobs ---------------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        return self.store.size(digest) is not None

    def size(self, digest: str) -> int | None:
        return self.store.size(digest)

    def read(self, digest: str, limit: int) -> bytes | None:
        return self.store.read(digest, limit)

    def write_small(self, digest: str, data: bytes) -> None:
        self.store.write_small(digest, data)

    def blob_response(self, digest: str, range_header: str | None, headers: dict[str, str]) -> Response | None:
        size = self.store.size(digest)
        if size is None:
            return None
        if self.redirect:
            # like distribution's s3 driver: the client fetches (and resends Range to) a short-lived URL
            return _RedirectGet(self.store.presigned_get(digest, PRESIGN_TTL_S), size, headers)
        wanted = parse_range(range_header, size)
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if wanted is False:
            return Response(None, 416, headers={**headers, "Content-Range": f"bytes */{size}"})
        start, end = (0, size - 1) if wanted is None else wanted  # type: ignore[misc]
        status = 200 if wanted is None else 206
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        if size == 0:
            return Response(b"", 200, headers=headers)
        return _BlobStream(iterate_in_threadpool(_read_ahead(self.store.stream(digest, start, end))), status,
                           headers=headers)

    def upload_file(self, path: Path, digest: str) -> None:
        """Send a local file whose digest the caller checked, under that digest (for ``migrate-storage``)."""
        sink = _ObjectPart(self.store, self.store.blob_key(digest))
        try:
            with open(path, "rb") as f:
                while chunk := f.read(PART_BYTES):
                    sink.write(chunk)
            sink.close()
        except BaseException:
            sink.abort()
            raise

    def delete_blob(self, digest: str) -> None:
        self.store.delete(self.store.blob_key(digest))

    def all_blobs(self) -> list[tuple[str, float]]:
        return list(self.store.list_blobs())

    # -- uploads -----------------------------------------------------------------------------------

    def new_part(self, upload_id: str) -> str:
        self.store.upload_key(upload_id)  # validates
        return f"{upload_id}.{secrets.token_hex(8)}"

    def _part_key(self, name: str) -> str:
        if not _PART_RE.match(name):
            raise ValueError("invalid upload part name")
        return f"{self.store.location.prefix}uploads/{name}"

    def open_part(self, name: str) -> _ObjectPart:
        return _ObjectPart(self.store, self._part_key(name))

    def assemble(self, parts: list[Part], size: int) -> tuple[Any, str]:
        starts = [sum(p.length for p in parts[:i]) for i in range(len(parts))]
        if [p.start for p in parts] != starts or sum(p.length for p in parts) != size:
            raise OciError("BLOB_UPLOAD_INVALID", "upload parts do not cover the upload contiguously")
        if len(parts) == 1 and parts[0].sealed:
            key = self._part_key(parts[0].name)
            if self.store.object_size(key) != size:
                raise OciError("BLOB_UPLOAD_INVALID", "upload part lost committed bytes")
            return key, "sha256:" + parts[0].digest  # hashed by the request that streamed exactly these bytes
        key = f"{self.store.location.prefix}uploads/a-{secrets.token_hex(16)}"
        sink = _ObjectPart(self.store, key)
        try:
            digest = self.store.concatenate([(self._part_key(p.name), p.length) for p in parts], sink.write)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        return key, digest

    def commit(self, assembled: Any, digest: str) -> None:
        self.store.copy(str(assembled), self.store.blob_key(digest))
        self.discard(assembled)

    def discard(self, assembled: Any) -> None:
        key = str(assembled)
        if key.rsplit("/", 1)[-1].startswith("a-"):
            self.store.delete(key)

    def discard_parts(self, names: list[str]) -> None:
        keys = [self._part_key(n) for n in names if _PART_RE.match(n)]
        for key in keys:
            self.store.delete(key)

    def sweep(self, older_than: float, in_progress: set[str], dry_run: bool = False) -> int:
        """Part objects and open multipart uploads older than ``older_than``: a crashed replica's leftovers."""
        cutoff = time.time() - older_than
        prefix = f"{self.store.location.prefix}uploads/"

        def leftover(key: str) -> bool:
            return key.rsplit("/", 1)[-1].split(".", 1)[0] not in in_progress

        stale = [k for k, mtime in self.store.list_objects(prefix) if mtime < cutoff and leftover(k)]
        open_mp = [(k, u) for k, u, started in self.store.open_multiparts() if started < cutoff and leftover(k)]
        if not dry_run:
            for key in stale:
                self.store.delete(key)
            for key, upload in open_mp:
                self.store.abort_multipart(key, upload)
        return len(stale) + len(open_mp)

