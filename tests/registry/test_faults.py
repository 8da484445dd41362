"""Faults: a crash in the middle of a large upload, and many clients pushing the same thing at once."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fixtures.registry import start_registry
from tests.registry.conftest import Client, sha

MIB = 1 << 20
TOTAL_MIB = 200


def _chunk(i: int) -> bytes:
    return bytes([i % 251]) * MIB


@pytest.mark.slow
def test_kill_9_during_a_200mb_upload(tmp_path):
    server = start_registry(tmp_path / "crash")
    try:
        _crash_and_resume(server)
    finally:
        server.stop()


def _crash_and_resume(server):
    admin = Client(server, server.admin_token)
    before_digest, before_body = admin.push_image("crash/app", "1.0.0", payload=b"stored before the crash")
    full = hashlib.sha256()
    for i in range(TOTAL_MIB):
        full.update(_chunk(i))
    digest = "sha256:" + full.hexdigest()
    location = admin.http.post("/v2/crash/app/blobs/uploads/").headers["location"]
    _kill_halfway_through_upload(server, admin, location)
    server.start()
    admin = Client(server, server.admin_token)

    # nothing partial is visible, nothing stored before is damaged
    assert admin.http.head(f"/v2/crash/app/blobs/{digest}").status_code == 404
    assert not server.data_dir.joinpath("blobs", "sha256", digest[7:9], digest[7:]).exists()
    assert admin.http.get(f"/v2/crash/app/manifests/{before_digest}").content == before_body
    before_layer = b"stored before the crash"
    assert admin.http.get("/v2/crash/app/blobs/" + sha(before_layer)).content == before_layer
    _resume_upload(admin, location, digest)


def _kill_halfway_through_upload(server, admin, location):
    halfway = threading.Event()

    def body():
        for i in range(TOTAL_MIB):
            if i == TOTAL_MIB // 2:
                halfway.set()
                time.sleep(0.5)  # the server has half the blob; the kill lands now
            yield _chunk(i)

    def upload():
        with contextlib.suppress(httpx.HTTPError):  # the server dies under us: expected
            admin.http.patch(location, content=body())

    sender = threading.Thread(target=upload)
    sender.start()
    assert halfway.wait(60)
    time.sleep(0.2)
    server.kill()
    sender.join(60)


def _resume_upload(admin, location, digest):
    """The upload resumes from what reached the disk."""
    status = admin.http.get(location)
    assert status.status_code == 204
    have = int(status.headers["range"].split("-")[1]) + 1
    assert 0 < have <= TOTAL_MIB * MIB

    def rest():
        first = have // MIB
        yield _chunk(first)[have % MIB:]
        for i in range(first + 1, TOTAL_MIB):
            yield _chunk(i)

    r = admin.http.patch(location, content=rest(), headers={"Content-Range": f"{have}-{TOTAL_MIB * MIB - 1}"})
    assert r.status_code == 202, r.text
    assert admin.http.put(location, params={"digest": digest}).status_code == 201
    head = admin.http.head(f"/v2/crash/app/blobs/{digest}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == TOTAL_MIB * MIB


def test_16_concurrent_pushes_of_the_same_blob_and_tag(server):
    layer = b"L" * (3 * MIB)
    config = b'{"architecture":"wasm"}'
    manifest = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                f'"config":{{"mediaType":"application/vnd.wasm.config.v0+json","digest":"{sha(config)}","size":{len(config)}}},'
                f'"layers":[{{"mediaType":"application/wasm","digest":"{sha(layer)}","size":{len(layer)}}}]}}').encode()

    def push(i: int) -> tuple[int, str]:
        client = Client(server, server.admin_token)
        client.push_blob("race/app", config)
        if i % 2:  # half monolithic, half chunked
            client.push_blob("race/app", layer)
        else:
            loc = client.http.post("/v2/race/app/blobs/uploads/").headers["location"]
            first = client.http.patch(loc, content=layer[:MIB], headers={"Content-Range": f"0-{MIB - 1}"})
            loc = first.headers["location"]
            assert client.http.put(loc, params={"digest": sha(layer)}, content=layer[MIB:]).status_code == 201
        r = client.push_manifest("race/app", "1.0.0", manifest)
        return r.status_code, r.headers.get("docker-content-digest", "")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(push, range(16)))
    assert results == [(201, sha(manifest))] * 16
    client = Client(server, server.admin_token)
    assert client.http.get("/v2/race/app/manifests/1.0.0").content == manifest
    assert client.http.get(f"/v2/race/app/blobs/{sha(layer)}").content == layer
    assert client.http.get("/v2/race/app/tags/list").json()["tags"] == ["1.0.0"]
