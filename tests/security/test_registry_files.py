"""The registry's data directory and SQLite database are private: the database holds the HMAC secret
that signs bearer tokens (a local reader could mint admin tokens) and the API tokens' hashes."""

from __future__ import annotations

import stat
from pathlib import Path

from registry.auth import create_token
from registry.settings import Settings
from registry.state import Registry


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_data_dir_and_database_are_private(tmp_path: Path) -> None:
    data = tmp_path / "registry-data"
    reg = Registry(Settings(data_dir=data))
    create_token(reg.meta, "ci", ["pull:*"], None)  # a write, so SQLite has made its -wal/-shm files
    assert mode(data) == 0o700
    files = sorted(data.glob("registry.db*"))
    assert [f.name for f in files][:1] == ["registry.db"] and len(files) >= 2
    for f in files:
        assert mode(f) == 0o600, f
