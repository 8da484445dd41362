"""Blob endpoints: HEAD/GET with Range, DELETE, and uploads (monolithic, chunked, resumable, mount).

Bytes are hashed as they arrive and written in large chunks to ``uploads/<id>``; the file becomes a
blob only by rename after its digest matched, and the metadata follows in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from registry.blobresponse import BlobResponse
from registry.blobs import UPLOAD_ID_RE
from registry.errors import OciError
from registry.names import digest_problem, valid_name

if TYPE_CHECKING:
    from registry.auth import Principal
    from registry.state import Registry

WRITE_CHUNK = 1 << 20
_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)$")
SWEEP_INTERVAL_S = 60.0  # how often a new upload also drops hashing state of uploads gc removed
_last_sweep = 0.0


@dataclass
class _Held:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # requests holding or awaiting the lock


_locks: dict[str, _Held] = {}  # only uploads a request is working on right now


@contextlib.asynccontextmanager
async def _exclusive(upload_id: str) -> AsyncIterator[None]:
    """Serialise requests on one upload; call only for an id already known to be open, so made-up
    ids never get an entry, and the entry goes when its last request does."""
    held = _locks.get(upload_id) or _locks.setdefault(upload_id, _Held())
    held.users += 1
    try:
        async with held.lock:
            yield
    finally:
        held.users -= 1
        if held.users == 0:
            del _locks[upload_id]


def _digest(value: str | None, what: str = "digest") -> str:
    if not value:
        raise OciError("DIGEST_INVALID", f"{what} parameter is required")
    problem = digest_problem(value)
    if problem:
        raise OciError("DIGEST_INVALID", problem)
    return value


async def get_blob(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, digest = parts["name"], _digest(parts["blob"])
    path = reg.store.blob_path(digest)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        stat = None
    if stat is None or not reg.meta.blob_in_repo(name, digest):
        raise OciError("BLOB_UNKNOWN", f"blob {digest} is not in {name}")
    return BlobResponse(str(path), stat.st_size, request.headers.get("range"), {"Docker-Content-Digest": digest,
                                                                                "ETag": f'"{digest}"'})


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
    if "mount" in q:
        mounted = await _mount(reg, principal, name, _digest(q.get("mount"), "mount"), q.get("from", ""))
        if mounted:
            return _done(name, q["mount"])
    _sweep(reg)
    upload_id = reg.store.new_upload()
    await run_in_threadpool(reg.meta.add_upload, upload_id, name)
    if "digest" in q:
        digest = _digest(q.get("digest"))
        return await _complete(reg, request, principal, name, upload_id, digest, 0)
    return Response(None, 202, headers=_upload_headers(name, upload_id, 0))


def _sweep(reg: Registry) -> None:
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep >= SWEEP_INTERVAL_S:
        _last_sweep = now
        reg.store.forget_gone_uploads()


async def _mount(reg: Registry, principal: Principal, name: str, digest: str, source: str) -> bool:
    # mount only what the caller could pull anyway; otherwise fall back to a normal upload (202)
    if not valid_name(source) or not reg.auth.allowed(principal, "pull", source):
        return False
    if not reg.meta.blob_in_repo(source, digest) or not reg.store.has(digest):
        return False
    size = reg.store.size(digest) or 0
    await run_in_threadpool(reg.meta.add_blob, name, digest, size, principal.name, f"mount from {source}")
    return True


async def _session(reg: Registry, name: str, upload_id: str) -> int:
    if not UPLOAD_ID_RE.match(upload_id) or reg.meta.upload_repo(upload_id) != name:
        raise OciError("BLOB_UPLOAD_UNKNOWN", f"upload {upload_id[:40]!r} is not open in {name}")
    size = reg.store.upload_size(upload_id)
    if size is None:
        reg.store.hashers.pop(upload_id, None)
        raise OciError("BLOB_UPLOAD_UNKNOWN", f"upload {upload_id} has no data file")
    return size


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


async def _append(reg: Registry, request: Request, upload_id: str, offset: int) -> int:
    """Stream the request body onto the upload file, hashing as it goes; returns the new size.

    A blob may not pass ``max_blob_bytes``: the upload is then discarded (it could never complete)
    and the request refused with 413 SIZE_INVALID, checked against Content-Length first and then
    against the bytes as they arrive.
    """
    limit = reg.settings.max_blob_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and offset + int(declared) > limit:
        await _too_large(reg, upload_id, limit)
    hasher = reg.store.hasher_for(upload_id, offset) if offset == 0 or upload_id in reg.store.hashers else \
        await run_in_threadpool(reg.store.hasher_for, upload_id, offset)
    size, over = offset, False
    buf = bytearray()
    with open(reg.store.upload_path(upload_id), "r+b", buffering=0) as f:
        f.truncate(offset)
        f.seek(offset)
        try:
            async for chunk in request.stream():
                if size + len(buf) + len(chunk) > limit:
                    over = True
                    break
                hasher.update(chunk)
                buf += chunk
                if len(buf) >= WRITE_CHUNK:
                    f.write(buf)
                    size += len(buf)
                    buf.clear()
        finally:
            # whatever arrived is kept (hashed and written together), so a broken transfer can resume
            f.write(buf)
            size += len(buf)
            reg.store.hashers[upload_id] = (size, hasher)
    if over:
        await _too_large(reg, upload_id, limit)
    return size


async def _too_large(reg: Registry, upload_id: str, limit: int) -> None:
    await _forget(reg, upload_id)
    raise OciError("SIZE_INVALID", f"blob is over this registry's {limit}-byte limit; the upload is discarded",
                   status=413)


async def patch(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    await _session(reg, name, upload_id)  # before any lock: a made-up id costs nothing here
    async with _exclusive(upload_id):
        offset = await _session(reg, name, upload_id)
        expected = _check_range(request, name, upload_id, offset)
        size = await _append(reg, request, upload_id, offset)
        if expected is not None and size - offset != expected:
            reg.store.hashers.pop(upload_id, None)
            os.truncate(reg.store.upload_path(upload_id), offset)
            raise OciError("SIZE_INVALID", f"Content-Range announced {expected} bytes, body had {size - offset}",
                           status=416, headers=_upload_headers(name, upload_id, offset))
    return Response(None, 202, headers=_upload_headers(name, upload_id, size))


async def finish(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    digest = _digest(request.query_params.get("digest"))
    await _session(reg, name, upload_id)
    async with _exclusive(upload_id):
        offset = await _session(reg, name, upload_id)
        _check_range(request, name, upload_id, offset)
        return await _complete(reg, request, principal, name, upload_id, digest, offset)


async def _complete(reg: Registry, request: Request, principal: Principal, name: str, upload_id: str,
                    digest: str, offset: int) -> Response:
    size = await _append(reg, request, upload_id, offset)
    hasher = reg.store.hasher_for(upload_id, size)
    actual = "sha256:" + hasher.hexdigest()
    if actual != digest:
        await _forget(reg, upload_id)
        raise OciError("DIGEST_INVALID", f"uploaded content hashes to {actual}, not {digest}")
    await run_in_threadpool(reg.store.commit_upload, upload_id, digest)
    remote = request.client.host if request.client else None
    await run_in_threadpool(reg.meta.add_blob, name, digest, size, principal.name, remote)
    await run_in_threadpool(reg.meta.remove_upload, upload_id)
    return _done(name, digest)


async def _forget(reg: Registry, upload_id: str) -> None:
    reg.store.discard_upload(upload_id)
    await run_in_threadpool(reg.meta.remove_upload, upload_id)


async def status(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    offset = await _session(reg, name, upload_id)
    return Response(None, 204, headers=_upload_headers(name, upload_id, offset))


async def cancel(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, upload_id = parts["name"], parts["upload"]
    await _session(reg, name, upload_id)
    async with _exclusive(upload_id):  # after a chunk in flight, so its hashing state goes too
        await _session(reg, name, upload_id)
        await _forget(reg, upload_id)
    return Response(None, 204)
