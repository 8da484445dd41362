"""Stored XSS on the registry's pages: a package's Enarx.toml, description and annotations carry script
payloads; a real browser (headless Chromium, JavaScript ON) must show them as text and run none.

Also the pages' security headers (CSP without scripts, nosniff, no framing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

import httpx
import pytest

from enarx_pkg._cli.main import main
from registry.web import COPY_SCRIPT
from tests.registry.conftest import Client

REPO_NAME = "sec/xss"
PAYLOADS = {  # no quotes, so they read the same in the page's TOML rendering of Enarx.toml
    "description": "<script>window.__xss=1</script>",
    "arg": "<img src=x onerror=window.__xss=2>",
    "env": "</pre><script>window.__xss=3</script>",
    "annotation": "<svg onload=window.__xss=4></svg>",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture(scope="module")
def hostile(registry_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Publish (with the real CLI) a package whose every free-text field is a script payload."""
    project = tmp_path_factory.mktemp("xss")
    (project / "m.wat").write_text('(module (memory (export "memory") 1) (func (export "_start")))')
    (project / "Enarx.toml").write_text(
        f"args = [{_toml_str(PAYLOADS['arg'])}]\n\n[env]\nHTML = {_toml_str(PAYLOADS['env'])}\n\n"
        f'[package]\nname = "xss"\nversion = "1.0.0"\ndescription = {_toml_str(PAYLOADS["description"])}\n\n'
        '[build]\nrecipe = "wat"\nsources = ["m.wat"]\noutput = "m.wasm"\n')
    env = {"ENARX_PKG_REGISTRY_TOKEN": registry_server.admin_token, "XDG_CONFIG_HOME": str(project / "cfg")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["build", str(project)]) == 0
        assert main(["publish", str(project), "--registry", registry_server.host, "--repository", REPO_NAME]) == 0
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    client = Client(registry_server, registry_server.admin_token)
    client.push_image(REPO_NAME, "annotated", annotations={"x.evil": PAYLOADS["annotation"]})
    return {"1.0.0": "1.0.0", "annotated": "annotated"}


def _visit(url: str, token: str, paths: list[str]) -> list[tuple[object, str, int]]:
    from playwright.sync_api import sync_playwright

    seen = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"}).new_page()
        for path in paths:
            page.goto(url + path)
            page.wait_for_load_state("load")
            # the version page's own copy-button script is the one script allowed (by its hash in the CSP)
            own = page.locator("script").evaluate_all(
                f"(nodes) => nodes.filter(n => n.textContent === {json.dumps(COPY_SCRIPT)}).length")
            seen.append((page.evaluate("window.__xss"), page.inner_text("main"),
                         page.locator("script, img, svg").count() - own))
        browser.close()
    return seen


def test_version_page_shows_enarx_toml_payloads_as_text(registry_server, hostile) -> None:
    [(flag, text, elements)] = _visit(registry_server.url, registry_server.admin_token,
                                      [f"/repo/{REPO_NAME}/-/versions/1.0.0"])
    assert flag is None and elements == 0
    for field in ("description", "arg", "env"):
        assert PAYLOADS[field] in text, field


def test_annotation_payload_is_text(registry_server, hostile) -> None:
    [(flag, text, elements)] = _visit(registry_server.url, registry_server.admin_token,
                                      [f"/repo/{REPO_NAME}/-/versions/annotated"])
    assert flag is None and elements == 0 and PAYLOADS["annotation"] in text


def test_listing_and_search_pages_show_description_as_text(registry_server, hostile) -> None:
    pages = _visit(registry_server.url, registry_server.admin_token,
                   [f"/repo/{REPO_NAME}", "/?q=" + PAYLOADS["description"]])
    for flag, text, elements in pages:
        assert flag is None and elements == 0
        assert PAYLOADS["description"] in text  # the description (and the echoed search query), as text


@pytest.mark.parametrize("path", ["/", f"/repo/{REPO_NAME}", "/repo/no/such", "/login", "/api/v1/openapi.json"])
def test_pages_send_security_headers(registry_server, hostile, path: str) -> None:
    r = httpx.get(registry_server.url + path, headers={"Authorization": f"Bearer {registry_server.admin_token}"})
    csp = r.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # scripts: only the registry's own copy button, pinned by its hash (never inline or from anywhere else)
    [script_src] = [d.strip() for d in csp.split(";") if d.strip().startswith("script-src")]
    own_hash = "sha256-" + base64.b64encode(hashlib.sha256(COPY_SCRIPT.encode()).digest()).decode()
    assert script_src == f"script-src '{own_hash}'"
    assert "unsafe-inline" not in script_src
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("x-frame-options") == "DENY"


def test_blobs_are_never_served_as_html(registry_server, hostile) -> None:
    client = Client(registry_server, registry_server.admin_token)
    digest = client.push_blob(REPO_NAME, b"<html><script>window.__xss='blob'</script></html>")
    r = client.http.get(f"/v2/{REPO_NAME}/blobs/{digest}")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers.get("x-content-type-options") == "nosniff"


