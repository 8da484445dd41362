"""The S3 object-store layer against a real OpenStack Swift (s3api) on loopback."""

from __future__ import annotations

import hashlib
import secrets

import httpx
import pytest

from registry.objectstore import MIN_PART, S3Location, S3Store, StoreConfigError, StoreUnavailable
from tests.fixtures.swift import Swift, s3_client


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(swift: Swift, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    for k, v in swift.env().items():
        monkeypatch.setenv(k, v)
    bucket = "t-" + secrets.token_hex(6)
    s3_client(swift).create_bucket(Bucket=bucket)
    s = S3Store(S3Location.parse(f"s3://{bucket}/reg"), endpoint=swift.endpoint)
    s.check()
    return s


@pytest.mark.parametrize("url", ["s3://", "http://bucket", "s3://Bad_Bucket", "s3://bkt/../x", "s3://bkt/a?b=c",
                                 "s3://bkt/a b"])
def test_bad_locations_are_refused(url: str) -> None:
    with pytest.raises(StoreConfigError):
        S3Location.parse(url)


def test_prefix_is_normalised() -> None:
    assert S3Location.parse("s3://bkt/a/b/").prefix == "a/b/"
    assert S3Location.parse("s3://bkt").prefix == ""


def test_small_blob_round_trip_and_range(store: S3Store) -> None:
    data = b"0123456789" * 100
    digest = sha(data)
    assert store.size(digest) is None
    store.write_small(digest, data)
    assert store.size(digest) == len(data)
    assert store.read(digest, 10_000) == data
    assert store.read(digest, 10) is None  # over the limit: refused, not truncated
    assert b"".join(store.stream(digest, 5, 14)) == data[5:15]
    assert [d for d, _ in store.list_blobs()] == [digest]


def test_write_small_refuses_content_under_another_digest(store: S3Store) -> None:
    with pytest.raises(ValueError):
        store.write_small(sha(b"a"), b"b")
    assert store.size(sha(b"a")) is None


def test_multipart_assembly_and_rehash(store: S3Store) -> None:
    parts = [secrets.token_bytes(MIN_PART), secrets.token_bytes(1234)]
    key = store.upload_key(secrets.token_hex(16))
    mp = store.start_multipart(key)
    assert any(k == key for k, _, _ in store.open_multiparts())
    etags = [store.put_part(key, mp, i + 1, p) for i, p in enumerate(parts)]
    store.complete_multipart(key, mp, etags)
    read_back = bytearray()
    assert store.concatenate([(key, MIN_PART + 1234)], read_back.extend) == sha(b"".join(parts))
    assert bytes(read_back) == b"".join(parts)


def test_aborted_multipart_is_gone(store: S3Store) -> None:
    key = store.upload_key(secrets.token_hex(16))
    mp = store.start_multipart(key)
    store.abort_multipart(key, mp)
    store.abort_multipart(key, mp)  # twice: the second finds nothing and says nothing
    assert all(u != mp for _, u, _ in store.open_multiparts())


def test_presigned_url_serves_the_blob(store: S3Store) -> None:
    data = b"presigned"
    store.write_small(sha(data), data)
    r = httpx.get(store.presigned_get(sha(data), 60))
    assert r.status_code == 200 and r.content == data


def test_wrong_secret_is_a_config_error(swift: Swift, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", swift.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    s = S3Store(S3Location.parse("s3://nobucket"), endpoint=swift.endpoint)
    with pytest.raises(StoreConfigError):
        s.check()


def test_missing_bucket_is_a_config_error(swift: Swift, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in swift.env().items():
        monkeypatch.setenv(k, v)
    with pytest.raises(StoreConfigError, match=r"does not exist|NoSuchBucket"):
        S3Store(S3Location.parse("s3://no-such-bucket-here"), endpoint=swift.endpoint).check()


def test_unreachable_store_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    s = S3Store(S3Location.parse("s3://bkt"), endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable):
        s.size(sha(b"x"))
