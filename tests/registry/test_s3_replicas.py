"""Replicas that share nothing but PostgreSQL and a bucket (OpenStack Swift's S3 API on loopback).

Two registry processes with separate data directories, one PostgreSQL database, one Swift bucket:
uploads that move between replicas, a replica killed mid-upload, skopeo in and out, the two-writer
race, the store going away (503, nothing half-visible), wrong credentials, gc of a crashed
replica's leftovers, presigned redirects, and migrating a filesystem registry into a bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port
from tests.fixtures.registry import RegistryServer, start_registry
from tests.fixtures.swift import Swift, new_bucket, s3_client, storage_args
from tests.registry.conftest import Client, sha
from tests.registry.test_clients import skopeo
from tests.registry.test_replicas import _race

MiB = 1 << 20


@pytest.fixture(scope="module")
def bucket(swift: Swift) -> str:
    return new_bucket(swift)


@pytest.fixture(scope="module")
def replicas(postgres_server, swift: Swift, bucket: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    url = postgres_server.database("registry_s3_replicas")
    a = start_registry(tmp_path_factory.mktemp("s3-a"), database=url, extra=storage_args(swift, bucket),
                       env=swift.env())
    b = start_registry(tmp_path_factory.mktemp("s3-b"), database=url, extra=storage_args(swift, bucket),
                       env=swift.env())
    yield a, b
    a.stop()
    b.stop()


def _objects(swift: Swift, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = s3_client(swift)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def _every_blob_is_named_by_its_digest(swift: Swift, bucket: str) -> None:
    blobs = _objects(swift, bucket, "reg/blobs/sha256/")
    assert blobs, "the bucket holds no blob at all"
    for key, data in blobs.items():
        assert hashlib.sha256(data).hexdigest() == key.rsplit("/", 1)[-1], key


def test_a_chunked_upload_alternates_replicas_and_is_pulled_through_the_other(replicas):
    a, b = replicas
    auth = {"Authorization": f"Bearer {a.admin_token}"}
    # big enough that parts go up as multipart objects, with small chunks between them
    chunks = [os.urandom(n) for n in (13 * MiB, 100_000, 6 * MiB, 1)]
    data = b"".join(chunks)
    location = httpx.post(f"{a.url}/v2/acme/moving/blobs/uploads/", headers=auth).headers["location"]
    offset = 0
    for i, chunk in enumerate(chunks):
        base = (a.url, b.url)[i % 2]
        r = httpx.patch(base + location, content=chunk, timeout=120,
                        headers={**auth, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert r.status_code == 202, r.text
        offset += len(chunk)
    assert httpx.get(a.url + location, headers=auth).headers["range"] == f"0-{len(data) - 1}"
    assert httpx.put(b.url + location, params={"digest": sha(data)}, headers=auth, timeout=120).status_code == 201
    got = httpx.get(f"{b.url}/v2/acme/moving/blobs/{sha(data)}", headers=auth, timeout=120)
    assert got.status_code == 200 and sha(got.content) == sha(data)
    ranged = httpx.get(f"{a.url}/v2/acme/moving/blobs/{sha(data)}",
                       headers={**auth, "Range": "bytes=13631480-13631500"})
    assert ranged.status_code == 206 and ranged.content == data[13631480:13631501]
    assert ranged.headers["content-range"] == f"bytes 13631480-13631500/{len(data)}"


def test_wrong_bytes_are_never_stored_under_the_claimed_digest(replicas, swift, bucket):
    a, b = replicas
    auth = {"Authorization": f"Bearer {a.admin_token}"}
    claimed = sha(b"the real content")
    location = httpx.post(f"{a.url}/v2/acme/liar/blobs/uploads/", headers=auth).headers["location"]
    httpx.patch(b.url + location, content=b"other bytes", headers=auth)
    r = httpx.put(a.url + location, params={"digest": claimed}, headers=auth)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not [k for k in _objects(swift, bucket, "reg/blobs/") if k.endswith(claimed[7:])]


def test_same_range_on_two_s3_replicas_never_mixes_blobs(replicas, swift, bucket):
    a, b = replicas
    token = a.token("push:acme/*", name="attacker")
    for i in range(3):
        codes, put = _race(a.url, b.url, token, f"acme/s3race{i}")
        assert codes == [202, 416]  # one PATCH won the range; the other was refused, not mixed in
        assert put in (201, 400)
    _every_blob_is_named_by_its_digest(swift, bucket)


def test_kill_9_mid_upload_then_finish_through_the_other_replica(postgres_server, swift, bucket, tmp_path):
    url = postgres_server.database("registry_s3_replicas")
    victim = start_registry(tmp_path / "victim", database=url, extra=storage_args(swift, bucket), env=swift.env())
    other = start_registry(tmp_path / "other", database=url, extra=storage_args(swift, bucket), env=swift.env())
    try:
        auth = {"Authorization": f"Bearer {victim.admin_token}"}
        first, rest = os.urandom(9 * MiB), os.urandom(20 * MiB)
        location = httpx.post(f"{victim.url}/v2/acme/crash/blobs/uploads/", headers=auth).headers["location"]
        r = httpx.patch(victim.url + location, content=first, headers={**auth, "Content-Range": f"0-{len(first) - 1}"},
                        timeout=120)
        assert r.status_code == 202
        _kill_during_patch(victim, location, auth, len(first))
        # the killed request's bytes never joined the upload: it stands where the last finished request left it
        assert httpx.get(other.url + location, headers=auth).headers["range"] == f"0-{len(first) - 1}"
        r = httpx.patch(other.url + location, content=rest, timeout=120,
                        headers={**auth, "Content-Range": f"{len(first)}-{len(first) + len(rest) - 1}"})
        assert r.status_code == 202
        digest = sha(first + rest)
        assert httpx.put(other.url + location, params={"digest": digest}, headers=auth, timeout=120).status_code == 201
        got = httpx.get(f"{other.url}/v2/acme/crash/blobs/{digest}", headers=auth, timeout=120)
        assert sha(got.content) == digest
    finally:
        victim.stop()
        other.stop()


def _kill_during_patch(server: RegistryServer, location: str, auth: dict[str, str], offset: int) -> None:
    sent = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(40):
            yield os.urandom(MiB)
            if i == 20:  # past the first 8 MiB multipart part of this request
                sent.set()
                time.sleep(1.0)  # the server holds part of this request; the kill lands now

    def upload() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.patch(server.url + location, content=body(), timeout=30,
                        headers={**auth, "Content-Range": f"{offset}-{offset + 40 * MiB - 1}"})

    t = threading.Thread(target=upload)
    t.start()
    assert sent.wait(60)
    time.sleep(0.3)
    server.kill()
    t.join(60)


def test_gc_cleans_a_crashed_replicas_leftovers(postgres_server, swift, tmp_path):
    bucket = new_bucket(swift)
    url = postgres_server.database("registry_s3_gc")
    server = start_registry(tmp_path / "gc", database=url, extra=storage_args(swift, bucket), env=swift.env())
    try:
        auth = {"Authorization": f"Bearer {server.admin_token}"}
        location = httpx.post(f"{server.url}/v2/acme/gc/blobs/uploads/", headers=auth).headers["location"]
        httpx.patch(server.url + location, content=os.urandom(2 * MiB), headers=auth)
        _kill_during_patch(server, location, auth, 2 * MiB)  # leaves an open multipart upload behind
    finally:
        server.stop()
    s3 = s3_client(swift)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert _objects(swift, bucket, "reg/uploads/")
    r = _cli(swift, "registry", "gc", "--grace", "0", "--data", str(tmp_path / "gc"), "--database", url,
             *storage_args(swift, bucket), "--json")
    assert r.returncode == 0, r.stderr
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert not _objects(swift, bucket, "reg/uploads/")


def test_skopeo_copies_in_and_out_through_two_replicas(replicas, oci_layout, tmp_path):
    a, b = replicas
    token = a.token("push:skopeo/*")
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"x:{token}", f"oci:{oci_layout}:1.0.0",
           f"docker://{a.host}/skopeo/hello:1.0.0")
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", f"x:{token}", f"docker://{b.host}/skopeo/hello:1.0.0",
           f"oci:{out}:1.0.0")
    for blob in (oci_layout / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()


def test_redirect_mode_answers_307_to_a_presigned_url(postgres_server, swift, bucket, tmp_path):
    url = postgres_server.database("registry_s3_replicas")
    server = start_registry(tmp_path / "redirect", database=url, extra=[*storage_args(swift, bucket), "--s3-redirect"],
                            env=swift.env())
    try:
        client = Client(server, server.admin_token)
        digest = client.push_blob("acme/redirect", b"served by the store itself")
        r = client.http.get(f"/v2/acme/redirect/blobs/{digest}")
        assert r.status_code == 307 and r.headers["location"].startswith(swift.endpoint)
        assert httpx.get(r.headers["location"]).content == b"served by the store itself"
        # HEAD after any redirect must be 200 with the size (a presigned GET URL refuses HEAD: signed method)
        head = client.http.head(f"/v2/acme/redirect/blobs/{digest}", follow_redirects=True)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(b"served by the store itself"))
        assert head.headers["docker-content-digest"] == digest and "location" not in head.headers
        assert client.http.get(f"/v2/acme/redirect/blobs/{sha(b'x')}").status_code == 404
    finally:
        server.stop()


class _Relay:
    """A TCP relay in front of Swift that the test can cut, as a network failure would."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.from_store = 0  # bytes the store sent through the relay
        self.gate = threading.Event()  # cleared: requests to the store are held until it is set again
        self.gate.set()
        self.held = threading.Event()  # set once a request has been held at the gate
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for src, dst, count in ((conn, upstream, False), (upstream, conn, True)):
                threading.Thread(target=self._pipe, args=(src, dst, count), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while self.open and (data := src.recv(65536)):
                if count:
                    self.from_store += len(data)
                elif not self.gate.is_set():
                    self.held.set()
                    self.gate.wait(120)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def cut(self) -> None:
        self.open = False


def _behind(relay: _Relay, postgres_server, swift: Swift, bucket: str, data: Path) -> RegistryServer:
    """A replica on the shared database whose object store is reached through ``relay``."""
    args = ["--storage", f"s3://{bucket}/reg", "--s3-endpoint", f"http://127.0.0.1:{relay.port}"]
    return start_registry(data, database=postgres_server.database("registry_s3_replicas"), extra=args,
                          env=swift.env())


def test_store_unreachable_is_503_with_retry_after_and_nothing_visible(postgres_server, swift, bucket, tmp_path):
    relay = _Relay(int(swift.endpoint.rsplit(":", 1)[1]))
    server = _behind(relay, postgres_server, swift, bucket, tmp_path / "cut")
    try:
        client = Client(server, server.admin_token)
        kept = client.push_blob("acme/cut", b"pushed before the store went away")
        relay.cut()
        data = b"pushed while the store is away"
        r = client.http.post("/v2/acme/cut/blobs/uploads/", params={"digest": sha(data)}, content=data)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] and r.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert client.http.get(f"/v2/acme/cut/blobs/{kept}").status_code == 503
        assert client.http.head(f"/v2/acme/cut/blobs/{sha(data)}").status_code in (404, 503)  # never 200
        log = (server.data_dir / "server.log").read_text()
        assert "Traceback" not in log
    finally:
        server.stop()


def test_a_blob_head_reads_nothing_of_the_blob_from_the_store(postgres_server, swift, bucket, tmp_path):
    relay = _Relay(int(swift.endpoint.rsplit(":", 1)[1]))
    server = _behind(relay, postgres_server, swift, bucket, tmp_path / "head")
    try:
        client = Client(server, server.admin_token)
        data = os.urandom(8 << 20)
        digest = client.push_blob("acme/head", data)
        before = relay.from_store
        for _ in range(3):
            head = client.http.head(f"/v2/acme/head/blobs/{digest}")
            assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
        client.http.get("/v2/")  # same connection: answered only once the HEADs' handlers have finished
        assert relay.from_store - before < 1 << 20  # a few object HEADs, never the 8 MiB body
    finally:
        server.stop()


def test_a_slow_store_read_does_not_stall_the_replicas_other_requests(postgres_server, swift, bucket, tmp_path):
    """A manifest this replica has not cached is read from the bucket off the event loop."""
    relay = _Relay(int(swift.endpoint.rsplit(":", 1)[1]))
    url = postgres_server.database("registry_s3_replicas")
    a = start_registry(tmp_path / "a", database=url, extra=storage_args(swift, bucket), env=swift.env())
    b = _behind(relay, postgres_server, swift, bucket, tmp_path / "b")
    try:
        _, body = Client(a, a.admin_token).push_image("acme/slow", "1.0.0")
        auth = {"Authorization": f"Bearer {b.admin_token}"}
        relay.gate.clear()
        got: list[httpx.Response] = []
        reader = threading.Thread(target=lambda: got.append(
            httpx.get(f"{b.url}/v2/acme/slow/manifests/1.0.0", headers=auth, timeout=120)))
        reader.start()
        assert relay.held.wait(60)  # B is waiting on the store for the manifest's bytes
        assert httpx.get(f"{b.url}/v2/", headers=auth, timeout=20).status_code == 200  # and still answers
        relay.gate.set()
        reader.join(120)
        assert got[0].status_code == 200 and got[0].content == body
        # the pages and the JSON API read the bucket off the event loop too (on a worker thread)
        version = httpx.get(f"{b.url}/api/v1/repositories/acme/slow/-/versions/1.0.0", headers=auth, timeout=60)
        assert version.status_code == 200 and version.json()["digest"] == sha(body)
        assert httpx.get(f"{b.url}/repo/acme/slow", headers=auth, timeout=60).status_code == 200
    finally:
        relay.gate.set()
        a.stop()
        b.stop()


def _cli(swift: Swift, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enarx_pkg", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **swift.env()}, timeout=300)


def test_wrong_credentials_stop_the_server_with_the_stores_reason(swift, bucket, tmp_path):
    env = {**swift.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    r = subprocess.run([sys.executable, "-m", "enarx_pkg", "registry", "serve", "--data", str(tmp_path / "d"),
                        "--port", str(free_port()), *storage_args(swift, bucket)], capture_output=True, text=True,
                       cwd=REPO, env={**os.environ, **env}, timeout=120)
    assert r.returncode != 0
    assert "refused these credentials" in r.stderr and "listening" not in r.stderr
    assert "not-the-secret" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_a_missing_bucket_stops_the_server(swift, tmp_path):
    r = _cli(swift, "registry", "serve", "--data", str(tmp_path / "d"), "--port", str(free_port()),
             "--storage", "s3://no-such-bucket-here", "--s3-endpoint", swift.endpoint)
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_migrate_a_filesystem_registry_into_a_bucket(swift, tmp_path):
    fs = start_registry(tmp_path / "fs")
    try:
        client = Client(fs, fs.admin_token)
        manifest_digest, _ = client.push_image("acme/moved", "1.0.0", payload=os.urandom(3 * MiB))
    finally:
        fs.stop()
    bucket = new_bucket(swift)
    first = _cli(swift, "registry", "migrate-storage", "--data", str(tmp_path / "fs"), *storage_args(swift, bucket),
                 "--json")
    assert first.returncode == 0, first.stderr
    assert '"copied": 3' in first.stdout  # config, layer, manifest
    again = _cli(swift, "registry", "migrate-storage", "--data", str(tmp_path / "fs"), *storage_args(swift, bucket),
                 "--json")
    assert '"copied": 0' in again.stdout and '"present": 3' in again.stdout
    moved = start_registry(tmp_path / "fs", extra=storage_args(swift, bucket), env=swift.env())
    try:
        client = Client(moved, moved.admin_token)
        r = client.http.get("/v2/acme/moved/manifests/1.0.0",
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 200 and sha(r.content) == manifest_digest
        for layer in r.json()["layers"]:
            assert sha(client.http.get(f"/v2/acme/moved/blobs/{layer['digest']}").content) == layer["digest"]
    finally:
        moved.stop()


def test_migrate_refuses_a_damaged_blob_file(swift, tmp_path):
    fs = start_registry(tmp_path / "fs")
    try:
        Client(fs, fs.admin_token).push_blob("acme/damaged", b"will be damaged")
    finally:
        fs.stop()
    blob = next((tmp_path / "fs" / "blobs" / "sha256").glob("*/*"))
    blob.write_bytes(b"damaged!")
    r = _cli(swift, "registry", "migrate-storage", "--data", str(tmp_path / "fs"),
             *storage_args(swift, new_bucket(swift)))
    assert r.returncode == 65 and "does not hash to its name" in r.stderr


def test_paths_are_confined_to_the_bucket_prefix() -> None:
    from registry.objectstore import S3Location

    for bad in ("s3://bkt/../other", "s3://bkt/a/../../b"):
        with pytest.raises(Exception, match="prefix"):
            S3Location.parse(bad)



def test_an_unreachable_store_stops_serve_and_migrate_with_exit_69(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}
    for command in (["serve", "--port", str(free_port())], ["migrate-storage"]):
        r = subprocess.run([sys.executable, "-m", "enarx_pkg", "registry", *command, "--data", str(tmp_path / "d"),
                            "--storage", "s3://some-bucket/reg", "--s3-endpoint", closed], capture_output=True,
                           text=True, cwd=REPO, env=env, timeout=120)
        assert r.returncode == 69, (command, r.returncode, r.stderr)
        assert "unreachable" in r.stderr and "listening" not in r.stderr + r.stdout
        assert "Traceback" not in r.stderr and "s3cr3t-value" not in r.stderr + r.stdout
