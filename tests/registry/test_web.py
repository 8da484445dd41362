"""Browsing: HTML pages in headless Chromium, the JSON API, its OpenAPI document, signatures shown."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.registry.conftest import BUNDLE, EMPTY, MANIFEST, Client, sha

REPOSITORY = "web/hello-keep"


def _push_layout(client: Client, repo: str, layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    body = (layout / "blobs" / "sha256" / digest[7:]).read_bytes()
    doc = json.loads(body)
    for desc in [doc["config"], *doc["layers"]]:
        client.push_blob(repo, (layout / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
    assert client.push_manifest(repo, tag, body).status_code == 201
    return digest


def _key_bundle(subject: str) -> tuple[bytes, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": REPOSITORY, "digest": {"sha256": subject[7:]}}],
                 "predicateType": "https://slsa.dev/provenance/v1",
                 "predicate": {"buildDefinition": {"buildType": "https://enarx.dev/enarx-pkg/build/v1",
                                                   "externalParameters": {"command": "enarx-pkg build"}},
                               "runDetails": {"builder": {"id": "https://enarx.dev/enarx-pkg"}}}}
    bundle = {"mediaType": BUNDLE,
              "verificationMaterial": {"publicKey": {"hint": base64.b64encode(hashlib.sha256(der).digest()).decode()},
                                       "tlogEntries": []},
              "dsseEnvelope": {"payload": base64.b64encode(json.dumps(statement).encode()).decode(),
                               "payloadType": "application/vnd.in-toto+json",
                               "signatures": [{"sig": base64.b64encode(b"\x30" * 70).decode()}]}}
    return json.dumps(bundle).encode(), "key sha256:" + hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="session")
def published(registry_server, oci_layout, testvectors) -> dict[str, str]:
    client = Client(registry_server, registry_server.admin_token)
    digest = _push_layout(client, REPOSITORY, oci_layout, "1.0.0")
    size = len((oci_layout / "blobs" / "sha256" / digest[7:]).read_bytes())
    keyless = (testvectors / "sigstore" / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    client.attach_bundle(REPOSITORY, digest, size, keyless)
    key_bundle, fingerprint = _key_bundle(digest)
    client.attach_bundle(REPOSITORY, digest, size, key_bundle)
    return {"digest": digest, "fingerprint": fingerprint}


def test_pages_in_headless_chromium(registry_server, published, tmp_path):
    from playwright.sync_api import sync_playwright

    auth = {"Authorization": f"Bearer {registry_server.admin_token}"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_context(extra_http_headers=auth, java_script_enabled=False).new_page()
        page.goto(registry_server.url + "/")
        page.fill("input[name=q]", "hello-keep")
        page.click("button[type=submit]")
        assert "q=hello-keep" in page.url
        page.click(f"text={REPOSITORY}")
        assert page.url.endswith(f"/repo/{REPOSITORY}")
        assert "Hello from a keep" in page.content() and "Apache-2.0" in page.content()
        page.click("text=1.0.0")
        text = page.inner_text("main")
        assert published["digest"] in text
        assert 'name = "hello"' in page.inner_text("#enarx-toml")
        assert "application/wasm" in text and "not encrypted" in text
        # a genuine keyless bundle, but about another artifact: shown, and not verified for this package
        assert "extremely-dangerous-oidc-beacon" in text and "not verified: signed statement is about" in text
        assert published["fingerprint"] in text and "not verified: no trusted key configured" in text
        assert "https://slsa.dev/provenance/v1" in text
        assert page.inner_text("#deploy").startswith(
            f"enarx-pkg deploy {registry_server.host}/{REPOSITORY}@{published['digest']}")
        shot = tmp_path / "version.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_json_api_version_and_yank(registry_server, published):
    from registry.admin import yank

    api = httpx.Client(base_url=registry_server.url + "/api/v1",
                       headers={"Authorization": f"Bearer {registry_server.admin_token}"})
    v = api.get(f"/repositories/{REPOSITORY}/-/versions/1.0.0").json()
    assert v["digest"] == published["digest"] and v["yanked"] is False
    sigs = api.get(f"/repositories/{REPOSITORY}/-/versions/1.0.0/signatures").json()["signatures"]
    assert sorted(s["kind"] for s in sigs) == ["key", "keyless"]
    assert api.get("/search", params={"q": "hello-keep"}).json()["results"][0]["name"] == REPOSITORY

    client = Client(registry_server, registry_server.admin_token)
    client.push_image("web/yanked", "2.0.0")
    digest = yank(registry_server._settings(), "web/yanked:2.0.0")
    assert api.get("/repositories/web/yanked/-/versions").json()["versions"] == []
    listed = api.get("/repositories/web/yanked/-/versions", params={"include_yanked": "true"}).json()["versions"]
    assert listed[0]["yanked"] is True
    assert api.get(f"/repositories/web/yanked/-/versions/{digest}").json()["yanked"] is True
    assert client.http.get("/v2/web/yanked/tags/list").json()["tags"] == []
    assert client.http.get("/v2/web/yanked/manifests/2.0.0").status_code == 404
    assert client.http.get(f"/v2/web/yanked/manifests/{digest}").status_code == 200


def test_private_repositories_are_invisible_without_a_token(registry_server, published):
    assert httpx.get(registry_server.url + f"/repo/{REPOSITORY}").status_code == 404
    assert httpx.get(registry_server.url + "/api/v1/search", params={"q": "hello-keep"}).json() == {"results": []}


def test_served_openapi_equals_the_committed_file(registry_server):
    served = httpx.get(registry_server.url + "/api/v1/openapi.json").json()
    assert served == json.loads((REPO / "schemas" / "registry-api.openapi.json").read_text())


def test_schemathesis_finds_no_server_errors(registry_server, published):
    import schemathesis
    from hypothesis import HealthCheck, given, seed, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(registry_server.url + "/api/v1/openapi.json")
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @seed(20261126)
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            for headers in ({}, {"Authorization": f"Bearer {registry_server.admin_token}"}):
                response = case.call(base_url=registry_server.url, headers=headers)
                try:
                    case.validate_response(response, checks=(not_a_server_error,))
                except Exception as exc:
                    failures.append((case.path, case.path_parameters, case.query, str(exc)[:300]))

        check()
    assert failures == []


def test_login_page_challenges_for_basic_credentials(registry_server):
    r = httpx.get(registry_server.url + "/login")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic ")
    r = httpx.get(registry_server.url + "/login", auth=("me", registry_server.admin_token))
    assert r.status_code == 303


def test_encrypted_layers_and_refused_signatures_are_shown_as_such(registry_server, testvectors):
    client = Client(registry_server, registry_server.admin_token)
    config = client.push_blob("web/sealed", b"{}")
    layer = client.push_blob("web/sealed", b"ciphertext")
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": [{"mediaType": "application/wasm+encrypted", "digest": layer, "size": 10}]}
    body = json.dumps(manifest).encode()
    assert client.push_manifest("web/sealed", "1.0.0", body).status_code == 201
    forged = (testvectors / "sigstore" / "negative" / "bundle_no_log_entry.txt.sigstore").read_bytes()
    client.attach_bundle("web/sealed", sha(body), len(body), forged)
    api = httpx.Client(base_url=registry_server.url + "/api/v1",
                       headers={"Authorization": f"Bearer {registry_server.admin_token}"})
    v = api.get("/repositories/web/sealed/-/versions/1.0.0").json()
    assert v["encrypted"] is True and v["layers"][0]["encrypted"] is True and v["enarx_toml"] is None
    [sig] = v["signatures"]
    assert sig["verified"] is False and sig["note"].startswith("not verified")
    page = httpx.get(registry_server.url + "/repo/web/sealed/-/versions/1.0.0",
                     headers={"Authorization": f"Bearer {registry_server.admin_token}"}).text
    assert "encrypted</span>" in page and "not verified" in page
