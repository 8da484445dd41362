"""Atomic file writes: a temp file in the same directory, fsync, then ``os.replace``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    with open_atomic(path, mode) as f:
        f.write(data)


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    write_bytes(path, text.encode("utf-8"), mode)


@contextlib.contextmanager
def open_atomic(path: Path, mode: int = 0o644, *, sync: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error.

    The temp file is created with ``mode`` from the start (0600 for secrets), so a key is never
    readable by others, not even for a moment. ``sync=False`` skips the fsync, for a file that is
    thrown away with its process (the keep's pulled package): still atomic, not durable.
    """
    import tempfile  # not at the top: `enarx-pkg run` reads layouts and never writes one (bench/run.py)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
