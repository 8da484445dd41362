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


def test_data_dir_made_before_the_fix_is_tightened_on_start(tmp_path: Path, caplog) -> None:
    """A data dir from an older version kept its 0755 dir and 0644 database: the next start fixes both."""
    data = tmp_path / "registry-data"
    Registry(Settings(data_dir=data)).meta.db.close()
    data.chmod(0o755)
    (data / "registry.db").chmod(0o644)
    with caplog.at_level("WARNING", logger="registry"):
        Registry(Settings(data_dir=data)).meta.db.close()
    assert mode(data) == 0o700 and mode(data / "registry.db") == 0o600
    [line] = [r.getMessage() for r in caplog.records if r.name == "registry"]
    assert "registry.db 644->600" in line and "readable by group/other" in line
    caplog.clear()
    Registry(Settings(data_dir=data)).meta.db.close()  # already private: nothing to say
    assert not [r for r in caplog.records if r.name == "registry"]
