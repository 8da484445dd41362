"""Compiled-module cache entries are native code: one that others could have written is never loaded.

The trailer checksum is unkeyed (anyone can compute it), so the file system is the protection: the
entry and its directory must be ours and writable by nobody else.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enarx_pkg._internal import compiled

PAYLOAD = b"\x7fELF pretend native code"


def _entry(tmp_path: Path) -> Path:
    entry = tmp_path / "cache" / f"{'a' * 64}-module-fp.cwasm"
    compiled.write_entry(entry, entry.name.encode(), PAYLOAD)
    return entry


def test_private_entry_is_read(tmp_path: Path) -> None:
    entry = _entry(tmp_path)
    assert compiled.read_entry(entry, entry.name.encode()) == PAYLOAD


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_entry_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    entry = _entry(tmp_path)
    os.chmod(entry, mode)
    assert compiled.read_entry(entry, entry.name.encode()) is None


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o1777])
def test_entry_in_a_shared_directory_is_refused(tmp_path: Path, mode: int) -> None:
    entry = _entry(tmp_path)
    os.chmod(entry.parent, mode)
    assert compiled.read_entry(entry, entry.name.encode()) is None
