"""OCI distribution-spec v1.1 conformance: pull, push, content discovery, content management.

Written from the spec's four conformance sections (and the checks of its conformance suite) and run
against ours (SQLite, PostgreSQL, two PostgreSQL replicas behind a load balancer that sends each
request to the next replica in turn, and ``--workers 2`` with a connection per request) and, as a
control, CNCF distribution 2.8 (``docker-registry``), so a test that fails only on ours is our bug and
one that fails on both is a wrong test.
Expected differences of the control are named where they are asserted (``EXPECTED_DIFFERENCES``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.registry import RegistryServer, RoundRobin, start_registry

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
ARTIFACT = "application/vnd.example.conformance"

# What CNCF distribution 2.8 does differently, and why each is allowed or known.
EXPECTED_DIFFERENCES = {
    "referrers": "no referrers API (404): clients fall back to the sha256-<hex> referrers tag",
    "oci-subject": "no OCI-Subject header on a manifest PUT with a subject",
    "delete-tag": "deleting a tag is unsupported (the spec allows 400/405)",
    "invalid-reference": "GET of a malformed digest reference answers 500 (the suite wants 400 or 404)",
    "content-range": "a PATCH whose Content-Range does not continue the upload is accepted (202), not 416",
    "tag-order": "the tag list is not in lexical order, and ?n=/last= do not page it (added in distribution 3)",
    "tag-parameter": "a manifest PUT by digest ignores ?tag= and sends no OCI-Tag (the spec makes it a MAY)",
}


@dataclass
class Target:
    name: str
    http: httpx.Client

    @property
    def control(self) -> bool:
        return self.name == "distribution"


@pytest.fixture(scope="module")
def replicas(postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryServer]]:
    """Two replicas on one PostgreSQL database and one blob directory, as ``registry serve`` documents it."""
    url = postgres_server.database("registry_conformance_replicas")
    shared: Path = tmp_path_factory.mktemp("conformance-replicas")
    servers = [start_registry(shared, database=url), start_registry(shared, database=url)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """One ``registry serve --workers 2`` (SQLite): uvicorn's worker processes share the listening socket."""
    server = start_registry(tmp_path_factory.mktemp("conformance-workers"), extra=["--workers", "2"])
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["ours-sqlite", "ours-postgresql", "ours-replicas", "ours-workers",
                                        "distribution"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "distribution":
        peer = request.getfixturevalue("docker_registry")
        client = httpx.Client(base_url=peer.url, timeout=60)
    elif request.param == "ours-workers":
        server = request.getfixturevalue("workers")
        # a connection per request, so the kernel hands requests to either worker
        client = httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0),
                              headers={"Authorization": f"Bearer {server.admin_token}"})
    elif request.param == "ours-replicas":
        servers = request.getfixturevalue("replicas")
        client = httpx.Client(base_url=servers[0].url, timeout=60, transport=RoundRobin([s.port for s in servers]),
                              headers={"Authorization": f"Bearer {servers[0].admin_token}"})
    else:
        server = request.getfixturevalue("registry_server" if request.param == "ours-sqlite" else "postgres_registry")
        client = httpx.Client(base_url=server.url, timeout=60,
                              headers={"Authorization": f"Bearer {server.admin_token}"})
    yield Target(request.param, client)
    client.close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def new_repo() -> str:
    return f"conformance/r{uuid.uuid4().hex[:12]}"


def with_digest(location: str, digest: str) -> str:
    """The upload URL plus ``digest=``, keeping any query the registry put there (distribution keeps state in it)."""
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def push_blob(t: Target, repo: str, data: bytes) -> str:
    r = t.http.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    r = t.http.put(with_digest(r.headers["location"], sha(data)), content=data,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return sha(data)


def image(t: Target, repo: str, layer: bytes = b"layer", **extra: object) -> bytes:
    config = push_blob(t, repo, b"{}")
    digest = push_blob(t, repo, layer)
    return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                       "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                       "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": len(layer)}],
                       **extra}).encode()


def put_manifest(t: Target, repo: str, ref: str, body: bytes, media_type: str = MANIFEST) -> httpx.Response:
    return t.http.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})


# -- pull ----------------------------------------------------------------------------------------
def test_pull_manifest_by_tag_and_digest(target):
    repo = new_repo()
    body = image(target, repo)
    assert put_manifest(target, repo, "v1", body).status_code == 201
    for ref in ("v1", sha(body)):
        got = target.http.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST})
        assert got.status_code == 200 and got.content == body
        assert got.headers["docker-content-digest"] == sha(body)
        assert got.headers["content-type"] == MANIFEST
        head = target.http.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST})
        assert head.status_code == 200 and head.headers["content-length"] == str(len(body))


def test_pull_blob_with_get_head_and_ranges(target):
    repo = new_repo()
    data = os.urandom(2048)
    digest = push_blob(target, repo, data)
    assert target.http.get(f"/v2/{repo}/blobs/{digest}").content == data
    head = target.http.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == "2048"
    for spec, part in (("500-1499", data[500:1500]), ("500-", data[500:]), ("-500", data[-500:]),
                       ("2000-5000", data[2000:])):
        r = target.http.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={spec}"})
        assert r.status_code == 206 and r.content == part, spec
        assert r.headers["content-length"] == str(len(part))
    for spec in ("500-0", "5000-10000"):
        # the status line only: distribution 2.8 announces the blob's length and then sends a short 416 text
        with target.http.stream("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={spec}"}) as r:
            assert r.status_code == 416, spec


def test_pull_missing_things_is_404(target):
    repo = new_repo()
    image_body = image(target, repo)
    assert put_manifest(target, repo, "v1", image_body).status_code == 201
    missing = sha(os.urandom(32))
    for path in (f"/v2/{repo}/manifests/{missing}", f"/v2/{repo}/manifests/missing-tag", f"/v2/{repo}/blobs/{missing}"):
        assert target.http.get(path).status_code == 404, path
        assert target.http.head(path).status_code == 404, path
    r = target.http.get(f"/v2/{repo}/manifests/sha256:baddigeststring")
    assert r.status_code in ((500,) if target.control else (404,)), EXPECTED_DIFFERENCES["invalid-reference"]


# -- push ----------------------------------------------------------------------------------------
def test_push_monolithic_with_post_only(target):
    repo, data = new_repo(), b"posted in one request"
    r = target.http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha(data)}, content=data,
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code in (201, 202)  # 202: the registry wants the usual POST/PUT, which the spec allows
    if r.status_code == 202:
        push_blob(target, repo, data)
    assert target.http.get(f"/v2/{repo}/blobs/{sha(data)}").content == data


def test_push_chunked_with_status_and_out_of_order_chunk(target):
    repo, data = new_repo(), os.urandom(3000)
    location = target.http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = target.http.patch(location, content=data[:1000], headers={"Content-Range": "0-999",
                                                                  "Content-Type": "application/octet-stream"})
    assert r.status_code == 202 and r.headers["range"] == "0-999"
    location = r.headers["location"]
    status = target.http.get(location)
    assert status.status_code == 204 and status.headers["range"] == "0-999"
    bad = target.http.patch(location, content=data[2000:], headers={"Content-Range": "2000-2999",
                                                                    "Content-Type": "application/octet-stream"})
    if target.control:
        assert bad.status_code == 202, EXPECTED_DIFFERENCES["content-range"]
        return
    assert bad.status_code == 416
    r = target.http.patch(location, content=data[1000:], headers={"Content-Range": "1000-2999",
                                                                  "Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    r = target.http.put(with_digest(r.headers["location"], sha(data)))
    assert r.status_code == 201 and r.headers["location"].endswith(f"/v2/{repo}/blobs/{sha(data)}")
    assert target.http.get(f"/v2/{repo}/blobs/{sha(data)}").content == data


def test_push_an_empty_blob_then_head_get_and_delete_it(target):
    repo, empty = new_repo(), b""
    push_blob(target, repo, empty)
    head = target.http.head(f"/v2/{repo}/blobs/{sha(empty)}")
    assert head.status_code == 200 and head.headers["content-length"] == "0"
    got = target.http.get(f"/v2/{repo}/blobs/{sha(empty)}")
    assert got.status_code == 200 and got.content == b"" and got.headers["docker-content-digest"] == sha(empty)
    assert target.http.delete(f"/v2/{repo}/blobs/{sha(empty)}").status_code == 202
    assert target.http.head(f"/v2/{repo}/blobs/{sha(empty)}").status_code == 404


def test_push_chunked_with_an_out_of_order_final_put_then_recover(target):
    repo, data = new_repo(), os.urandom(3000)
    location = target.http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = target.http.patch(location, content=data[:1000], headers={"Content-Range": "0-999",
                                                                  "Content-Type": "application/octet-stream"})
    location = r.headers["location"]
    bad = target.http.put(with_digest(location, sha(data)), content=data[2000:],
                          headers={"Content-Range": "2000-2999", "Content-Type": "application/octet-stream"})
    if target.control:
        assert bad.status_code in (201, 202, 400, 416), EXPECTED_DIFFERENCES["content-range"]
        return
    assert bad.status_code == 416
    status = target.http.get(location)
    assert status.status_code == 204 and status.headers["range"] == "0-999"
    r = target.http.patch(status.headers["location"], content=data[1000:2000],
                          headers={"Content-Range": "1000-1999", "Content-Type": "application/octet-stream"})
    assert r.status_code == 202 and r.headers["range"] == "0-1999"
    r = target.http.put(with_digest(r.headers["location"], sha(data)), content=data[2000:],
                        headers={"Content-Range": "2000-2999", "Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.headers["docker-content-digest"] == sha(data)
    assert target.http.get(r.headers["location"]).content == data


def test_push_streamed_patch_then_put(target):
    repo, data = new_repo(), os.urandom(70_000)
    location = target.http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = target.http.patch(location, content=iter([data[:30_000], data[30_000:]]),
                          headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    assert target.http.put(with_digest(r.headers["location"], sha(data))).status_code == 201


def test_push_wrong_digest_is_refused(target):
    repo = new_repo()
    location = target.http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = target.http.put(with_digest(location, sha(b"other")), content=b"these bytes",
                        headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert target.http.head(f"/v2/{repo}/blobs/{sha(b'other')}").status_code == 404


def test_push_cancel_upload(target):
    repo = new_repo()
    location = target.http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    assert target.http.delete(location).status_code == 204
    assert target.http.get(location).status_code == 404


def test_cross_repository_mount_and_fallbacks(target):
    source, dest = new_repo(), new_repo()
    digest = push_blob(target, source, b"mount me")
    r = target.http.post(f"/v2/{dest}/blobs/uploads/", params={"mount": digest, "from": source})
    assert r.status_code == 201 and r.headers["location"].endswith(f"/v2/{dest}/blobs/{digest}")
    assert target.http.get(f"/v2/{dest}/blobs/{digest}").content == b"mount me"
    missing = target.http.post(f"/v2/{new_repo()}/blobs/uploads/", params={"mount": sha(b"absent"), "from": source})
    assert missing.status_code == 202  # a mount that cannot happen falls back to an upload session
    anonymous = target.http.post(f"/v2/{new_repo()}/blobs/uploads/", params={"mount": digest})
    assert anonymous.status_code in (201, 202)


def test_push_manifest_by_tag_and_digest(target):
    repo = new_repo()
    body = image(target, repo)
    r = put_manifest(target, repo, sha(body), body)
    assert r.status_code == 201 and r.headers["docker-content-digest"] == sha(body)
    r = put_manifest(target, repo, "tagged", body)
    assert r.status_code == 201 and r.headers["location"]
    bad = put_manifest(target, repo, "sha256:" + "0" * 64, body)
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_push_manifest_location_pulls_the_exact_bytes(target):
    repo = new_repo()
    body = image(target, repo, b"follow the location")
    for ref in ("by-tag", sha(body)):
        r = put_manifest(target, repo, ref, body)
        assert r.status_code == 201 and r.headers["docker-content-digest"] == sha(body)
        got = target.http.get(r.headers["location"], headers=[("Accept", INDEX), ("Accept", MANIFEST)])
        assert got.status_code == 200 and got.content == body
        assert got.headers["content-type"] == MANIFEST and got.headers["content-length"] == str(len(body))


def test_push_a_large_manifest(target):
    repo = new_repo()
    annotations = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}  # the suite's ~3.9 MB manifest
    body = image(target, repo, annotations=annotations)
    assert put_manifest(target, repo, "large-manifest", body).status_code == 201
    got = target.http.get(f"/v2/{repo}/manifests/large-manifest", headers={"Accept": MANIFEST})
    assert got.status_code == 200 and got.content == body
    head = target.http.head(f"/v2/{repo}/manifests/large-manifest", headers={"Accept": MANIFEST})
    assert head.headers["content-length"] == str(len(body)) and head.headers["docker-content-digest"] == sha(body)


def test_push_an_empty_index_a_nested_index_and_a_layerless_artifact(target):
    repo = new_repo()
    empty = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}).encode()
    assert put_manifest(target, repo, sha(empty), empty, INDEX).status_code == 201
    nested = json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                         "manifests": [{"mediaType": INDEX, "digest": sha(empty), "size": len(empty)}]}).encode()
    assert put_manifest(target, repo, "index-of-index", nested, INDEX).status_code == 201
    config = push_blob(target, repo, b"{}")
    artifact = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": ARTIFACT,
                           "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                           "layers": [{"mediaType": EMPTY, "digest": config, "size": 2}]}).encode()
    assert put_manifest(target, repo, "artifact-without-layers", artifact).status_code == 201
    for ref, body, media_type in (("index-of-index", nested, INDEX), (sha(empty), empty, INDEX),
                                  ("artifact-without-layers", artifact, MANIFEST)):
        got = target.http.get(f"/v2/{repo}/manifests/{ref}", headers=[("Accept", INDEX), ("Accept", MANIFEST)])
        assert got.content == body and got.headers["content-type"] == media_type


def test_push_manifest_by_digest_with_tag_parameters(target):
    repo = new_repo()
    body = image(target, repo, b"tag parameters")
    r = target.http.put(f"/v2/{repo}/manifests/{sha(body)}", params=[("tag", "1.2.3"), ("tag", "latest")],
                        content=body, headers={"Content-Type": MANIFEST})
    assert r.status_code == 201
    if target.control:
        assert "oci-tag" not in r.headers, EXPECTED_DIFFERENCES["tag-parameter"]
        return
    tags = [t.strip() for v in r.headers.get_list("oci-tag") for t in v.split(",")]
    assert tags == ["1.2.3", "latest"]
    for tag in tags:
        assert target.http.head(f"/v2/{repo}/manifests/{tag}").headers["docker-content-digest"] == sha(body)


def test_push_manifest_with_a_missing_blob_is_refused(target):
    repo = new_repo()
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                       "config": {"mediaType": EMPTY, "digest": sha(b"{}x"), "size": 3}, "layers": []}).encode()
    r = put_manifest(target, repo, "broken", body)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


def test_push_an_index(target):
    repo = new_repo()
    child = image(target, repo)
    assert put_manifest(target, repo, sha(child), child).status_code == 201
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                        "manifests": [{"mediaType": MANIFEST, "digest": sha(child), "size": len(child)}]}).encode()
    assert put_manifest(target, repo, "multi", index, INDEX).status_code == 201
    got = target.http.get(f"/v2/{repo}/manifests/multi", headers={"Accept": f"{MANIFEST}, {INDEX}"})
    assert got.content == index and got.headers["content-type"] == INDEX


# -- content discovery ---------------------------------------------------------------------------
def test_tags_list_and_pagination(target):
    repo = new_repo()
    body = image(target, repo)
    for tag in ("e", "a", "c", "b", "d"):
        assert put_manifest(target, repo, tag, body).status_code == 201
    listed = target.http.get(f"/v2/{repo}/tags/list").json()
    if target.control:
        assert sorted(listed["tags"]) == ["a", "b", "c", "d", "e"], EXPECTED_DIFFERENCES["tag-order"]
        return
    assert listed == {"name": repo, "tags": ["a", "b", "c", "d", "e"]}
    first = target.http.get(f"/v2/{repo}/tags/list", params={"n": 2})
    assert first.json()["tags"] == ["a", "b"] and 'rel="next"' in first.headers["link"]
    assert target.http.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": "b"}).json()["tags"] == ["c", "d"]
    assert target.http.get(f"/v2/{repo}/tags/list", params={"last": "d"}).json()["tags"] == ["e"]


def test_referrers_listing_and_filter(target):
    repo = new_repo()
    subject = image(target, repo)
    assert put_manifest(target, repo, "v1", subject).status_code == 201
    referrer = image(target, repo, b"signature", artifactType=ARTIFACT, annotations={"k": "v"},
                     subject={"mediaType": MANIFEST, "digest": sha(subject), "size": len(subject)})
    r = put_manifest(target, repo, sha(referrer), referrer)
    assert r.status_code == 201
    listed = target.http.get(f"/v2/{repo}/referrers/{sha(subject)}")
    if target.control:
        assert "oci-subject" not in r.headers, EXPECTED_DIFFERENCES["oci-subject"]
        assert listed.status_code == 404, EXPECTED_DIFFERENCES["referrers"]
        return
    assert r.headers["oci-subject"] == sha(subject)
    assert listed.status_code == 200 and listed.headers["content-type"] == INDEX
    assert listed.json()["manifests"] == [{"mediaType": MANIFEST, "digest": sha(referrer), "size": len(referrer),
                                           "artifactType": ARTIFACT, "annotations": {"k": "v"}}]
    filtered = target.http.get(f"/v2/{repo}/referrers/{sha(subject)}", params={"artifactType": "other/type"})
    assert filtered.json()["manifests"] == [] and filtered.headers["oci-filters-applied"] == "artifactType"
    empty = target.http.get(f"/v2/{repo}/referrers/{sha(os.urandom(8))}")
    assert empty.status_code == 200 and empty.json()["manifests"] == []


# -- content management --------------------------------------------------------------------------
def test_delete_tag_manifest_and_blob(target):
    repo = new_repo()
    body = image(target, repo, b"to be deleted")
    assert put_manifest(target, repo, "doomed", body).status_code == 201
    assert put_manifest(target, repo, "kept", body).status_code == 201
    r = target.http.delete(f"/v2/{repo}/manifests/doomed")
    if target.control:
        assert r.status_code in (400, 405), EXPECTED_DIFFERENCES["delete-tag"]
    else:
        assert r.status_code == 202
        assert target.http.get(f"/v2/{repo}/manifests/doomed").status_code == 404
        assert target.http.get(f"/v2/{repo}/manifests/kept").status_code == 200
    assert target.http.delete(f"/v2/{repo}/manifests/{sha(body)}").status_code == 202
    assert target.http.get(f"/v2/{repo}/manifests/{sha(body)}").status_code == 404
    assert target.http.get(f"/v2/{repo}/manifests/kept").status_code == 404
    layer = sha(b"to be deleted")
    assert target.http.delete(f"/v2/{repo}/blobs/{layer}").status_code == 202
    assert target.http.get(f"/v2/{repo}/blobs/{layer}").status_code == 404
    assert target.http.delete(f"/v2/{repo}/blobs/{layer}").status_code == 404
