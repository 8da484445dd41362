"""Upload limits and per-upload server state, one test per attack, on a registry run in this process.

In-process (uvicorn in a thread, on 127.0.0.1) so the tests can set a small ``max_blob_bytes`` and look
at the per-upload state (the database's upload rows and the part files) directly, without a debug
endpoint. Before: no blob size limit at all, and any made-up upload id got a lock entry.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from registry.admin import create_token, gc
from registry.app import create_app
from registry.settings import Settings
from registry.state import Registry
from tests.conftest import free_port

LIMIT = 256 << 10
pytestmark = pytest.mark.timeout(60)


@dataclass
class Running:
    http: httpx.Client
    reg: Registry
    settings: Settings

    def open_upload(self, repo: str = "demo/app") -> str:
        r = self.http.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        return str(r.headers["docker-upload-uuid"])

    def upload_files(self) -> list[str]:
        return [p.name for p in (self.settings.data_dir / "uploads").iterdir()]

    def leftovers(self, upload: str) -> list[str]:
        """Whatever the server still holds for ``upload``: its row, its parts' rows, its part files."""
        rows = self.reg.meta.db.query("SELECT id FROM upload_sessions WHERE id = ?", (upload,))
        parts = self.reg.meta.db.query("SELECT name FROM upload_parts WHERE upload_id = ?", (upload,))
        return [str(r[0]) for r in rows + parts] + [f for f in self.upload_files() if f.startswith(upload)]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = Settings(tmp_path_factory.mktemp("registry-limits"), max_blob_bytes=LIMIT)
    app = create_app(settings)
    token = create_token(settings, "admin", ["admin"], None)[1]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as http:
        yield Running(http, app.reg, settings)
    server.should_exit = True
    thread.join(10)


def chunks(data: bytes, size: int = 16 << 10) -> Iterator[bytes]:
    """A body without Content-Length (sent chunked), so only counting as it arrives can stop it."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def refused_as_too_large(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    assert r.json()["errors"][0]["code"] == "SIZE_INVALID"


def test_oversized_monolithic_blob_is_refused_while_streaming(running: Running) -> None:
    data = os.urandom(LIMIT + 1)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    before = running.upload_files()
    r = running.http.post("/v2/demo/app/blobs/uploads/", params={"digest": digest}, content=chunks(data))
    refused_as_too_large(r)
    assert running.upload_files() == before  # the partial upload is discarded
    assert running.http.head(f"/v2/demo/app/blobs/{digest}").status_code == 404


def test_oversized_blob_is_refused_by_its_content_length(running: Running) -> None:
    data = os.urandom(LIMIT + 1)
    r = running.http.post("/v2/demo/app/blobs/uploads/", content=data,
                          params={"digest": "sha256:" + hashlib.sha256(data).hexdigest()})
    refused_as_too_large(r)


def test_chunked_upload_over_the_limit_is_refused_and_discarded(running: Running) -> None:
    upload = running.open_upload()
    first = running.http.patch(f"/v2/demo/app/blobs/uploads/{upload}", content=os.urandom(LIMIT // 2 + 1))
    assert first.status_code == 202, first.text  # under the limit on its own
    r = running.http.patch(f"/v2/demo/app/blobs/uploads/{upload}", content=chunks(os.urandom(LIMIT // 2)))
    refused_as_too_large(r)  # the sum of the chunks is over
    assert running.http.get(f"/v2/demo/app/blobs/uploads/{upload}").status_code == 404
    assert running.leftovers(upload) == []


def test_made_up_upload_ids_leave_no_state(running: Running) -> None:
    before = running.reg.meta.db.query("SELECT COUNT(*) FROM upload_sessions")
    files = running.upload_files()
    for i in range(200):
        bogus = os.urandom(16).hex() if i % 2 else f"not-an-upload-{i}"
        assert running.http.patch(f"/v2/demo/app/blobs/uploads/{bogus}", content=b"x").status_code == 404
        assert running.http.put(f"/v2/demo/app/blobs/uploads/{bogus}",
                                params={"digest": "sha256:" + "0" * 64}).status_code == 404
    sessions = running.reg.meta.db.query("SELECT COUNT(*) FROM upload_sessions")
    assert sessions == before and running.upload_files() == files


def test_finished_cancelled_and_collected_uploads_leave_no_state(running: Running) -> None:
    data = b"finished"
    done = running.open_upload()
    assert running.http.patch(f"/v2/demo/app/blobs/uploads/{done}", content=data).status_code == 202
    put = running.http.put(f"/v2/demo/app/blobs/uploads/{done}", params={"digest": "sha256:" +
                                                                          hashlib.sha256(data).hexdigest()})
    assert put.status_code == 201, put.text
    cancelled = running.open_upload()
    assert running.http.patch(f"/v2/demo/app/blobs/uploads/{cancelled}", content=b"x").status_code == 202
    assert running.http.delete(f"/v2/demo/app/blobs/uploads/{cancelled}").status_code == 204
    collected = running.open_upload()
    assert running.http.patch(f"/v2/demo/app/blobs/uploads/{collected}", content=b"x").status_code == 202
    assert running.leftovers(collected) != []
    assert gc(running.settings, grace=-1).uploads_deleted >= 1  # another process: the server is not told
    assert running.leftovers(done) == running.leftovers(cancelled) == running.leftovers(collected) == []
    assert running.http.get(f"/v2/demo/app/blobs/uploads/{collected}").status_code == 404


def test_uploads_just_under_the_limit_still_work(running: Running) -> None:
    data = os.urandom(LIMIT)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = running.http.post("/v2/demo/app/blobs/uploads/", params={"digest": digest}, content=chunks(data))
    assert r.status_code == 201, r.text
    assert running.http.get(f"/v2/demo/app/blobs/{digest}").content == data


def test_gc_keeps_a_long_upload_that_is_still_sending(running: Running) -> None:
    data = os.urandom(1000)
    upload = running.open_upload()
    url = f"/v2/demo/app/blobs/uploads/{upload}"
    assert running.http.patch(url, content=data[:500]).status_code == 202
    old = time.time() - 7200  # its first part was written two hours ago, as in a slow multi-hour push
    for f in (running.settings.data_dir / "uploads").glob(upload + ".*"):
        os.utime(f, (old, old))
    running.reg.meta.db.execute("UPDATE upload_sessions SET created = ? WHERE id = ?", (old, upload))
    assert running.http.patch(url, content=data[500:], headers={"Content-Range": "500-999"}).status_code == 202
    gc(running.settings, grace=3600)
    r = running.http.put(url, params={"digest": "sha256:" + hashlib.sha256(data).hexdigest()})
    assert r.status_code == 201, r.text


def test_the_server_sweeps_abandoned_uploads_itself(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "sweeping", upload_grace=0.5, sweep_interval=0.0)
    app = create_app(settings)
    token = create_token(settings, "admin", ["admin"], None)[1]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as http:
            running = Running(http, app.reg, settings)
            abandoned = running.open_upload()
            assert http.patch(f"/v2/demo/app/blobs/uploads/{abandoned}", content=b"half a push").status_code == 202
            time.sleep(1.0)
            fresh = running.open_upload()  # a new upload sweeps: no operator ran gc
            assert running.leftovers(abandoned) == []
            assert http.get(f"/v2/demo/app/blobs/uploads/{abandoned}").status_code == 404
            assert http.get(f"/v2/demo/app/blobs/uploads/{fresh}").status_code == 204
    finally:
        server.should_exit = True
        thread.join(10)
