"""Pull a package (and its signature referrers) from a registry into an OCI image layout.

The tag is resolved once: the manifest bytes fetched for it are hashed here and everything after
is fetched by digest, so a tag that moves mid-pull cannot mix two packages. Every blob is streamed
to disk while its size and digest are checked against the manifest's descriptor. The layout is
assembled in a temp directory next to ``dest`` and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from enarx_pkg._internal import atomic
from enarx_pkg.errors import InputError, UsageError
from enarx_pkg.oci import reference as _ref
from enarx_pkg.oci.auth import CredentialSource
from enarx_pkg.oci.client import Client, FetchedManifest, ProgressFactory, blob_label
from enarx_pkg.oci.referrers import find_referrers
from enarx_pkg.oci.transport import Settings
from enarx_pkg.package import MEDIA_INDEX, MEDIA_MANIFEST, Descriptor, ImageManifest, Layout


@dataclass(frozen=True)
class Limits:
    """Bounds on what a registry can make us download (the keep tightens these: keep/workload.py).

    ``max_referrers = 0`` skips the referrers lookup altogether (the keep needs no signatures)."""

    max_manifest_bytes: int = 4 << 20
    max_blob_bytes: int = 8 << 30
    max_layers: int = 64
    max_referrers: int = 64


@dataclass(frozen=True)
class PullResult:
    reference: _ref.Reference  # pinned: registry/repo[:tag]@sha256:...
    manifest_digest: str
    layout: Layout
    blobs: int = 0
    bytes: int = 0
    referrers: tuple[str, ...] = field(default_factory=tuple)


def pull(ref: _ref.Reference | str, dest: Path, *, credentials: CredentialSource | None = None,
         limits: Limits | None = None, settings: Settings | None = None,
         progress: ProgressFactory | None = None, plain_http: bool | None = None,
         durable: bool = True) -> PullResult:
    """Pull ``ref`` into a new OCI layout at ``dest``; returns the pinned reference and the layout.

    ``durable=False``: blobs are not fsynced, for a layout that is removed when the process ends
    (the keep's: an fsync there only waits for the host's disk)."""
    ref = _ref.parse(ref, plain_http=plain_http) if isinstance(ref, str) else ref
    limits = limits or Limits()
    if credentials is None:
        from enarx_pkg import credentials as _creds

        credentials = _creds.lookup
    settings = settings or Settings(max_manifest_bytes=limits.max_manifest_bytes)
    dest = Path(dest)
    with Client(ref.registry, credentials, settings) as client, _staging(dest) as tmp:
        layout = Layout.create(tmp)
        fetched = client.fetch_manifest(ref.repository, ref.reference)
        stats = _Puller(client, ref.repository, layout, limits, progress, durable)
        stats.package(fetched, ref.tag)
        refs = stats.referrers(fetched.digest) if limits.max_referrers else []
    return PullResult(ref.pinned(fetched.digest), fetched.digest, Layout(dest), stats.count, stats.total,
                      tuple(refs))


@contextlib.contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A temp dir beside ``dest``, renamed over it on success and removed on failure."""
    if dest.exists() and not _replaceable(dest):
        raise UsageError(f"{dest} exists and is not an OCI layout or an empty directory; refusing to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
    try:
        yield tmp
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "x")
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replaceable(dest: Path) -> bool:
    return dest.is_dir() and ((dest / "oci-layout").is_file() or not any(dest.iterdir()))


class _Puller:
    def __init__(self, client: Client, repo: str, layout: Layout, limits: Limits,
                 progress: ProgressFactory | None, durable: bool = True) -> None:
        self.client, self.repo, self.layout, self.limits = client, repo, layout, limits
        self.progress, self.durable = progress, durable
        self.count = 0
        self.total = 0

    def package(self, fetched: FetchedManifest, tag: str | None) -> ImageManifest:
        manifest = self._parse(fetched)
        for desc in (manifest.config, *manifest.layers):
            self.blob(desc)
        self.layout.add_manifest(fetched.data, tag)
        return manifest

    def _parse(self, fetched: FetchedManifest) -> ImageManifest:
        if fetched.media_type == MEDIA_INDEX:
            raise InputError(f"{fetched.digest} is an image index; enarx-pkg packages are single manifests")
        if fetched.media_type != MEDIA_MANIFEST:
            raise InputError(f"{fetched.digest} has media type {fetched.media_type!r}, not an OCI image manifest")
        manifest = ImageManifest.from_bytes(fetched.data, f"manifest {fetched.digest}")
        if len(manifest.layers) > self.limits.max_layers:
            raise InputError(f"manifest {fetched.digest} has {len(manifest.layers)} layers, over the "
                             f"limit of {self.limits.max_layers}")
        return manifest

    def blob(self, desc: Descriptor) -> None:
        if self.layout.has_blob(desc.digest):
            return
        if desc.size > self.limits.max_blob_bytes:
            raise InputError(f"blob {desc.digest} is {desc.size} bytes, over the {self.limits.max_blob_bytes}"
                             "-byte limit")
        report = self.progress(blob_label(desc), desc.size) if self.progress else None
        # visible under its digest only once fetched, verified and synced (mode as the temp file had)
        with atomic.open_atomic(self.layout.blob_path(desc.digest), mode=0o600, sync=self.durable) as f:
            self.client.fetch_blob_to(self.repo, desc, _WriteBehind(f) if self.durable else f, progress=report)
        self.count += 1
        self.total += desc.size

    def referrers(self, subject: str) -> list[str]:
        """Fetch the manifests that refer to ``subject`` (signatures), by API or the tag schema."""
        found = find_referrers(self.client, self.repo, subject)
        out = []
        for desc in found[: self.limits.max_referrers]:
            if desc.media_type != MEDIA_MANIFEST or desc.digest in out:
                continue
            fetched = self.client.fetch_manifest(self.repo, desc.digest)
            manifest = self._parse(fetched)
            if manifest.subject is None or manifest.subject.digest != subject:
                continue  # a stale or forged entry in the tag index: not a referrer of this package
            for blob in (manifest.config, *manifest.layers):
                self.blob(blob)
            self.layout.add_manifest(fetched.data)
            out.append(fetched.digest)
        return out



class _WriteBehind:
    """A blob file that asks the kernel to start writing back each few MiB as they arrive.

    The one ``fsync`` at the end then waits for the last few MiB instead of the whole blob (it took
    a quarter of a 256 MiB pull here). ``POSIX_FADV_DONTNEED`` on Linux starts writeback of dirty
    pages without waiting and drops the pages already clean, so the page cache does not fill either.
    It is advice only: durability still rests on the fsync.
    """

    STEP = 8 << 20

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.written = self.started = f.tell()

    def write(self, data: bytes) -> int:
        n = self.f.write(data)
        self.written += n
        if self.written - self.started >= self.STEP and hasattr(os, "posix_fadvise"):
            self.f.flush()
            os.posix_fadvise(self.f.fileno(), self.started, self.written - self.started, os.POSIX_FADV_DONTNEED)
            self.started = self.written
        return n

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, offset: int) -> int:  # a restarted download rewinds
        self.written = self.started = self.f.seek(offset)
        return self.written

    def truncate(self) -> int:
        return self.f.truncate()
