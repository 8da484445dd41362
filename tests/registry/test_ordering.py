"""Tag and repository listings are in byte ("ASCIIbetical") order whatever the database's collation.

The spec allows lexical or ASCIIbetical order, and clients (the OCI conformance suite among them) page
with ``last`` taken from a byte-order sort. A PostgreSQL database created with a natural-language
collation (ICU ``en-US`` here, a production default) listed "a" before "B" and "_" before "-", so a
page that started after ``last`` skipped tags and repositories. SQLite is the control.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.registry import RegistryServer, start_registry
from tests.registry.conftest import Client

TAGS = ["B", "a", "A", "b", "1.9", "1.10", "1-rc", "_x", "Z", "z-1", "z.1", "z_1"]
COMPONENTS = ["a-b", "a.b", "a_b", "ab", "a/b", "a--b", "a__b"]


@pytest.fixture(scope="module")
def icu_registry(postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    import psycopg

    name = f"registry_icu_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    server = start_registry(tmp_path_factory.mktemp("registry-icu"), database=postgres_server.url(name))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql-icu"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    server = request.getfixturevalue("registry_server" if request.param == "sqlite" else "icu_registry")
    client = Client(server, server.admin_token)
    yield client
    client.http.close()


def test_tags_are_listed_and_paged_in_byte_order(client):
    name = f"order/t{uuid.uuid4().hex[:8]}"
    _, body = client.push_image(name, TAGS[0])
    for tag in TAGS[1:]:
        assert client.push_manifest(name, tag, body).status_code == 201
    expected = sorted(TAGS)
    assert client.http.get(f"/v2/{name}/tags/list").json()["tags"] == expected
    for i, last in enumerate(expected):
        page = client.http.get(f"/v2/{name}/tags/list", params={"last": last}).json()["tags"]
        assert page == expected[i + 1:], last
    walked, url = [], f"/v2/{name}/tags/list?n=3"
    while url:
        r = client.http.get(url)
        walked += r.json()["tags"]
        url = r.headers.get("link", "").partition("<")[2].partition(">")[0]
    assert walked == expected


def test_catalog_is_listed_and_paged_in_byte_order(client):
    prefix = f"order/c{uuid.uuid4().hex[:8]}/"
    names = [prefix + c for c in COMPONENTS]
    for name in names:
        client.push_image(name, "1.0.0")
    expected = sorted(names)

    def ours(params: dict[str, str]) -> list[str]:
        repos = client.http.get("/v2/_catalog", params=params).json()["repositories"]
        return [r for r in repos if r.startswith(prefix)]

    assert ours({}) == expected
    for i, last in enumerate(expected):
        assert ours({"last": last}) == expected[i + 1:], last
