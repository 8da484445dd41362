"""Bad input and attacks, one test each (against both metadata backends)."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.registry.conftest import EMPTY, MANIFEST, Client, sha


def repo() -> str:
    return f"attack/r{uuid.uuid4().hex[:10]}"


def _code(r: httpx.Response) -> str:
    return r.json()["errors"][0]["code"]


def test_non_oci_repository_names_are_refused(admin):
    for bad in ("UPPER/case", "a//b", "-lead", "trail-", "a..b", "x" * 300):
        r = admin.http.post(f"/v2/{bad}/blobs/uploads/")
        assert r.status_code == 400 and _code(r) == "NAME_INVALID", bad


def test_path_traversal_in_name_is_refused(admin, server):
    r = admin.http.get("/v2/../../etc/passwd/blobs/" + sha(b"x"))
    assert r.status_code in (400, 404)
    raw = httpx.get(server.url + "/v2/a/%2e%2e/%2e%2e/manifests/latest",
                    headers={"Authorization": f"Bearer {server.admin_token}"})
    assert raw.status_code == 400 and _code(raw) == "NAME_INVALID"


def test_path_traversal_in_digest_is_refused(admin):
    name = repo()
    for bad in ("sha256:../../../../etc/passwd", "sha256:..%2f..%2fregistry.db", "sha256:" + "A" * 64):
        r = admin.http.get(f"/v2/{name}/blobs/{bad}")
        assert r.status_code in (400, 404), bad
        if r.status_code == 400:
            assert _code(r) == "DIGEST_INVALID"


def test_unsupported_digest_algorithm(admin):
    name = repo()
    digest = "sha512:" + "ab" * 64
    r = admin.http.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=b"x")
    assert r.status_code == 400 and _code(r) == "DIGEST_INVALID"
    assert "unsupported digest algorithm" in r.json()["errors"][0]["message"]


def test_wrong_digest_is_refused_and_nothing_is_stored(admin):
    name, claimed = repo(), sha(b"the real content")
    r = admin.http.post(f"/v2/{name}/blobs/uploads/", params={"digest": claimed}, content=b"other content")
    assert r.status_code == 400 and _code(r) == "DIGEST_INVALID"
    assert admin.http.head(f"/v2/{name}/blobs/{claimed}").status_code == 404
    assert admin.http.head(f"/v2/{name}/blobs/{sha(b'other content')}").status_code == 404


def test_out_of_order_content_range_is_416(admin):
    name = repo()
    location = admin.http.post(f"/v2/{name}/blobs/uploads/").headers["location"]
    admin.http.patch(location, content=b"0123456789", headers={"Content-Range": "0-9"})
    r = admin.http.patch(location, content=b"abc", headers={"Content-Range": "20-22"})
    assert r.status_code == 416 and r.headers["range"] == "0-9"
    assert admin.http.get(location).headers["range"] == "0-9"


def test_oversized_manifest_is_413(admin):
    name = repo()
    body = json.dumps({"schemaVersion": 2, "pad": "x" * (4 * 1024 * 1024)}).encode()
    r = admin.push_manifest(name, "big", body)
    assert r.status_code == 413 and _code(r) == "MANIFEST_INVALID"


def test_manifest_referencing_missing_blob(admin):
    name = repo()
    config = admin.push_blob(name, b"{}")
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": [{"mediaType": "application/wasm", "digest": sha(b"never pushed"), "size": 12}]}
    r = admin.push_manifest(name, "1.0.0", manifest)
    assert r.status_code == 400 and _code(r) == "MANIFEST_BLOB_UNKNOWN"  # 400, as CNCF distribution
    assert admin.http.get(f"/v2/{name}/manifests/1.0.0").status_code == 404


def test_blob_of_another_repository_cannot_be_referenced(admin, server):
    owner, thief = repo(), repo()
    secret_layer = admin.push_blob(owner, b"private layer")
    pusher = Client(server, server.token(f"push:{thief}"))
    config = pusher.push_blob(thief, b"{}")
    manifest = {"schemaVersion": 2, "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": [{"mediaType": "application/wasm", "digest": secret_layer, "size": 13}]}
    assert _code(pusher.push_manifest(thief, "steal", manifest)) == "MANIFEST_BLOB_UNKNOWN"
    assert pusher.http.get(f"/v2/{thief}/blobs/{secret_layer}").status_code == 404


def test_wrong_token_is_401(server):
    name = repo()
    for auth in ({"Authorization": "Bearer enxr_deadbeef_wrong"}, {"Authorization": "Basic eDp3cm9uZw=="},
                 {"Authorization": "Bearer enxb.e30.forged"}):
        r = httpx.get(f"{server.url}/v2/{name}/tags/list", headers=auth)
        assert r.status_code == 401 and "www-authenticate" in r.headers


def test_revoked_token_is_401(server):
    from registry.admin import revoke_token

    name = repo()
    token = server.token(f"pull:{name}")
    tid = token.split("_")[1]
    revoke_token(server._settings(), tid)
    r = httpx.get(f"{server.url}/v2/{name}/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_push_with_a_pull_token_is_denied(server):
    name = repo()
    client = Client(server, server.token(f"pull:{name}"))
    r = client.http.post(f"/v2/{name}/blobs/uploads/", params={"digest": sha(b"x")}, content=b"x")
    assert r.status_code == 403 and _code(r) == "DENIED"


def test_token_for_another_repository_is_denied(server, admin):
    mine, theirs = repo(), repo()
    admin.push_image(theirs, "1.0.0")
    client = Client(server, server.token(f"push:{mine}"))
    assert client.http.get(f"/v2/{theirs}/manifests/1.0.0").status_code == 403
    assert client.http.post(f"/v2/{theirs}/blobs/uploads/").status_code == 403


def test_prefix_scope_does_not_match_sibling_prefix(server):
    client = Client(server, server.token("push:attack/team/*"))
    assert client.http.post("/v2/attack/team/app/blobs/uploads/").status_code == 202
    assert client.http.post("/v2/attack/teamevil/app/blobs/uploads/").status_code == 403


def test_bearer_token_cannot_exceed_the_api_token(server):
    name = repo()
    token = server.token(f"pull:{name}")
    r = httpx.get(server.url + "/token", params={"scope": f"repository:{name}:pull,push,delete"},
                  auth=("x", token))
    client = Client(server, r.json()["token"])
    refused = client.http.post(f"/v2/{name}/blobs/uploads/")
    assert refused.status_code == 403
    # the challenge names the scope the operation needs, so a client can ask again; asking again
    # cannot raise the grant above what the API token holds
    assert f'scope="repository:{name}:pull,push"' in refused.headers["www-authenticate"]
    again = httpx.get(server.url + "/token", params={"scope": f"repository:{name}:pull,push"}, auth=("x", token))
    assert Client(server, again.json()["token"]).http.post(f"/v2/{name}/blobs/uploads/").status_code == 403


def test_api_token_without_the_action_is_denied(server):
    name = repo()
    client = Client(server, server.token(f"pull:{name}"))
    assert client.http.post(f"/v2/{name}/blobs/uploads/").status_code == 403


def test_tampered_bearer_token_is_refused(server):
    name = repo()
    r = httpx.get(server.url + "/token", params={"scope": f"repository:{name}:pull"}, auth=("x", server.token("admin")))
    body, _, mac = r.json()["token"].rpartition(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    r = httpx.get(f"{server.url}/v2/{name}/tags/list", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_version_tags_are_immutable(admin):
    name = repo()
    admin.push_image(name, "1.0.0", payload=b"first")
    config = admin.push_blob(name, b"{}")
    layer = admin.push_blob(name, b"second")
    manifest = {"schemaVersion": 2, "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": [{"mediaType": "application/wasm", "digest": layer, "size": 6}]}
    r = admin.push_manifest(name, "1.0.0", manifest)
    assert r.status_code == 409 and _code(r) == "DENIED"
    assert "immutable" in r.json()["errors"][0]["message"]
    assert admin.push_manifest(name, "latest", manifest).status_code == 201  # moving tags move


def test_anonymous_pull_follows_the_repository_setting(server, admin):
    from registry.admin import set_repo

    name = repo()
    admin.push_image(name, "1.0.0")
    assert httpx.get(f"{server.url}/v2/{name}/manifests/1.0.0").status_code == 401
    set_repo(server._settings(), name, anonymous_pull=1)
    assert httpx.get(f"{server.url}/v2/{name}/manifests/1.0.0").status_code == 200
    assert httpx.post(f"{server.url}/v2/{name}/blobs/uploads/").status_code == 401


def test_host_header_cannot_inject_into_the_auth_challenge(server):
    r = httpx.get(server.url + "/v2/", headers={"Host": 'evil", realm="http://attacker'})
    assert r.status_code in (400, 401)
    if r.status_code == 401:
        assert "attacker" not in r.headers["www-authenticate"]
