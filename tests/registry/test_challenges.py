"""Auth challenges, scopes and error codes as real clients meet them (issue 14, defects 3-5 and 7)."""

from __future__ import annotations

import socket
import stat
import time
import uuid

import httpx

from tests.registry.conftest import Client, sha


def _repo(prefix: str) -> str:
    return f"{prefix}/r{uuid.uuid4().hex[:10]}"


def _bearer(server, token: str, scope: str) -> str:
    r = httpx.get(server.url + "/token", params={"scope": scope}, auth=("x", token))
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_star_scope_grants_what_the_token_allows_and_no_more(server):
    token = server.token("pull:scoped/*", "push:scoped/*", "delete:scoped/*")
    bearer = _bearer(server, token, "repository:scoped/app:*")
    admin = Client(server, server.admin_token)
    digest, _ = admin.push_image("scoped/app", "latest")
    client = Client(server, bearer)
    assert client.http.get("/v2/scoped/app/manifests/latest").status_code == 200
    assert client.http.delete(f"/v2/scoped/app/manifests/{digest}").status_code == 202
    pull_only = _bearer(server, server.token("pull:scoped/*"), "repository:scoped/app:*")
    r = Client(server, pull_only).http.delete(f"/v2/scoped/app/manifests/{digest}")
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"


def test_manifest_by_invalid_reference_is_404_manifest_unknown(admin):
    name = _repo("proto")
    admin.push_image(name, "1.0.0")
    for ref in ("-not-a-tag", "a" * 200, "sha256:nothex", "md5:" + "0" * 32):
        for method in ("GET", "HEAD"):
            r = admin.http.request(method, f"/v2/{name}/manifests/{ref}")
            assert r.status_code == 404, (method, ref)
            if method == "GET":
                assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_catalog_challenges_an_anonymous_client_that_then_sees_its_repositories(server):
    admin = Client(server, server.admin_token)
    name = _repo("catalog")
    admin.push_image(name, "1.0.0")
    hidden = _repo("private")
    admin.push_image(hidden, "1.0.0")
    r = httpx.get(server.url + "/v2/_catalog")
    assert r.status_code == 401
    assert 'scope="registry:catalog:*"' in r.headers["www-authenticate"]
    bearer = _bearer(server, server.token("pull:catalog/*"), "registry:catalog:*")
    listed = httpx.get(server.url + "/v2/_catalog", headers={"Authorization": f"Bearer {bearer}"}).json()
    assert name in listed["repositories"]
    assert hidden not in listed["repositories"]


def test_mount_challenge_asks_for_pull_on_the_source(server):
    r = httpx.post(server.url + "/v2/mnt/dest/blobs/uploads/",
                   params={"mount": "sha256:" + "a" * 64, "from": "mnt/source"})
    assert r.status_code == 401
    scope = r.headers["www-authenticate"].split('scope="', 1)[1].rstrip('"')
    assert scope.split(" ") == ["repository:mnt/dest:pull,push", "repository:mnt/source:pull"]


def test_a_mount_through_the_challenge_mounts(server):
    admin = Client(server, server.admin_token)
    blob = admin.push_blob("mnt/origin", b"mounted, not uploaded")
    token = server.token("pull:mnt/*", "push:mnt/*")
    scopes = ["repository:mnt/copy:pull,push", "repository:mnt/origin:pull"]
    r = httpx.get(server.url + "/token", params=[("scope", s) for s in scopes], auth=("x", token))
    client = Client(server, r.json()["token"])
    r = client.http.post("/v2/mnt/copy/blobs/uploads/", params={"mount": blob, "from": "mnt/origin"})
    assert r.status_code == 201 and r.headers["docker-content-digest"] == blob


def test_admin_commands_create_a_private_data_directory(tmp_path):
    from registry.admin import list_tokens
    from registry.settings import Settings

    fresh = tmp_path / "new-data"
    list_tokens(Settings(fresh))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_blobs_without_a_manifest_list_no_repository(admin):
    name = _repo("interrupted")
    admin.push_blob(name, b"a layer whose manifest never came")
    assert name not in admin.http.get("/v2/_catalog").json()["repositories"]
    found = admin.http.get("/api/v1/search", params={"q": name}).json()["results"]
    assert found == []


def test_a_client_going_away_mid_patch_is_one_log_line_and_resumable(registry_server):
    admin = Client(registry_server, registry_server.admin_token)
    location = admin.http.post("/v2/gone/app/blobs/uploads/").headers["location"]
    sent = b"z" * 300_000
    with socket.create_connection(("127.0.0.1", registry_server.port)) as s:
        s.sendall((f"PATCH {location} HTTP/1.1\r\nHost: {registry_server.host}\r\n"
                   f"Authorization: Bearer {registry_server.admin_token}\r\n"
                   f"Content-Length: {10 * len(sent)}\r\n\r\n").encode() + sent)
        time.sleep(0.5)
    for _ in range(100):
        have = admin.http.get(location).headers.get("range")
        if have == f"0-{len(sent) - 1}":
            break
        time.sleep(0.05)
    assert have == f"0-{len(sent) - 1}"  # what arrived is kept
    rest = b"y" * 1000
    r = admin.http.put(location, params={"digest": sha(sent + rest)}, content=rest,
                       headers={"Content-Range": f"{len(sent)}-{len(sent) + len(rest) - 1}"})
    assert r.status_code == 201, r.text
    log = (registry_server.data_dir / "server.log").read_text()
    assert "the client went away mid-request" in log and "Traceback" not in log
