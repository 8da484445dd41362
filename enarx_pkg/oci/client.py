"""An OCI Distribution client: manifests, blobs (streamed, verified), uploads (chunked, resumable), referrers.

No CLI, no globals: the keep uses the same class to pull by digest. Memory stays flat in blob size:
blobs move in pieces of about 1 MiB through a bounded queue and are hashed as they pass.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import httpx

from enarx_pkg._internal import digest as _digest
from enarx_pkg.errors import TransportError, VerificationError
from enarx_pkg.oci.auth import CredentialSource, anonymous
from enarx_pkg.oci.reference import Registry, parse_registry
from enarx_pkg.oci.transport import Settings, Transient, Transport
from enarx_pkg.package import (
    ANNOTATION_TITLE,
    ENCRYPTED_SUFFIX,
    MEDIA_EMPTY,
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    MEDIA_SIGSTORE_BUNDLE,
    MEDIA_WASM,
    MEDIA_WASM_CONFIG,
    Descriptor,
    load_json,
)

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join([MEDIA_MANIFEST, MEDIA_INDEX, MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_LIST])
Progress = Callable[[int], None]
"""Called with the number of bytes of the current blob done so far (may go back on a resume)."""
ProgressFactory = Callable[[str, int], Progress]
"""Given a label and a total size, returns the callback a transfer reports its bytes done to."""
_UNTITLED = {MEDIA_WASM_CONFIG: "config", MEDIA_EMPTY: "empty config", MEDIA_SIGSTORE_BUNDLE: "signature",
             MEDIA_WASM: "module"}


def blob_label(desc: Descriptor) -> str:
    """What a progress bar calls a blob: its title (``app.wasm``), else what it is and its digest's
    first 12 digits (``config 3c1f0a9b2d4e``)."""
    title = desc.annotations.get(ANNOTATION_TITLE)
    if title:
        return title
    short = desc.digest.split(":", 1)[-1][:12]
    kind = _UNTITLED.get(desc.media_type.removesuffix(ENCRYPTED_SUFFIX))
    return f"{kind} {short}" if kind else short


class BlobOut(Protocol):
    """Where a blob is streamed to: a binary file, or anything that writes, tells, seeks and truncates."""

    def write(self, data: bytes, /) -> int: ...
    def seekable(self) -> bool: ...
    def tell(self) -> int: ...
    def seek(self, offset: int, /) -> int: ...
    def truncate(self) -> int: ...


@dataclass(frozen=True)
class FetchedManifest:
    digest: str
    media_type: str
    data: bytes

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


def scope(repo: str, push: bool = False) -> str:
    return f"repository:{repo}:{'pull,push' if push else 'pull'}"


def parse_index(data: bytes, where: str) -> list[Descriptor]:
    """The ``manifests`` of an OCI image index (referrers responses, referrers tag schema)."""
    obj = load_json(data, where)
    manifests = obj.get("manifests", [])
    if not isinstance(manifests, list):
        raise VerificationError(f"{where}: 'manifests' is not a list")
    return [Descriptor.from_json(m, f"{where}.manifests[{i}]") for i, m in enumerate(manifests)]


class Client:
    """Talks to one registry. Use as a context manager (it holds a connection pool)."""

    def __init__(self, registry: Registry | str, credentials: CredentialSource | None = None,
                 settings: Settings | None = None) -> None:
        self.registry = parse_registry(registry) if isinstance(registry, str) else registry
        self.settings = settings or Settings()
        self.t = Transport(self.registry, credentials or anonymous, self.settings)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.t.close()

    def _path(self, repo: str, kind: str, ref: str) -> str:
        return self.t.url(f"/v2/{repo}/{kind}/{ref}")

    # -- base ----------------------------------------------------------------------------------
    def ping(self, repo: str | None = None) -> None:
        """Check the API version endpoint with our credentials (what ``login`` verifies)."""
        def go() -> None:
            with self.t.open("GET", self.t.url("/v2/"), scope(repo) if repo else ""):
                pass
        self.t.retrying("ping", go)

    # -- manifests -----------------------------------------------------------------------------
    def fetch_manifest(self, repo: str, ref: str, *, limit: int | None = None) -> FetchedManifest:
        """GET a manifest by tag or digest, bounded in size, its digest computed here from the bytes."""
        limit = limit or self.settings.max_manifest_bytes
        return self.t.retrying("manifest", lambda: self._fetch_manifest(repo, ref, limit))  # type: ignore[no-any-return]

    def _fetch_manifest(self, repo: str, ref: str, limit: int) -> FetchedManifest:
        url = self._path(repo, "manifests", ref)
        with self.t.open("GET", url, scope(repo), headers={"Accept": ACCEPT}, follow=True) as r:
            data = _read_limited(r, limit, f"manifest {ref} from {self.registry.host}/{repo}")
            ctype = r.headers.get("content-type", "").split(";")[0].strip()
            claimed = r.headers.get("docker-content-digest")
        actual = _digest.of_bytes(data)
        if _digest.is_valid(ref) and actual != ref:
            raise VerificationError(f"manifest from {self.registry.host}/{repo} does not match the digest asked "
                                    f"for: expected {ref}, got {actual}")
        if claimed and _digest.is_valid(claimed) and claimed != actual:
            raise VerificationError(f"registry {self.registry.host} claims manifest digest {claimed} for "
                                    f"{repo}:{ref} but its bytes hash to {actual}")
        obj = load_json(data, f"manifest {repo}@{actual}", limit)
        mt = obj.get("mediaType") if isinstance(obj.get("mediaType"), str) else ctype
        return FetchedManifest(actual, str(mt or MEDIA_MANIFEST), data)

    def head_manifest(self, repo: str, ref: str) -> str | None:
        """The digest a tag points to now (from HEAD), or ``None`` if the registry does not say."""
        def go() -> str | None:
            url = self._path(repo, "manifests", ref)
            with self.t.open("HEAD", url, scope(repo), headers={"Accept": ACCEPT}, follow=True) as r:
                dg = r.headers.get("docker-content-digest")
            return dg if dg and _digest.is_valid(dg) else None
        return self.t.retrying("head manifest", go)  # type: ignore[no-any-return]

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> httpx.Headers:
        """PUT a manifest under a digest or tag; returns the response headers (``OCI-Subject``...)."""
        def go() -> httpx.Headers:
            url = self._path(repo, "manifests", ref)
            with self.t.open("PUT", url, scope(repo, push=True), headers={"Content-Type": media_type},
                             body=data, ok=(200, 201)) as r:
                return r.headers
        return self.t.retrying("put manifest", go)  # type: ignore[no-any-return]

    def referrers(self, repo: str, dg: str) -> list[Descriptor] | None:
        """Referrers via the OCI 1.1 API; ``None`` if the registry has no referrers API (404)."""
        def go() -> list[Descriptor] | None:
            url = self._path(repo, "referrers", dg)
            r = self.t.send("GET", url, scope(repo), headers={"Accept": MEDIA_INDEX}, follow=True)
            try:
                if r.status_code == 404:
                    return None
                if r.status_code != 200:
                    raise self.t.error(r, "GET")
                data = _read_limited(r, self.settings.max_manifest_bytes, f"referrers of {dg}")
            finally:
                r.close()
            return parse_index(data, f"referrers of {repo}@{dg} from {self.registry.host}")
        return self.t.retrying("referrers", go)  # type: ignore[no-any-return]

    # -- blobs ---------------------------------------------------------------------------------
    def has_blob(self, repo: str, dg: str) -> bool:
        def go() -> bool:
            r = self.t.send("HEAD", self._path(repo, "blobs", dg), scope(repo), follow=True)
            r.close()
            if r.status_code in (200, 404):
                return r.status_code == 200
            raise self.t.error(r, "HEAD")
        return self.t.retrying("head blob", go)  # type: ignore[no-any-return]

    def fetch_blob_to(self, repo: str, desc: Descriptor, fileobj: BlobOut, *,
                      progress: Progress | None = None) -> None:
        """Stream a blob into ``fileobj``, verifying size and digest against ``desc`` as it arrives.

        On a transient failure a seekable ``fileobj`` is rewound and the download restarted.
        Raises :class:`VerificationError` if the bytes are not the ones ``desc`` names.
        """
        start = fileobj.tell() if fileobj.seekable() else None

        def go() -> None:
            if start is not None:
                fileobj.seek(start)
                fileobj.truncate()
            try:
                self._fetch_blob(repo, desc, fileobj, progress)
            except Transient:
                if start is None:
                    raise TransportError(f"download of {desc.digest} from {self.registry.host} failed") from None
                raise
        self.t.retrying("blob", go)

    def _fetch_blob(self, repo: str, desc: Descriptor, out: BlobOut, progress: Progress | None) -> None:
        what = f"blob {desc.digest} from {self.registry.host}/{repo}"
        sink = _Sink(out, progress)
        received = 0
        try:
            with self.t.open("GET", self._path(repo, "blobs", desc.digest), scope(repo), follow=True, raw=True) as r:
                try:
                    for chunk in r.iter_raw():  # as the socket delivers it (up to 1 MiB): no re-chunking copies
                        received += len(chunk)
                        if received > desc.size:
                            raise VerificationError(f"{what} is larger than the {desc.size} bytes its descriptor says")
                        sink.put(chunk)
                except httpx.TransportError as exc:
                    raise Transient(f"download interrupted: {type(exc).__name__}", str(r.url)) from None
        finally:
            hasher = sink.close()
        hasher.verify(desc.digest, desc.size, what)

    def push_blob(self, repo: str, desc: Descriptor, open_src: Callable[[], BinaryIO], *,
                  mount_from: str | None = None, progress: Progress | None = None) -> str:
        """Make ``desc`` exist in ``repo``: ``"skipped"`` (already there), ``"mounted"`` or ``"pushed"``."""
        from enarx_pkg.oci import upload

        if self.has_blob(repo, desc.digest):
            return "skipped"
        if mount_from and mount_from != repo and upload.try_mount(self.t, repo, desc.digest, mount_from):
            return "mounted"
        for attempt in range(self.settings.retries + 1):
            try:
                upload.push(self.t, repo, desc, open_src, progress)
                return "pushed"
            except Transient as exc:
                if attempt == self.settings.retries:
                    raise exc.give_up() from None
                time.sleep(self.settings.backoff * (2**attempt))
                if self.has_blob(repo, desc.digest):  # the failed attempt may have committed it
                    return "pushed"
        raise AssertionError("unreachable")


def _read_limited(r: httpx.Response, limit: int, what: str) -> bytes:
    declared = r.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise VerificationError(f"{what} is {declared} bytes, over the {limit}-byte limit")
    buf = bytearray()
    try:
        for chunk in r.iter_raw(65536):
            buf += chunk
            if len(buf) > limit:
                raise VerificationError(f"{what} is over the {limit}-byte limit")
    except httpx.TransportError as exc:
        raise Transient(f"read interrupted: {type(exc).__name__}", str(r.url)) from None
    return bytes(buf)



class _Sink:
    """Hashes and writes chunks on a second thread, so the socket is read while the disk is written.

    Socket-sized pieces (≤ 64 KiB) are gathered into ``BATCH``-byte items before they cross to the
    other thread: one queue hand-off, one hash update and one write a MiB instead of sixteen. The
    queue holds at most ``DEPTH`` items, so memory stays flat (~10 MiB whatever the blob size).
    """

    BATCH = 1 << 20
    DEPTH = 8

    def __init__(self, out: BlobOut, progress: Progress | None) -> None:
        self.out, self.progress = out, progress
        self.hasher = _digest.Hasher()
        self.queue: queue.Queue[bytes | None] = queue.Queue(self.DEPTH)
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain so the producer never blocks on a dead consumer
            try:
                self.hasher.update(chunk)
                self.out.write(chunk)
                if self.progress:
                    self.progress(self.hasher.size)
            except BaseException as exc:
                self.error = exc

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.pending.append(chunk)
        self.pending_size += len(chunk)
        if self.pending_size >= self.BATCH:
            self._hand_over()

    def _hand_over(self) -> None:
        if self.pending:
            self.queue.put(self.pending[0] if len(self.pending) == 1 else b"".join(self.pending))
            self.pending, self.pending_size = [], 0

    def close(self) -> _digest.Hasher:
        self._hand_over()
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.hasher
