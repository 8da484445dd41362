"""Content-addressed blob files and in-progress uploads on the filesystem.

Layout under the data directory: ``blobs/sha256/<2 hex>/<64 hex>`` and ``uploads/<upload id>.<part>``
(one file per request that sent bytes; which parts make up an upload is in the database).
Every path is built from a digest or upload id that has already matched a strict regex, and is
checked once more to stay inside its root. A blob file appears only by ``os.replace`` after its
digest matched, so a reader never sees a partial blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from registry.blobresponse import BlobResponse
from registry.errors import OciError
from registry.names import DIGEST_RE
from registry.upload_state import Part

UPLOAD_ID_RE = re.compile(r"^[a-f0-9]{32}$")
PART_RE = re.compile(r"^[a-f0-9]{32}\.[a-f0-9]{16}$")


class _FilePart:
    """A part file opened for one request (exclusive create: nobody else ever writes to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by close()/abort()

    def write(self, data: bytes | bytearray) -> None:
        self.f.write(data)

    def close(self) -> None:
        self.f.close()

    def abort(self) -> None:
        self.f.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    """Blobs and upload files under one data directory (see :class:`registry.storage.Storage`)."""

    checkpoints = True
    remote = False

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve()
        self.blob_root = self.root / "blobs" / "sha256"
        self.upload_root = self.root / "uploads"
        self.blob_root.mkdir(parents=True, exist_ok=True)
        self.upload_root.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise ValueError("invalid digest")
        hexpart = digest[7:]
        return _confined(self.blob_root, self.blob_root / hexpart[:2] / hexpart)

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def size(self, digest: str) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, digest: str, limit: int) -> bytes | None:
        """Small blobs (manifests, bundles, Enarx.toml) for the server's own use; None if absent or too big."""
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            return None
        return data if len(data) <= limit else None

    def write_small(self, digest: str, data: bytes) -> None:
        """Store a manifest's bytes (already hashed by the caller) atomically."""
        path = self.blob_path(digest)
        if path.exists():
            return
        tmp = self.upload_root / f"m-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.commit_file(tmp, digest)

    def new_part(self, upload_id: str) -> str:
        """A fresh part name for one request's bytes: nobody else ever writes to it."""
        name = f"{upload_id}.{secrets.token_hex(8)}"
        self.part_path(name)  # validates
        return name

    def open_part(self, name: str) -> _FilePart:
        return _FilePart(self.part_path(name))

    def blob_response(self, digest: str, range_header: str | None, headers: dict[str, str]) -> BlobResponse | None:
        path = self.blob_path(digest)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return None
        return BlobResponse(str(path), size, range_header, headers)

    def part_path(self, name: str) -> Path:
        if not PART_RE.match(name):
            raise ValueError("invalid upload part name")
        return _confined(self.upload_root, self.upload_root / name)

    def assemble(self, parts: list[Part], size: int) -> tuple[Path, str]:
        """One file with the upload's committed bytes, and the sha256 digest of exactly those bytes.

        A single finished part is used as it is (its writer hashed what it wrote); otherwise the
        committed prefix of every part is copied, hashed as it goes, into a new file.
        """
        if [p.start for p in parts] != [sum(p.length for p in parts[:i]) for i in range(len(parts))] or \
                sum(p.length for p in parts) != size:
            raise OciError("BLOB_UPLOAD_INVALID", "upload parts do not cover the upload contiguously")
        if len(parts) == 1 and parts[0].sealed and parts[0].length == size:
            path = self.part_path(parts[0].name)
            if path.stat().st_size == size:
                _fsync(path)
                return path, "sha256:" + parts[0].digest
        tmp = self.upload_root / f"a-{uuid.uuid4().hex}"
        h = hashlib.sha256()
        with open(tmp, "xb") as out:
            for part in parts:
                _copy_prefix(self.part_path(part.name), part.length, out, h)
            out.flush()
            os.fsync(out.fileno())
        return tmp, "sha256:" + h.hexdigest()

    def discard_parts(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.part_path(name).unlink()

    def commit(self, assembled: Path, digest: str) -> None:
        self.commit_file(assembled, digest)

    def discard(self, assembled: Path) -> None:
        # a single finished part is used in place: it goes with the upload's other parts
        if not PART_RE.match(assembled.name):
            assembled.unlink(missing_ok=True)

    def commit_file(self, tmp: Path, digest: str) -> None:
        target = self.blob_path(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)  # same content whoever wins a race: the digest names it

    def delete_blob(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(digest).unlink()

    def all_blobs(self) -> list[tuple[str, float]]:
        out = []
        for sub in self.blob_root.iterdir():
            for f in sub.iterdir():
                if len(f.name) == 64:
                    out.append(("sha256:" + f.name, f.stat().st_mtime))
        return out

    def stale_upload_files(self, older_than: float) -> list[Path]:
        cutoff = time.time() - older_than
        return [f for f in self.upload_root.iterdir() if f.stat().st_mtime < cutoff]

    def sweep(self, older_than: float, in_progress: set[str], dry_run: bool = False) -> int:
        stale = [f for f in self.stale_upload_files(older_than) if f.name.split(".", 1)[0] not in in_progress]
        if not dry_run:
            for f in stale:
                f.unlink(missing_ok=True)
        return len(stale)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_prefix(src: Path, length: int, out: BinaryIO, h: hashlib._Hash) -> None:
    with open(src, "rb") as f:
        remaining = length
        while remaining:
            chunk = f.read(min(remaining, 4 << 20))
            if not chunk:
                raise OciError("BLOB_UPLOAD_INVALID", f"upload part {src.name} lost committed bytes")
            h.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)


def _confined(root: Path, path: Path) -> Path:
    # the regexes already exclude '/', '.', '%'; this re-check costs no system call
    normal = os.path.normpath(path)
    if os.path.commonpath([str(root), normal]) != str(root):
        raise ValueError("path escapes its root")
    return Path(normal)
