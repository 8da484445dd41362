"""OCI distribution v1.1 conformance, against both metadata backends (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid

from tests.registry.conftest import EMPTY, INDEX, MANIFEST, Client, sha


def repo() -> str:
    return f"proto/r{uuid.uuid4().hex[:10]}"


def test_base_endpoint_requires_credentials_and_accepts_a_token(server, admin):
    import httpx

    r = httpx.get(server.url + "/v2/")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith(f'Bearer realm="{server.url}/token"')
    assert admin.http.get("/v2/").status_code == 200


def test_monolithic_upload_then_head_and_get(admin):
    name, data = repo(), b"x" * 5000
    digest = admin.push_blob(name, data)
    head = admin.http.head(f"/v2/{name}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == "5000"
    assert head.headers["docker-content-digest"] == digest
    assert admin.http.get(f"/v2/{name}/blobs/{digest}").content == data


def test_empty_blob_by_post_put_and_by_chunks(admin):
    name, empty = repo(), b""
    admin.push_blob(name, empty)
    location = admin.http.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    assert admin.http.patch(location, content=b"").status_code == 202
    assert admin.http.put(location, params={"digest": sha(empty)}).status_code == 201
    head = admin.http.head(f"/v2/{name}/blobs/{sha(empty)}")
    assert head.status_code == 200 and head.headers["content-length"] == "0"
    got = admin.http.get(f"/v2/{name}/blobs/{sha(empty)}")
    assert got.status_code == 200 and got.content == b""


def test_range_request_returns_206_with_content_range(admin):
    name = repo()
    digest = admin.push_blob(name, bytes(range(256)) * 4)
    r = admin.http.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["content-range"] == "bytes 10-19/1024"
    assert r.content == bytes(range(10, 20))


def test_post_then_put_upload(admin):
    name, data = repo(), b"post-put"
    r = admin.http.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["location"]
    r = admin.http.put(location, params={"digest": sha(data)}, content=data)
    assert r.status_code == 201 and r.headers["docker-content-digest"] == sha(data)


def test_chunked_upload_with_status_and_resume(admin):
    name, data = repo(), b"abcdefghij" * 100
    location = admin.http.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    r = admin.http.patch(location, content=data[:400], headers={"Content-Range": "0-399"})
    assert r.status_code == 202 and r.headers["range"] == "0-399"
    status = admin.http.get(location)
    assert status.status_code == 204 and status.headers["range"] == "0-399"
    r = admin.http.patch(location, content=data[400:], headers={"Content-Range": f"400-{len(data) - 1}"})
    assert r.headers["range"] == f"0-{len(data) - 1}"
    r = admin.http.put(location, params={"digest": sha(data)})
    assert r.status_code == 201
    assert admin.http.get(f"/v2/{name}/blobs/{sha(data)}").content == data


def test_upload_with_an_unsupported_digest_algorithm_is_refused_before_any_bytes(admin):
    name = repo()
    r = admin.http.post(f"/v2/{name}/blobs/uploads/", params={"digest-algorithm": "sha512"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID" and "location" not in r.headers
    ok = admin.http.post(f"/v2/{name}/blobs/uploads/", params={"digest-algorithm": "sha256"})
    assert ok.status_code == 202 and "/blobs/uploads/" in ok.headers["location"]


def test_cancelled_upload_is_gone(admin):
    name = repo()
    location = admin.http.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    assert admin.http.delete(location).status_code == 204
    r = admin.http.get(location)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_cross_repository_mount(admin):
    source, target, data = repo(), repo(), b"mount me"
    digest = admin.push_blob(source, data)
    r = admin.http.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source})
    assert r.status_code == 201 and r.headers["location"] == f"/v2/{target}/blobs/{digest}"
    assert admin.http.get(f"/v2/{target}/blobs/{digest}").content == data


def test_mount_of_unknown_blob_falls_back_to_an_upload(admin):
    r = admin.http.post(f"/v2/{repo()}/blobs/uploads/", params={"mount": sha(b"nope"), "from": repo()})
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["location"]


def test_manifest_by_tag_and_digest_with_docker_content_digest(admin):
    name = repo()
    digest, body = admin.push_image(name, "1.0.0")
    for ref in ("1.0.0", digest):
        r = admin.http.get(f"/v2/{name}/manifests/{ref}", headers={"Accept": MANIFEST})
        assert r.status_code == 200 and r.content == body
        assert r.headers["docker-content-digest"] == digest and r.headers["content-type"] == MANIFEST
        head = admin.http.head(f"/v2/{name}/manifests/{ref}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(body))


def test_content_negotiation_refuses_unacceptable_type(admin):
    name = repo()
    admin.push_image(name, "latest")
    r = admin.http.get(f"/v2/{name}/manifests/latest",
                       headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def _negotiated(admin: Client, name: str, digest: str, accept: list[str]) -> set[int]:
    """Statuses of GET and HEAD, by tag and by digest, sending each of ``accept`` as its own Accept line."""
    return {admin.http.request(method, f"/v2/{name}/manifests/{ref}", headers=[("Accept", a) for a in accept]
                               ).status_code for ref in ("1.0.0", digest) for method in ("GET", "HEAD")}


def test_accept_with_q_zero_refuses_the_type(admin):
    name = repo()
    digest, _ = admin.push_image(name, "1.0.0")
    assert _negotiated(admin, name, digest, [f"{MANIFEST};q=0"]) == {404}
    assert _negotiated(admin, name, digest, [f"{MANIFEST}; Q=0.000"]) == {404}
    assert _negotiated(admin, name, digest, ["*/*;q=0"]) == {404}
    assert _negotiated(admin, name, digest, [f"{INDEX}, {MANIFEST};q=0, */*;q=0.1"]) == {404}  # most specific wins


def test_accept_lines_and_lists_with_weights_allow_the_type(admin):
    name = repo()
    digest, _ = admin.push_image(name, "1.0.0")
    assert _negotiated(admin, name, digest, [INDEX, f"{MANIFEST};q=0.9"]) == {200}
    assert _negotiated(admin, name, digest, [f"{INDEX};q=1, {MANIFEST};q=0.5"]) == {200}
    assert _negotiated(admin, name, digest, [f"{MANIFEST};q=0.5", "application/*;q=0"]) == {200}
    assert _negotiated(admin, name, digest, ["application/*;q=0.2", "text/plain"]) == {200}
    assert _negotiated(admin, name, digest, [INDEX, "application/vnd.docker.distribution.manifest.v2+json"]) == {404}


def test_accept_media_types_are_case_insensitive(admin):
    name = repo()
    digest, _ = admin.push_image(name, "1.0.0")
    assert _negotiated(admin, name, digest, [MANIFEST.upper()]) == {200}
    assert _negotiated(admin, name, digest, ["Application/*"]) == {200}


def test_head_answers_what_get_answers_without_a_body(admin):
    name = repo()
    digest, body = admin.push_image(name, "1.0.0")
    keys = ("content-type", "content-length", "docker-content-digest")
    for ref in ("1.0.0", digest):
        get = admin.http.get(f"/v2/{name}/manifests/{ref}", headers={"Accept": f"{INDEX}, {MANIFEST}"})
        head = admin.http.head(f"/v2/{name}/manifests/{ref}", headers={"Accept": f"{INDEX}, {MANIFEST}"})
        assert get.content == body and head.content == b""
        assert {k: head.headers.get(k) for k in keys} == {k: get.headers.get(k) for k in keys}
        assert head.headers["content-length"] == str(len(body))
    blob = admin.push_blob(name, b"blob bytes")
    get, head = admin.http.get(f"/v2/{name}/blobs/{blob}"), admin.http.head(f"/v2/{name}/blobs/{blob}")
    assert head.content == b"" and head.headers["content-length"] == get.headers["content-length"] == "10"
    assert head.headers["docker-content-digest"] == get.headers["docker-content-digest"] == blob


def test_manifest_content_type_is_case_insensitive(admin):
    name = repo()
    body = _unpushed_manifest(admin, name, b"shouted content type")
    assert admin.push_manifest(name, "loud", body, MANIFEST.upper()).status_code == 201
    untyped = json.loads(body)
    del untyped["mediaType"]
    plain = json.dumps(untyped).encode()
    assert admin.push_manifest(name, "plain", plain, "Application/Vnd.Oci.Image.Manifest.V1+Json").status_code == 201
    for tag, expected in (("loud", body), ("plain", plain)):
        got = admin.http.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": MANIFEST})
        assert got.content == expected and got.headers["content-type"] == MANIFEST


def test_image_index_is_accepted(admin):
    name = repo()
    digest, body = admin.push_image(name, "amd64")
    index = {"schemaVersion": 2, "mediaType": INDEX,
             "manifests": [{"mediaType": MANIFEST, "digest": digest, "size": len(body)}]}
    r = admin.push_manifest(name, "multi", index, INDEX)
    assert r.status_code == 201
    assert admin.http.get(f"/v2/{name}/manifests/multi").headers["content-type"] == INDEX


def test_tags_list_paginates_with_link_header(admin):
    name = repo()
    for tag in ("a", "b", "c", "d", "e"):
        admin.push_image(name, tag)
    r = admin.http.get(f"/v2/{name}/tags/list", params={"n": 2})
    assert r.json() == {"name": name, "tags": ["a", "b"]}
    assert r.headers["link"] == f'</v2/{name}/tags/list?n=2&last=b>; rel="next"'
    r = admin.http.get(f"/v2/{name}/tags/list", params={"n": 2, "last": "d"})
    assert r.json()["tags"] == ["e"] and "link" not in r.headers


SPEC_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
              "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
              "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"}


def test_client_error_bodies_carry_only_the_spec_codes_with_the_reason_in_detail(admin):
    name = repo()
    _, body = admin.push_image(name, "1.0.0")
    bad_tag = admin.push_manifest(name, "-not-a-tag", body)
    bad_page = admin.http.get(f"/v2/{name}/tags/list", params={"n": "ten"})
    location = admin.http.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    out_of_order = admin.http.patch(location, content=b"late", headers={"Content-Range": "100-103"})
    for r, reason in ((bad_tag, "TAG_INVALID"), (bad_page, "PAGINATION_NUMBER_INVALID"),
                      (out_of_order, "RANGE_INVALID")):
        [error] = r.json()["errors"]
        assert 400 <= r.status_code < 500 and error["code"] in SPEC_CODES, error
        assert error["detail"] == {"reason": reason}


def test_a_page_size_over_the_limit_is_served_not_refused(admin):
    name = repo()
    admin.push_image(name, "1.0.0")
    r = admin.http.get(f"/v2/{name}/tags/list", params={"n": 10**9})
    assert r.status_code == 200 and r.json()["tags"] == ["1.0.0"] and "link" not in r.headers


def test_names_of_255_and_tags_of_128_characters_work_one_more_is_refused(admin):
    stem = repo()
    longest = stem + "/" + "n" * (254 - len(stem))
    assert len(longest) == 255
    digest, body = admin.push_image(longest, "t" * 128)
    got = admin.http.get(f"/v2/{longest}/manifests/{'t' * 128}")
    assert got.status_code == 200 and got.headers["docker-content-digest"] == digest
    assert admin.http.get(f"/v2/{longest}/tags/list").json() == {"name": longest, "tags": ["t" * 128]}
    too_long = admin.http.post(f"/v2/{longest}x/blobs/uploads/")
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["code"] == "NAME_INVALID"
    assert admin.push_manifest(longest, "t" * 129, body).status_code == 400
    assert admin.http.get(f"/v2/{longest}/manifests/{'t' * 129}").status_code == 404


def test_catalog_paginates(admin):
    names = sorted(repo() for _ in range(3))
    for name in names:
        admin.push_image(name, "1.0.0")
    all_repos = admin.http.get("/v2/_catalog").json()["repositories"]
    assert set(names) <= set(all_repos)
    r = admin.http.get("/v2/_catalog", params={"n": 1, "last": names[0]})
    assert len(r.json()["repositories"]) == 1 and 'rel="next"' in r.headers["link"]


def test_referrers_with_artifact_type_filter_and_oci_subject(admin):
    name = repo()
    subject, body = admin.push_image(name, "1.0.0")
    config = admin.push_blob(name, b"{}")
    sig_layer = admin.push_blob(name, b'{"bundle": true}')
    referrer = {"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": "application/vnd.example.sig",
                "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": [{"mediaType": "application/json", "digest": sig_layer, "size": 16}],
                "subject": {"mediaType": MANIFEST, "digest": subject, "size": len(body)},
                "annotations": {"k": "v"}}
    r = admin.push_manifest(name, sha(json.dumps(referrer).encode()), referrer)
    assert r.status_code == 201 and r.headers["oci-subject"] == subject
    listed = admin.http.get(f"/v2/{name}/referrers/{subject}")
    assert listed.headers["content-type"] == INDEX
    [entry] = listed.json()["manifests"]
    assert entry["artifactType"] == "application/vnd.example.sig" and entry["annotations"] == {"k": "v"}
    filtered = admin.http.get(f"/v2/{name}/referrers/{subject}", params={"artifactType": "other/type"})
    assert filtered.json()["manifests"] == [] and filtered.headers["oci-filters-applied"] == "artifactType"


def test_referrer_with_empty_artifact_type_is_listed_under_its_config_type(admin):
    name = repo()
    subject, body = admin.push_image(name, "1.0.0")
    config = admin.push_blob(name, b"{}")
    referrer = {"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": "",
                "config": {"mediaType": "application/vnd.example.sbom.config", "digest": config, "size": 2},
                "layers": [], "subject": {"mediaType": MANIFEST, "digest": subject, "size": len(body)}}
    assert admin.push_manifest(name, sha(json.dumps(referrer).encode()), referrer).status_code == 201
    index = {"schemaVersion": 2, "mediaType": INDEX, "artifactType": "", "manifests": [],
             "subject": {"mediaType": MANIFEST, "digest": subject, "size": len(body)}}
    assert admin.push_manifest(name, sha(json.dumps(index).encode()), index, INDEX).status_code == 201
    listed = {m["mediaType"]: m for m in admin.http.get(f"/v2/{name}/referrers/{subject}").json()["manifests"]}
    assert listed[MANIFEST]["artifactType"] == "application/vnd.example.sbom.config"
    assert "artifactType" not in listed[INDEX]  # an index without one has none
    filtered = admin.http.get(f"/v2/{name}/referrers/{subject}",
                              params={"artifactType": "application/vnd.example.sbom.config"}).json()["manifests"]
    assert [m["digest"] for m in filtered] == [listed[MANIFEST]["digest"]]


def test_subject_may_be_absent(admin):
    name = repo()
    config = admin.push_blob(name, b"{}")
    missing_subject = sha(b"not pushed")
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": [], "subject": {"mediaType": MANIFEST, "digest": missing_subject, "size": 10}}
    assert admin.push_manifest(name, "sig", manifest).status_code == 201
    assert len(admin.http.get(f"/v2/{name}/referrers/{missing_subject}").json()["manifests"]) == 1


def test_delete_manifest_tag_and_blob(admin):
    name = repo()
    digest, _ = admin.push_image(name, "temp")
    assert admin.http.delete(f"/v2/{name}/manifests/temp").status_code == 202
    assert admin.http.get(f"/v2/{name}/manifests/temp").status_code == 404
    assert admin.http.get(f"/v2/{name}/manifests/{digest}").status_code == 200
    assert admin.http.delete(f"/v2/{name}/manifests/{digest}").status_code == 202
    assert admin.http.get(f"/v2/{name}/manifests/{digest}").status_code == 404
    blob = admin.push_blob(name, b"delete me")
    assert admin.http.delete(f"/v2/{name}/blobs/{blob}").status_code == 202
    assert admin.http.head(f"/v2/{name}/blobs/{blob}").status_code == 404


def test_token_endpoint_issues_bearer_for_granted_scope(server):
    import httpx

    name = repo()
    token = server.token(f"push:{name}")
    r = httpx.get(server.url + "/token", params={"service": server.host, "scope": f"repository:{name}:pull,push"},
                  auth=("anyone", token))
    bearer = r.json()["token"]
    client = Client(server, bearer)
    assert client.push_blob(name, b"via bearer")
    other = client.http.post(f"/v2/{repo()}/blobs/uploads/")
    assert other.status_code == 403


def test_suffix_and_unsatisfiable_ranges(admin):
    name = repo()
    digest = admin.push_blob(name, b"0123456789")
    r = admin.http.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=-3"})
    assert r.status_code == 206 and r.content == b"789" and r.headers["content-range"] == "bytes 7-9/10"
    r = admin.http.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=50-60"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */10"


def test_manifest_put_by_digest_must_match_the_body(admin):
    name = repo()
    config = admin.push_blob(name, b"{}")
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": []}
    r = admin.push_manifest(name, sha(b"something else"), manifest)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


def _unpushed_manifest(admin: Client, name: str, payload: bytes) -> bytes:
    config, layer = admin.push_blob(name, b"{}"), admin.push_blob(name, payload)
    return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                       "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                       "layers": [{"mediaType": "application/wasm", "digest": layer, "size": len(payload)}]}).encode()


def test_manifest_put_by_digest_sets_each_tag_parameter_and_says_so(admin):
    name = repo()
    body = _unpushed_manifest(admin, name, b"tagged by parameters")
    r = admin.http.put(f"/v2/{name}/manifests/{sha(body)}", params=[("tag", t) for t in ("1.2.3", "1.2", "latest")],
                       content=body, headers={"Content-Type": MANIFEST})
    assert r.status_code == 201
    assert [t.strip() for t in r.headers["oci-tag"].split(",")] == ["1.2.3", "1.2", "latest"]
    for tag in ("1.2.3", "1.2", "latest"):
        assert admin.http.head(f"/v2/{name}/manifests/{tag}").headers["docker-content-digest"] == sha(body)
    assert admin.http.get(f"/v2/{name}/tags/list").json()["tags"] == ["1.2", "1.2.3", "latest"]


def test_manifest_put_with_an_invalid_tag_parameter_records_nothing(admin):
    name = repo()
    body = _unpushed_manifest(admin, name, b"one bad tag")
    r = admin.http.put(f"/v2/{name}/manifests/{sha(body)}", params=[("tag", "good"), ("tag", "-bad")],
                       content=body, headers={"Content-Type": MANIFEST})
    assert r.status_code == 400 and r.json()["errors"][0]["detail"] == {"reason": "TAG_INVALID"}
    assert admin.http.head(f"/v2/{name}/manifests/good").status_code == 404
    assert admin.http.head(f"/v2/{name}/manifests/{sha(body)}").status_code == 404


def test_tag_parameter_cannot_move_an_immutable_version_tag(admin):
    name = repo()
    first, _ = admin.push_image(name, "1.0.0")
    body = _unpushed_manifest(admin, name, b"an impostor")
    r = admin.http.put(f"/v2/{name}/manifests/{sha(body)}", params=[("tag", "latest"), ("tag", "1.0.0")],
                       content=body, headers={"Content-Type": MANIFEST})
    assert r.status_code == 409 and r.json()["errors"][0]["code"] == "DENIED" and "oci-tag" not in r.headers
    assert admin.http.head(f"/v2/{name}/manifests/1.0.0").headers["docker-content-digest"] == first
    assert admin.http.head(f"/v2/{name}/manifests/latest").status_code == 404  # the whole push was refused
    assert admin.http.head(f"/v2/{name}/manifests/{sha(body)}").status_code == 404


def test_two_replicas_share_one_postgresql(postgres_registry, tmp_path):
    from tests.conftest import free_port
    from tests.fixtures.registry import RegistryServer

    port = free_port()
    replica = RegistryServer(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", postgres_registry.admin_token,
                             postgres_registry.data_dir, postgres_registry.database, port)
    replica.start()
    try:
        _, body = Client(postgres_registry, postgres_registry.admin_token).push_image("replica/app", "1.0.0")
        other = Client(replica, replica.admin_token)
        assert other.http.get("/v2/replica/app/manifests/1.0.0").content == body
        assert "1.0.0" in other.http.get("/v2/replica/app/tags/list").json()["tags"]
    finally:
        replica.stop()
