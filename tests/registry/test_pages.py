"""The web pages and JSON API as a new user meets them (issue 14): Chromium at 1280x900, trusted signers,
paging, the deploy line, sign-in state, and the access log."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.fixtures.registry import RegistryServer, start_registry
from tests.registry.conftest import EMPTY, MANIFEST, Client, sha

TESTVECTOR = "a.dsse.staging-rekor-v2.txt.sigstore.json"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _package(client: Client, repo: str, tag: str, *, encrypted: bool = False, created: str | None = None,
             description: str = "A package for the page tests") -> tuple[str, int]:
    config = client.push_blob(repo, b"{}")
    layer = client.push_blob(repo, f"wasm of {repo}:{tag}".encode())
    annotations = {"org.opencontainers.image.description": description}
    if created is not None:
        annotations["org.opencontainers.image.created"] = created
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                "layers": [{"mediaType": "application/wasm" + ("+encrypted" if encrypted else ""), "digest": layer,
                            "size": len(f"wasm of {repo}:{tag}")}], "annotations": annotations}
    body = json.dumps(manifest).encode()
    assert client.push_manifest(repo, tag, body).status_code == 201
    return sha(body), len(body)


def _key_signed(subject: str, key) -> bytes:  # type: ignore[no-untyped-def]
    from enarx_pkg.sign import sign_with_key

    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "pages/signed", "digest": {"sha256": subject[7:]}}],
                 "predicateType": "https://slsa.dev/provenance/v1",
                 "predicate": {"buildDefinition": {"buildType": "https://enarx.dev/enarx-pkg/build/v1",
                                                   "externalParameters": {"command": "enarx-pkg build " + "x" * 400}},
                               "runDetails": {"builder": {"id": "https://enarx.dev/enarx-pkg/" + "long-path/" * 30}}}}
    return sign_with_key(json.dumps(statement).encode(), key)


@pytest.fixture(scope="module")
def trusting(tmp_path_factory: pytest.TempPathFactory, testvectors: Path) -> Iterator[dict[str, object]]:
    """A registry that trusts one key and one keyless identity, with signed and unsigned packages on it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    root = tmp_path_factory.mktemp("pages")
    key, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pem = root / "trusted.pub"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    server = start_registry(root / "data", extra=[
        "--trusted-key", str(pem), "--trusted-identity", "someone@example.com",
        "--trusted-issuer", "https://accounts.example.com", "--access-log", "common"])
    admin = Client(server, server.admin_token)
    digest, size = _package(admin, "pages/signed", "1.0.0", created="1970-01-01T00:00:00Z")
    admin.attach_bundle("pages/signed", digest, size, _key_signed(digest, key))
    admin.attach_bundle("pages/signed", digest, size, _key_signed(digest, stranger))
    admin.attach_bundle("pages/signed", digest, size, (testvectors / "sigstore" / TESTVECTOR).read_bytes())
    sealed, _ = _package(admin, "pages/sealed", "2.0.0", encrypted=True)
    yield {"server": server, "digest": digest, "sealed": sealed}
    server.stop()


def _api(server: RegistryServer) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {server.admin_token}"})


def test_trusted_key_verifies_and_other_signers_do_not(trusting):
    server = trusting["server"]
    sigs = _api(server).get(f"/repositories/pages/signed/-/versions/{trusting['digest']}/signatures").json()
    by_note = sorted((s["kind"], s["verified"], s["note"].split("sha256:")[0]) for s in sigs["signatures"])
    assert by_note[:2] == [("key", False, "not verified: bundle is signed by another key ("),
                           ("key", True, "verified with trusted key ")]
    assert by_note[2][:2] == ("keyless", False) and by_note[2][2].endswith("is not a trusted identity here")


def test_bad_trusted_key_is_refused_at_start(tmp_path):
    from enarx_pkg._cli.main import main

    (tmp_path / "bad.pub").write_text("not a key")
    port = ["--port", str(free_port())]
    assert main(["registry", "serve", "--data", str(tmp_path / "d"), *port, "--trusted-key",
                 str(tmp_path / "bad.pub")]) == 65
    assert main(["registry", "serve", "--data", str(tmp_path / "d"), *port, "--trusted-identity", "a@b"]) == 2


def test_deploy_line_is_complete_and_copies(trusting):
    from playwright.sync_api import sync_playwright

    server = trusting["server"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=[
            "clipboard-read", "clipboard-write"], extra_http_headers={"Authorization": f"Bearer {server.admin_token}"})
        page = context.new_page()
        page.goto(f"{server.url}/repo/pages/sealed/-/versions/2.0.0")
        line = page.inner_text("#deploy")
        assert "--policy POLICY.toml" in line and "--decryption-key DECRYPTION-KEY.pem" in line
        assert page.evaluate("(e => e.scrollWidth <= e.clientWidth)(document.getElementById('deploy'))")
        page.click("button[data-copy=deploy]")
        assert page.evaluate("window.getSelection().toString()") == line
        assert page.evaluate("navigator.clipboard.readText()") == line
        page.goto(f"{server.url}/repo/pages/signed/-/versions/1.0.0")
        assert "--decryption-key" not in page.inner_text("#deploy") and "--key SIGNER.pub" in page.inner_text("#deploy")
        browser.close()


def _page_kinds(server: RegistryServer, digest: str) -> list[tuple[str, bool]]:
    return [("/", True), ("/", False), ("/?q=pages", True), ("/repo/pages/signed", True),
            (f"/repo/pages/signed/-/versions/{digest}", True), ("/repo/pages/sealed/-/versions/2.0.0", True),
            ("/repo/nothing/here", False), ("/repo/pages/signed?page=0", True)]


def test_no_page_is_wider_than_the_window(trusting, tmp_path):
    from playwright.sync_api import sync_playwright

    server = trusting["server"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        contexts = {signed_in: browser.new_context(viewport={"width": 1280, "height": 900}, extra_http_headers=(
            {"Authorization": f"Bearer {server.admin_token}"} if signed_in else {})) for signed_in in (True, False)}
        for i, (path, signed_in) in enumerate(_page_kinds(server, str(trusting["digest"]))):
            page = contexts[signed_in].new_page()
            page.goto(server.url + path)
            page.screenshot(path=str(tmp_path / f"page{i}.png"), full_page=True)
            width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (path, width)
            page.close()
        browser.close()


def test_signed_in_header_names_the_user_and_signs_out(trusting):
    server = trusting["server"]
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    page = httpx.get(server.url + "/", headers=auth).text
    assert re.search(r'Signed in as <strong id="user">admin \([0-9a-f]{8}\)</strong><a href="/logout">Sign out', page)
    assert "private-hint" not in page
    out = httpx.get(server.url + "/logout", headers=auth)
    assert out.status_code == 401 and out.headers["www-authenticate"].startswith("Basic ")
    anonymous = httpx.get(server.url + "/").text
    assert "Sign in" in anonymous and "Signed in as" not in anonymous
    assert "Private packages are listed only after you" in anonymous and "No public packages" in anonymous


def test_created_is_never_the_epoch(trusting):
    server = trusting["server"]
    page = httpx.get(f"{server.url}/repo/pages/signed/-/versions/1.0.0",
                     headers={"Authorization": f"Bearer {server.admin_token}"}).text
    assert "1970-01-01" not in page and 'built <span id="created">unknown</span>' in page
    assert _api(server).get("/repositories/pages/sealed/-/versions/2.0.0").json()["created"] == "unknown"


def test_admin_description_survives_pushes(trusting):
    from registry.admin import set_repo

    server = trusting["server"]
    admin = Client(server, server.admin_token)
    _package(admin, "pages/described", "1.0.0", description="from the first push")
    set_repo(server._settings(), "pages/described", description="Set by the admin")
    _package(admin, "pages/described", "1.0.1", description="from a later push")
    assert _api(server).get("/repositories/pages/described").json()["description"] == "Set by the admin"


def test_repository_with_10000_tags_is_paged(trusting):
    from registry.db import open_database

    server = trusting["server"]
    admin = Client(server, server.admin_token)
    digest, _ = _package(admin, "pages/many", "0")
    db = open_database(server._settings().db_url)
    with db.transaction() as tx:
        for i in range(1, 10_000):
            tx.execute("INSERT INTO tags (repo, tag, digest, updated, yanked) VALUES (?, ?, ?, ?, 0)",
                       ("pages/many", f"t{i:05d}", digest, 1_700_000_000 + i))
    db.close()
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    first = httpx.get(f"{server.url}/repo/pages/many", headers=auth)
    assert first.status_code == 200 and len(first.content) < 100_000
    assert "Page 1 of 100 (10000 versions)" in first.text and "t09999" in first.text and "t00001" not in first.text
    last = httpx.get(f"{server.url}/repo/pages/many", params={"page": 100}, headers=auth).text
    assert "t00001" in last and "Older" not in last
    versions = _api(server).get("/repositories/pages/many/-/versions", params={"page": 2}).json()
    assert (versions["page"], versions["pages"], len(versions["versions"])) == (2, 100, 100)


def test_json_api_answers_json_to_odd_names_and_refuses_junk_booleans(trusting):
    api = _api(trusting["server"])
    for path in ("/repositories/a%0Ab", "/repositories/a%0Ab/-/versions", "/no/such/endpoint"):
        r = api.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == "application/json", path
        assert "error" in r.json()
    r = api.get("/repositories/pages/signed", params={"include_yanked": "maybe"})
    assert r.status_code == 400 and r.json() == {"error": "include_yanked must be true or false"}
    assert api.get("/repositories/pages/signed", params={"include_yanked": "true"}).status_code == 200
    assert api.get("/repositories/pages/signed", params={"page": "0"}).status_code == 400


def test_access_log_lines_in_common_format(trusting):
    server = trusting["server"]
    httpx.get(server.url + "/v2/", headers={"User-Agent": 'evil"agent'})
    time.sleep(0.2)
    lines = (server.data_dir / "server.log").read_text().splitlines()
    assert any(re.fullmatch(r'127\.0\.0\.1 - - \[[^\]]+\] "GET /v2/ HTTP/1\.1" 401 \d+', line) for line in lines)
    assert server.admin_token not in "\n".join(lines)


def test_access_log_combined_by_default_and_off_by_flag(registry_server, tmp_path):
    httpx.get(registry_server.url + "/v2/?secret=1", headers={"User-Agent": 'probe"\\x'})
    time.sleep(0.2)
    log = (registry_server.data_dir / "server.log").read_text()
    assert re.search(r'"GET /v2/ HTTP/1\.1" 401 \d+ "-" "probe\\x22\\x5cx"', log) and "secret=1" not in log
    quiet = start_registry(tmp_path / "quiet", extra=["--access-log", "off"])
    try:
        httpx.get(quiet.url + "/v2/")
        time.sleep(0.2)
        assert '"GET /v2/' not in (quiet.data_dir / "server.log").read_text()
    finally:
        quiet.stop()
