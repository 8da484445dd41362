"""Content-addressed blob files and in-progress uploads on the filesystem.

Layout under the data directory: ``blobs/sha256/<2 hex>/<64 hex>`` and ``uploads/<uuid>``.
Every path is built from a digest or upload id that has already matched a strict regex, and is
checked once more to stay inside its root. A blob file appears only by ``os.replace`` after its
digest matched, so a reader never sees a partial blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
import uuid
from pathlib import Path

from registry.names import DIGEST_RE

UPLOAD_ID_RE = re.compile(r"^[a-f0-9]{32}$")


class BlobStore:
    """Blobs and upload files under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve()
        self.blob_root = self.root / "blobs" / "sha256"
        self.upload_root = self.root / "uploads"
        self.blob_root.mkdir(parents=True, exist_ok=True)
        self.upload_root.mkdir(parents=True, exist_ok=True)
        # hashing state of uploads this process is receiving: id -> (offset hashed so far, hasher)
        self.hashers: dict[str, tuple[int, hashlib._Hash]] = {}

    def blob_path(self, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise ValueError("invalid digest")
        hexpart = digest[7:]
        return _confined(self.blob_root, self.blob_root / hexpart[:2] / hexpart)

    def upload_path(self, upload_id: str) -> Path:
        if not UPLOAD_ID_RE.match(upload_id):
            raise ValueError("invalid upload id")
        return _confined(self.upload_root, self.upload_root / upload_id)

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

    def new_upload(self) -> str:
        upload_id = uuid.uuid4().hex
        self.upload_path(upload_id).touch()
        return upload_id

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self.upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def hasher_for(self, upload_id: str, offset: int) -> hashlib._Hash:
        """The running hash of an upload; re-hashed from disk after a restart or on another replica."""
        state = self.hashers.get(upload_id)
        if state is not None and state[0] == offset:
            return state[1]
        h = hashlib.sha256()
        with open(self.upload_path(upload_id), "rb") as f:
            remaining = offset
            while remaining:
                chunk = f.read(min(remaining, 4 << 20))
                if not chunk:
                    break
                h.update(chunk)
                remaining -= len(chunk)
        return h

    def commit_upload(self, upload_id: str, digest: str) -> None:
        """fsync and rename the finished upload into place (the caller verified the digest)."""
        path = self.upload_path(upload_id)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.hashers.pop(upload_id, None)
        self.commit_file(path, digest)

    def commit_file(self, tmp: Path, digest: str) -> None:
        target = self.blob_path(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)  # same content whoever wins a race: the digest names it

    def forget_gone_uploads(self) -> None:
        """Drop the hashing state of uploads whose file is gone (removed by gc, or finished on a replica)."""
        for upload_id in [u for u in self.hashers if not self.upload_path(u).exists()]:
            self.hashers.pop(upload_id, None)

    def discard_upload(self, upload_id: str) -> None:
        self.hashers.pop(upload_id, None)
        with contextlib.suppress(FileNotFoundError):
            self.upload_path(upload_id).unlink()

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


def _confined(root: Path, path: Path) -> Path:
    # the regexes already exclude '/', '.', '%'; this re-check costs no system call
    normal = os.path.normpath(path)
    if os.path.commonpath([str(root), normal]) != str(root):
        raise ValueError("path escapes its root")
    return Path(normal)
