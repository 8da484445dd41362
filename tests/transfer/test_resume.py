"""An upload interrupted by Ctrl-C (KeyboardInterrupt) resumes on the next run where the registry got to.

The enarx-pkg registry reports how much of a session it holds, including after a PATCH cut off
mid-body; CNCF distribution declares such a session invalid, and then the upload starts afresh.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from enarx_pkg._internal import digest
from enarx_pkg.oci import parse_registry
from enarx_pkg.oci.auth import Credential, static
from enarx_pkg.oci.client import Client
from enarx_pkg.oci.transport import Settings
from enarx_pkg.package import Descriptor

MIB = 1 << 20
CHUNKED = Settings(backoff=0.01, retries=2, upload_chunk=MIB, monolithic_limit=MIB)


def test_interrupted_upload_resumes_next_run(registry_server: Any, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENARX_PKG_CACHE_DIR", str(tmp_path / "cache"))
    data = os.urandom(5 * MIB)
    desc = Descriptor("application/wasm", digest.of_bytes(data), len(data))
    reg = parse_registry(registry_server.host)
    creds = static(registry_server.host, Credential("admin", registry_server.admin_token, "test"))

    def interrupt(done: int) -> None:
        if done >= 3 * MIB:
            raise KeyboardInterrupt

    with Client(reg, creds, settings=CHUNKED) as c, pytest.raises(KeyboardInterrupt):
        c.push_blob("resume/app", desc, lambda: io.BytesIO(data), progress=interrupt)
    journals = list((tmp_path / "cache" / "uploads").iterdir())
    assert len(journals) == 1 and journals[0].stat().st_mode & 0o777 == 0o600
    assert registry_server.host in journals[0].read_text()

    seen: list[int] = []
    with Client(reg, creds, settings=CHUNKED) as c:
        assert c.push_blob("resume/app", desc, lambda: io.BytesIO(data), progress=seen.append) == "pushed"
        assert c.has_blob("resume/app", desc.digest)
    assert seen[0] >= 2 * MIB  # started from what the registry held, not from 0
    assert not list((tmp_path / "cache" / "uploads").iterdir())  # journal gone once complete


def test_stale_journal_starts_afresh(docker_registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENARX_PKG_CACHE_DIR", str(tmp_path / "cache"))
    data = os.urandom(3 * MIB)
    desc = Descriptor("application/wasm", digest.of_bytes(data), len(data))
    reg = parse_registry(docker_registry.host)
    with Client(reg, settings=CHUNKED) as c:
        from enarx_pkg.oci.upload import _Journal

        _Journal(c.t, "resume/stale", desc.digest).save(f"http://{docker_registry.host}/v2/resume/stale/blobs/"
                                                        "uploads/00000000-0000-0000-0000-000000000000")
        assert c.push_blob("resume/stale", desc, lambda: io.BytesIO(data)) == "pushed"
        assert c.has_blob("resume/stale", desc.digest)
