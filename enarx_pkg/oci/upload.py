"""Blob uploads (OCI distribution spec "pushing blobs"): mount, monolithic PUT, chunked PATCH with resume.

Small blobs go in one streamed ``PUT``; large ones in ``Settings.upload_chunk`` PATCHes, each with a
``Content-Range``. When a PATCH fails (5xx, connection reset) we ask the registry how far it got
(``GET`` on the upload URL → ``Range: 0-<last>``) and carry on from there instead of starting over.

A chunked upload's session URL is journalled in the user cache (``uploads/``, 0600) after every
chunk, so a ``publish`` interrupted by Ctrl-C or a dropped connection resumes the blob from where
the registry got to on the next run, if the registry still holds the session.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

import httpx

from enarx_pkg._internal import atomic
from enarx_pkg._internal.cachedir import user_cache_dir
from enarx_pkg.errors import NotFoundError, TransportError
from enarx_pkg.oci.transport import Transient, Transport
from enarx_pkg.package import Descriptor

OCTET = {"Content-Type": "application/octet-stream"}
_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")


def _scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _location(t: Transport, resp: httpx.Response) -> str:
    loc = resp.headers.get("location")
    if not loc:
        raise TransportError(f"registry {t.registry.host} gave no upload location", url=str(resp.request.url),
                             status=resp.status_code)
    return str(resp.request.url.join(loc))


def try_mount(t: Transport, repo: str, dg: str, source: str) -> bool:
    """Ask for a cross-repository mount; ``False`` (an upload session we drop) when it is refused."""
    url = t.url(f"/v2/{repo}/blobs/uploads/")
    mount_scope = f"{_scope(repo)} repository:{source}:pull"

    def go() -> bool:
        with t.open("POST", str(httpx.URL(url, params={"mount": dg, "from": source})), mount_scope,
                    headers={"Content-Length": "0"}, body=b"", ok=(201, 202)) as r:
            return r.status_code == 201
    return bool(t.retrying("mount", go))


def start(t: Transport, repo: str) -> str:
    url = t.url(f"/v2/{repo}/blobs/uploads/")
    with t.open("POST", url, _scope(repo), headers={"Content-Length": "0"}, body=b"", ok=(202,)) as r:
        return _location(t, r)


def push(t: Transport, repo: str, desc: Descriptor, open_src: Callable[[], BinaryIO],
         progress: Callable[[int], None] | None) -> None:
    """One upload attempt; raises :class:`Transient` if the caller should retry from scratch."""
    with open_src() as src:
        if desc.size <= t.settings.monolithic_limit:
            _put(t, repo, start(t, repo), desc, src, progress)
            return
        journal = _Journal(t, repo, desc.digest)
        loc, offset = journal.resume(t, repo) or (start(t, repo), 0)
        journal.save(loc)
        loc = _chunks(t, repo, loc, desc, src, progress, offset, journal)
        _finish(t, repo, loc, desc)
        journal.done()


class _Journal:
    """Where an unfinished chunked upload of one blob to one repository stands (a local hint only)."""

    def __init__(self, t: Transport, repo: str, dg: str) -> None:
        key = hashlib.sha256(f"{t.registry.host}\0{repo}\0{dg}".encode()).hexdigest()
        self.path = user_cache_dir("uploads") / f"{key}.json"
        self.origin = str(httpx.URL(t.url("/v2/")).copy_with(path="/"))

    def resume(self, t: Transport, repo: str) -> tuple[str, int] | None:
        """(upload URL, offset) of a session the registry still holds, else None (and forget it)."""
        try:
            loc = json.loads(self.path.read_bytes())["location"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(loc, str) or not loc.startswith(self.origin):
            self.done()
            return None
        try:
            return status(t, repo, loc)
        except Transient:
            self.done()
            return None

    def save(self, loc: str) -> None:
        atomic.write_bytes(self.path, json.dumps({"location": loc}).encode(), mode=0o600)

    def done(self) -> None:
        self.path.unlink(missing_ok=True)


def _reader(src: BinaryIO, offset: int, length: int, piece: int,
            progress: Callable[[int], None] | None) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        src.seek(offset)
        left = length
        while left > 0:
            data = src.read(min(piece, left))
            if not data:
                raise TransportError(f"source blob ended early at byte {offset + length - left}")
            left -= len(data)
            yield data
            if progress:
                progress(offset + length - left)
    return gen


def _with_digest(loc: str, dg: str) -> str:
    return str(httpx.URL(loc).copy_merge_params({"digest": dg}))


def _put(t: Transport, repo: str, loc: str, desc: Descriptor, src: BinaryIO,
         progress: Callable[[int], None] | None) -> None:
    headers = {**OCTET, "Content-Length": str(desc.size)}
    body = _reader(src, 0, desc.size, t.settings.read_chunk, progress)
    with t.open("PUT", _with_digest(loc, desc.digest), _scope(repo), headers=headers, body=body, ok=(201,)):
        pass


def _finish(t: Transport, repo: str, loc: str, desc: Descriptor) -> None:
    def go() -> None:
        with t.open("PUT", _with_digest(loc, desc.digest), _scope(repo),
                    headers={**OCTET, "Content-Length": "0"}, body=b"", ok=(201,)):
            pass
    t.retrying("finish upload", go)


def _chunks(t: Transport, repo: str, loc: str, desc: Descriptor, src: BinaryIO,
            progress: Callable[[int], None] | None, offset: int, journal: _Journal) -> str:
    failures = 0
    if progress and offset:
        progress(offset)
    while offset < desc.size:
        n = min(t.settings.upload_chunk, desc.size - offset)
        try:
            loc = _patch(t, repo, loc, src, offset, n, progress)
            offset += n
            failures = 0
            journal.save(loc)
        except Transient as exc:
            failures += 1
            if failures > t.settings.retries:
                raise exc.give_up() from None
            time.sleep(t.settings.backoff * (2 ** (failures - 1)))
            loc, offset = status(t, repo, loc)
            if progress:
                progress(offset)
    return loc


def _patch(t: Transport, repo: str, loc: str, src: BinaryIO, offset: int, n: int,
           progress: Callable[[int], None] | None) -> str:
    headers = {**OCTET, "Content-Length": str(n), "Content-Range": f"{offset}-{offset + n - 1}"}
    body = _reader(src, offset, n, t.settings.read_chunk, progress)
    with t.open("PATCH", loc, _scope(repo), headers=headers, body=body, ok=(202,)) as r:
        return _location(t, r)


def status(t: Transport, repo: str, loc: str) -> tuple[str, int]:
    """How much of an upload the registry holds: (next upload URL, offset to resume from)."""
    def go() -> tuple[str, int]:
        with t.open("GET", loc, _scope(repo), ok=(204,)) as r:
            m = _RANGE.match(r.headers.get("range", "").strip())
            nxt = _location(t, r) if r.headers.get("location") else loc
        # "0-0" is ambiguous (nothing, or one byte); chunk sizes make "nothing" the only real case
        end = int(m.group(1)) if m else -1
        return nxt, (end + 1 if end > 0 else 0)
    try:
        return t.retrying("upload status", go)  # type: ignore[no-any-return]
    except (TransportError, NotFoundError) as exc:
        # the upload session is gone: start over with a fresh one
        raise Transient(f"upload session lost ({exc.message})", loc) from None
