"""Blob endpoints: HEAD/GET with Range, DELETE, and uploads (monolithic, chunked, resumable, mount).

Each request that carries bytes writes them, hashed as they arrive, to a part file of its own and
joins them to the upload by a compare-and-set in the database (:mod:`registry.upload_state`), so
workers and replicas need no shared memory and two requests racing for one range cannot mix their
bytes. Finishing closes the upload to writers, assembles and hashes exactly the committed bytes, and
renames them into place only if they match the digest; the metadata follows in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from registry.blobs import UPLOAD_ID_RE
from registry.errors import OciError
from registry.names import digest_problem, valid_name
from registry.upload_state import Part, sweep

if TYPE_CHECKING:
    from registry.auth import Principal
    from registry.state import Registry

WRITE_CHUNK = 1 << 20
CHECKPOINT_BYTES = 32 << 20  # a long PATCH commits what it has this often, so a crash loses at most this
T = TypeVar("T")
_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)$")


def _digest(value: str | None, what: str = "digest") -> str:
    if not value:
        raise OciError("DIGEST_INVALID", f"{what} parameter is required")
    problem = digest_problem(value)
    if problem:
        raise OciError("DIGEST_INVALID", problem)
    return value


async def get_blob(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, digest = parts["name"], _digest(parts["blob"])
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
    response = None
    if await _in_repo(reg, name, digest):
        response = await _store_call(reg, reg.store.blob_response, digest, request.headers.get("range"), headers)
    if response is None:
        raise OciError("BLOB_UNKNOWN", f"blob {digest} is not in {name}")
    return response


async def _in_repo(reg: Registry, name: str, digest: str) -> bool:
    return bool(reg.meta.blob_in_repo(name, digest))


async def _store_call(reg: Registry, fn: Callable[..., T], *args: Any) -> T:
    """A store operation: on a worker thread when the store is remote, inline for local files."""
    if reg.store.remote:
        return await run_in_threadpool(fn, *args)
    return fn(*args)


async def delete_blob(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, digest = parts["name"], _digest(parts["blob"])
    if not await run_in_threadpool(reg.meta.unlink_blob, name, digest, principal.name):
        raise OciError("BLOB_UNKNOWN", f"blob {digest} is not in {name}")
    return Response(None, 202)


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {"Location": f"/v2/{name}/blobs/uploads/{upload_id}", "Docker-Upload-UUID": upload_id,
            "Range": f"0-{max(size - 1, 0)}"}


def _done(name: str, digest: str) -> Response:
    return Response(None, 201, headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


async def start(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    """POST: cross-repository mount, monolithic upload (``?digest=``), or open a session."""
    name, q = parts["name"], request.query_params
    algorithm = q.get("digest-algorithm")
    if algorithm is not None and algorithm != "sha256":  # say so before the client sends any bytes
        raise OciError("DIGEST_INVALID", f"unsupported digest algorithm {algorithm[:20]!r}: this registry "
                       "accepts sha256 only")
    if "mount" in q:
        mounted = await _mount(reg, principal, name, _digest(q.get("mount"), "mount"), q.get("from", ""))
        if mounted:
            return _done(name, q["mount"])
    digest = _digest(q.get("digest")) if "digest" in q else None
    if reg.sweep_due():  # abandoned uploads go without an operator running gc
        await run_in_threadpool(sweep, reg.sessions, reg.store, reg.settings.upload_grace)
    upload_id = uuid.uuid4().hex
    await run_in_threadpool(reg.sessions.open, upload_id, name)
    if digest is not None:
        return await _complete(reg, request, principal, name, upload_id, digest, 0, None)
    return Response(None, 202, headers=_upload_headers(name, upload_id, 0))


async def _mount(reg: Registry, principal: Principal, name: str, digest: str, source: str) -> bool:
    # mount only what the caller could pull anyway; otherwise fall back to a normal upload (202)
    if not valid_name(source) or not reg.auth.allowed(principal, "pull", source):
        return False
    if not reg.meta.blob_in_repo(source, digest):
        return False
    size = await _store_call(reg, reg.store.size, digest)
    if size is None:
        return False
    await run_in_threadpool(reg.meta.add_blob, name, digest, size, principal.name, f"mount from {source}")
    return True


async def _session(reg: Registry, name: str, upload_id: str) -> int:
    """The committed size of an open upload of ``name`` (404 BLOB_UPLOAD_UNKNOWN otherwise)."""
    session = await run_in_threadpool(reg.sessions.get, upload_id) if UPLOAD_ID_RE.match(upload_id) else None
    if session is None or session.repo != name or session.closing:
        raise OciError("BLOB_UPLOAD_UNKNOWN", f"upload {upload_id[:40]!r} is not open in {name}")
    return session.size


def _check_range(request: Request, name: str, upload_id: str, offset: int) -> int | None:
    """Content-Range must continue exactly where the upload stands (416 otherwise); returns its length."""
    value = request.headers.get("content-range")
    if value is None:
        return None
    m = _RANGE_RE.match(value.strip())
    if m is None or int(m.group(2)) < int(m.group(1)):
        raise OciError("RANGE_INVALID", f"malformed Content-Range {value[:60]!r}", status=416,
                       headers=_upload_headers(name, upload_id, offset))
    start, end = int(m.group(1)), int(m.group(2))
    if start != offset:
        raise OciError("RANGE_INVALID", f"chunk starts at {start} but the upload has {offset} bytes", status=416,
                       headers=_upload_headers(name, upload_id, offset))
    return end - start + 1


class _PartWriter:
    """One request's bytes: written to its own part, hashed, committed to the upload by compare-and-set."""

    def __init__(self, reg: Registry, name: str, upload_id: str, start: int) -> None:
        self.reg, self.repo, self.upload_id, self.start = reg, name, upload_id, start
        self.name = reg.store.new_part(upload_id)
        self.sink = reg.store.open_part(self.name)
        self.hasher = hashlib.sha256()
        self.length = self.committed = 0
        self.buf = bytearray()
        self.open = True
        self.pending: asyncio.Future[Any] | None = None

    async def add(self, chunk: bytes) -> None:
        self.buf += chunk
        if len(self.buf) >= WRITE_CHUNK:
            await self.flush(wait=False)

    async def flush(self, wait: bool = True) -> None:
        """Hash and write the buffer on worker threads while the event loop goes on receiving the next one.

        Both release the GIL, so on two cores receiving, hashing and writing overlap; the previous
        buffer is finished before the next one starts, so bytes are hashed and written in order.
        """
        if self.pending is not None:
            await self.pending
            self.pending = None
        data, self.buf = self.buf, bytearray()
        if data:
            loop = asyncio.get_running_loop()
            self.pending = asyncio.gather(loop.run_in_executor(None, self.hasher.update, data),
                                          loop.run_in_executor(None, self.sink.write, data))
            self.length += len(data)
        if wait and self.pending is not None:
            await self.pending
            self.pending = None

    async def close(self) -> None:
        await self.flush()
        self.open = False
        await _store_call(self.reg, self.sink.close)

    async def commit(self, sealed: bool) -> None:
        if self.length == 0:
            return
        part = Part(self.start, self.name, self.length, self.hasher.copy().hexdigest(), sealed)
        if not await run_in_threadpool(self.reg.sessions.commit, self.upload_id, part, self.committed):
            await self.drop()
            raise OciError("RANGE_INVALID", "another request changed this upload; ask where it stands (GET) and "
                           "continue from there", status=416)
        self.committed = self.length

    async def drop(self) -> None:
        """Delete the part unless some of it already belongs to the upload."""
        if self.pending is not None:  # never close the part under a thread still writing to it
            await asyncio.gather(self.pending, return_exceptions=True)
            self.pending = None
        if self.open:
            self.open = False
            if self.committed == 0:
                await _store_call(self.reg, self.sink.abort)
                return
            await _store_call(self.reg, self.sink.close)
        if self.committed == 0:
            await _store_call(self.reg, self.reg.store.discard_parts, [self.name])

    async def retract(self) -> None:
        if self.committed:
            part = Part(self.start, self.name, self.committed, "", False)
            if not await run_in_threadpool(self.reg.sessions.retract, self.upload_id, part):
                return
            self.committed = 0
        await self.drop()


async def _append(reg: Registry, request: Request, name: str, upload_id: str, offset: int,
                  expected: int | None) -> int:
    """Stream the request body into a new part of the upload; returns the upload's new size.

    A blob may not pass ``max_blob_bytes``: the upload is then discarded (it could never complete)
    and the request refused with 413 SIZE_INVALID, checked against Content-Length first and then
    against the bytes as they arrive. What arrived before a client went away is kept, so the
    upload can resume from there.
    """
    limit = reg.settings.max_blob_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and offset + int(declared) > limit:
        await _too_large(reg, upload_id, limit)
    writer = _PartWriter(reg, name, upload_id, offset)
    try:
        over, gone = await _receive(writer, request, limit - offset, reg.store.checkpoints)
    except BaseException:
        await writer.drop()
        raise
    if over:
        await writer.drop()
        await _too_large(reg, upload_id, limit)
    await writer.close()
    if expected is not None and not gone and writer.length != expected:
        await writer.retract()
        raise OciError("SIZE_INVALID", f"Content-Range announced {expected} bytes, body had {writer.length}",
                       status=416, headers=_upload_headers(name, upload_id, offset))
    await writer.commit(sealed=True)
    await writer.drop()  # nothing was committed: an empty body
    if gone:
        raise ClientDisconnect
    return offset + writer.length


async def _receive(writer: _PartWriter, request: Request, room: int, checkpoints: bool) -> tuple[bool, bool]:
    """Stream the body into ``writer`` (committing every CHECKPOINT_BYTES where the store keeps parts as they
    grow); (over ``room`` bytes, client gone)."""
    try:
        async for chunk in request.stream():
            if writer.length + len(writer.buf) + len(chunk) > room:
                return True, False
            await writer.add(chunk)
            if checkpoints and writer.length - writer.committed >= CHECKPOINT_BYTES:
                await writer.flush()
                await writer.commit(sealed=False)
    except ClientDisconnect:
        return False, True
    finally:
        await writer.flush()  # also before the part closes under a thread still writing
    return False, False


async def _too_large(reg: Registry, upload_id: str, limit: int) -> None:
    await _forget(reg, upload_id)
    raise OciError("SIZE_INVALID", f"blob is over this registry's {limit}-byte limit; the upload is discarded",
                   status=413)


async def patch(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    offset = await _session(reg, name, upload_id)
    expected = _check_range(request, name, upload_id, offset)
    size = await _append(reg, request, name, upload_id, offset, expected)
    return Response(None, 202, headers=_upload_headers(name, upload_id, size))


async def finish(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    digest = _digest(request.query_params.get("digest"))
    offset = await _session(reg, name, upload_id)
    expected = _check_range(request, name, upload_id, offset)
    return await _complete(reg, request, principal, name, upload_id, digest, offset, expected)


async def _complete(reg: Registry, request: Request, principal: Principal, name: str, upload_id: str,
                    digest: str, offset: int, expected: int | None) -> Response:
    size = await _append(reg, request, name, upload_id, offset, expected)
    committed = await run_in_threadpool(reg.sessions.close, upload_id, size)
    if committed is None:
        raise OciError("RANGE_INVALID", "the upload changed while it was being finished", status=416)
    try:
        assembled, actual = await run_in_threadpool(reg.store.assemble, committed, size)
    except OciError:
        await _forget(reg, upload_id)
        raise
    if actual != digest:
        await run_in_threadpool(reg.store.discard, assembled)
        await _forget(reg, upload_id)
        raise OciError("DIGEST_INVALID", f"uploaded content hashes to {actual}, not {digest}")
    await run_in_threadpool(reg.store.commit, assembled, digest)
    remote = request.client.host if request.client else None
    await run_in_threadpool(reg.meta.add_blob, name, digest, size, principal.name, remote)
    await _forget(reg, upload_id)
    return _done(name, digest)


async def _forget(reg: Registry, upload_id: str) -> None:
    names = await run_in_threadpool(reg.sessions.remove, upload_id)
    await _store_call(reg, reg.store.discard_parts, names)


async def status(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    offset = await _session(reg, name, upload_id)
    return Response(None, 204, headers=_upload_headers(name, upload_id, offset))


async def cancel(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    await _session(reg, name, upload_id)
    await _forget(reg, upload_id)  # a writer still sending loses its compare-and-set and deletes its part
    return Response(None, 204)
