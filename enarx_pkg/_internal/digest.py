"""OCI digests: parsing, validation and streaming computation."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from enarx_pkg.errors import InputError, VerificationError

CHUNK = 1 << 20
_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")
_ANY = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse(digest: str) -> tuple[str, str]:
    """Split ``algo:hex``; only sha256 is accepted (sha512 is optional in the spec and unused here)."""
    if not isinstance(digest, str) or not _ANY.match(digest):
        raise InputError(f"malformed digest {digest!r}: expected 'sha256:<64 hex digits>'")
    if not _SHA256.match(digest):
        algo = digest.split(":", 1)[0]
        if algo != "sha256":
            raise InputError(f"unsupported digest algorithm {algo!r} in {digest!r}: only sha256 is supported")
        raise InputError(f"malformed digest {digest!r}: expected 'sha256:<64 hex digits>'")
    algo, hexpart = digest.split(":", 1)
    return algo, hexpart


def is_valid(digest: str) -> bool:
    return isinstance(digest, str) and bool(_SHA256.match(digest))


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def of_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for c in chunks:
        h.update(c)
        n += len(c)
    return "sha256:" + h.hexdigest(), n


def of_stream(stream: BinaryIO) -> tuple[str, int]:
    return of_chunks(iter(lambda: stream.read(CHUNK), b""))


def of_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as f:
        return of_stream(f)


def check(data: bytes, expected: str, what: str = "content") -> None:
    """Raise :class:`VerificationError` unless ``data`` hashes to ``expected``."""
    actual = of_bytes(data)
    if actual != expected:
        raise VerificationError(f"digest mismatch for {what}: expected {expected}, got {actual}")


class Hasher:
    """Counts and hashes bytes as they stream past; :meth:`verify` checks digest and size at the end."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

    def verify(self, expected: str, expected_size: int | None = None, what: str = "blob") -> None:
        if expected_size is not None and self.size != expected_size:
            raise VerificationError(f"size mismatch for {what}: expected {expected_size} bytes, got {self.size}")
        if self.digest != expected:
            raise VerificationError(f"digest mismatch for {what}: expected {expected}, got {self.digest}")
