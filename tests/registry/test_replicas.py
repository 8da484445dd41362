"""Several processes on one data directory: uvicorn workers, and replicas sharing SQLite or PostgreSQL.

The attack (issue 14, defect 1): a client with push rights sends two PATCHes with the same
Content-Range on two connections, blob X on one and Y on the other, that land on different
processes, then PUTs with X's digest. Upload state used to live in each process while the upload
file was shared, so the registry stored Y's bytes under X's digest. Now whatever wins, a blob is
only ever served under the digest of its bytes.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.registry import RegistryServer, RoundRobin, start_registry
from tests.registry.conftest import sha

SIZE = 2 << 20
PIECE = 64 << 10


def _slowly(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), PIECE):
        time.sleep(0.002)  # both bodies are in flight at once
        yield data[i:i + PIECE]


def _race(front: str, back: str, token: str, repo: str) -> tuple[list[int], int]:
    """Both PATCHes of one upload at once (one per process), then PUT with X's digest; (PATCH codes, PUT code)."""
    auth = {"Authorization": f"Bearer {token}"}
    x, y = os.urandom(SIZE), os.urandom(SIZE)
    location = httpx.post(f"{front}/v2/{repo}/blobs/uploads/", headers=auth).headers["location"]
    codes: list[int] = []

    def patch(base: str, data: bytes) -> None:
        with httpx.Client(headers=auth, timeout=60) as http:  # a connection of its own
            r = http.patch(base + location, content=_slowly(data), headers={"Content-Range": f"0-{SIZE - 1}"})
            codes.append(r.status_code)

    threads = [threading.Thread(target=patch, args=args) for args in ((front, x), (back, y))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    put = httpx.put(front + location, params={"digest": sha(x)}, headers=auth, timeout=60)
    got = httpx.get(f"{back}/v2/{repo}/blobs/{sha(x)}", headers=auth, timeout=60)
    assert got.status_code in (200, 404)
    if got.status_code == 200:
        assert sha(got.content) == sha(x)  # never Y's bytes (or a mix) under X's digest
    assert (put.status_code == 201) == (got.status_code == 200)
    return sorted(codes), put.status_code


def _every_blob_is_named_by_its_digest(data_dir: Path) -> None:
    for path in (data_dir / "blobs" / "sha256").glob("*/*"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


def _check_races(front: RegistryServer, back: RegistryServer, rounds: int) -> None:
    token = front.token("push:acme/*", name="attacker")
    outcomes = [_race(front.url, back.url, token, f"acme/race{i}") for i in range(rounds)]
    for codes, put in outcomes:
        assert codes == [202, 416]  # one PATCH won the range; the other was refused, not mixed in
        assert put in (201, 400)  # 400 DIGEST_INVALID when Y won
    _every_blob_is_named_by_its_digest(front.data_dir)


@pytest.fixture(scope="module")
def sqlite_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    shared = tmp_path_factory.mktemp("replicas-sqlite")
    a = start_registry(shared)
    b = start_registry(shared)
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def postgres_replicas(postgres_server, tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    url = postgres_server.database("registry_replicas")
    shared = tmp_path_factory.mktemp("replicas-pg")
    a = start_registry(shared, database=url)
    b = start_registry(shared, database=url)
    yield a, b
    a.stop()
    b.stop()


def test_same_range_on_two_sqlite_replicas_never_mixes_blobs(sqlite_replicas):
    _check_races(*sqlite_replicas, rounds=4)


def test_same_range_on_two_postgresql_replicas_never_mixes_blobs(postgres_replicas):
    _check_races(*postgres_replicas, rounds=4)


def test_same_range_on_two_workers_never_mixes_blobs(tmp_path):
    server = start_registry(tmp_path / "workers", extra=["--workers", "2"])
    try:
        _check_races(server, server, rounds=6)  # separate connections: the kernel spreads them over workers
    finally:
        server.stop()


def test_a_chunked_upload_continues_on_another_replica(sqlite_replicas):
    a, b = sqlite_replicas
    auth = {"Authorization": f"Bearer {a.admin_token}"}
    data = os.urandom(3 * PIECE)
    location = httpx.post(f"{a.url}/v2/acme/moving/blobs/uploads/", headers=auth).headers["location"]
    for i, base in enumerate((a.url, b.url, a.url)):
        r = httpx.patch(base + location, content=data[i * PIECE:(i + 1) * PIECE], headers={
            **auth, "Content-Range": f"{i * PIECE}-{(i + 1) * PIECE - 1}"})
        assert r.status_code == 202, r.text
    assert httpx.get(b.url + location, headers=auth).headers["range"] == f"0-{len(data) - 1}"
    assert httpx.put(b.url + location, params={"digest": sha(data)}, headers=auth).status_code == 201
    assert httpx.get(f"{a.url}/v2/acme/moving/blobs/{sha(data)}", headers=auth).content == data


def test_docker_token_flow_through_a_round_robin_balancer(postgres_replicas):
    """Challenge, /token and the bearer's use each land on another replica: they share the signing key."""
    a, b = postgres_replicas
    api_token = a.token("push:acme/*", name="ci")
    with httpx.Client(base_url=a.url, transport=RoundRobin([a.port, b.port]), timeout=60) as http:
        challenge = http.get("/v2/")
        assert challenge.status_code == 401
        realm = challenge.headers["www-authenticate"].split('realm="', 1)[1].split('"', 1)[0]
        r = http.get(realm, params={"service": a.host, "scope": "repository:acme/lb:pull,push"}, auth=("ci", api_token))
        bearer = {"Authorization": f"Bearer {r.json()['token']}"}
        data = os.urandom(3 * PIECE)
        location = http.post("/v2/acme/lb/blobs/uploads/", headers=bearer).headers["location"]
        for i in range(3):
            r = http.patch(location, content=data[i * PIECE:(i + 1) * PIECE], headers={
                **bearer, "Content-Range": f"{i * PIECE}-{(i + 1) * PIECE - 1}"})
            assert r.status_code == 202, r.text
        assert http.put(location, params={"digest": sha(data)}, headers=bearer).status_code == 201
        for _ in range(2):  # once from each replica
            assert http.get(f"/v2/acme/lb/blobs/{sha(data)}", headers=bearer).content == data
        assert http.get("/v2/acme/other/blobs/" + sha(data), headers=bearer).status_code in (401, 403)
