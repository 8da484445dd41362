"""``enarx-pkg registry`` admin commands, run as a user runs them (CLI ``main``) on a live server's data."""

from __future__ import annotations

import json
import time

import httpx

from enarx_pkg._cli.main import main
from tests.fixtures.registry import start_registry
from tests.registry.conftest import Client, sha


def test_token_create_list_revoke(registry_server, capsys):
    data = str(registry_server.data_dir)
    assert main(["registry", "token", "create", "--name", "ci", "--scope", "push:cli/*", "--data", data, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    client = Client(registry_server, created["token"])
    assert client.http.post("/v2/cli/app/blobs/uploads/").status_code == 202
    assert main(["registry", "token", "list", "--data", data, "--json"]) == 0
    listing = capsys.readouterr().out
    assert created["id"] in listing and created["token"] not in listing
    assert main(["registry", "token", "revoke", created["id"], "--data", data]) == 0
    assert client.http.post("/v2/cli/app/blobs/uploads/").status_code == 401


def test_token_create_refuses_a_bad_scope(registry_server, capsys):
    code = main(["registry", "token", "create", "--name", "x", "--scope", "write:everything",
                 "--data", str(registry_server.data_dir)])
    assert code == 65 and "expected ACTION:REPOSITORY" in capsys.readouterr().err


def test_repo_settings_allow_overwrite(registry_server):
    admin = Client(registry_server, registry_server.admin_token)
    admin.push_image("cli/mutable", "1.0.0", payload=b"one")
    assert main(["registry", "repo", "cli/mutable", "--allow-overwrite", "--data", str(registry_server.data_dir)]) == 0
    digest, _ = admin.push_image("cli/mutable", "1.0.0", payload=b"two")
    assert admin.http.head("/v2/cli/mutable/manifests/1.0.0").headers["docker-content-digest"] == digest


def test_repo_json_prints_the_settings_in_force(registry_server, capsys):
    data = str(registry_server.data_dir)
    assert main(["registry", "repo", "cli/settings", "--description", "demo", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"repository": "cli/settings", "allow_overwrite": False,
                                                   "anonymous_pull": None, "description": "demo"}
    assert main(["registry", "repo", "cli/settings", "--anonymous-pull", "--data", data]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "updated cli/settings: version tags immutable, anonymous pull yes" in err


def test_yank_and_undo_json(registry_server, capsys):
    admin = Client(registry_server, registry_server.admin_token)
    digest, _ = admin.push_image("cli/yankjson", "1.0.0", payload=b"yank me")
    data = str(registry_server.data_dir)
    assert main(["registry", "yank", "cli/yankjson:1.0.0", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"reference": "cli/yankjson:1.0.0", "digest": digest,
                                                   "yanked": True}
    assert main(["registry", "yank", "cli/yankjson:1.0.0", "--undo", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["yanked"] is False
    assert main(["registry", "yank", "cli/nothing:9.9.9", "--data", data, "--json"]) == 66
    assert json.loads(capsys.readouterr().out)["error"]["exit_code"] == 66


def test_token_revoke_and_anonymous_default_json(tmp_path, capsys):
    data = str(tmp_path / "reg")  # a store of its own: the default anonymous-pull setting is registry-wide
    assert main(["registry", "token", "create", "--name", "x", "--scope", "pull:a/*", "--data", data, "--json"]) == 0
    token_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["registry", "token", "revoke", token_id, "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": token_id, "revoked": True}
    assert main(["registry", "anonymous-pull", "true", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"anonymous_pull": True}


def test_yank_unknown_version_is_not_found(registry_server, capsys):
    assert main(["registry", "yank", "cli/nothing:9.9.9", "--data", str(registry_server.data_dir)]) == 66
    assert "does not exist" in capsys.readouterr().err
    assert main(["registry", "token", "revoke", "no-such-id", "--data", str(registry_server.data_dir)]) == 66
    assert "no active token" in capsys.readouterr().err


def test_gc_removes_unreferenced_blobs_and_abandoned_uploads(tmp_path, capsys):
    # its own server: gc with no grace period would sweep other tests' blobs mid-push
    registry_server = start_registry(tmp_path / "gc")
    try:
        _gc(registry_server, capsys)
    finally:
        registry_server.stop()


def _gc(registry_server, capsys):
    admin = Client(registry_server, registry_server.admin_token)
    kept, _ = admin.push_image("cli/gc", "1.0.0", payload=b"referenced layer")
    orphan = admin.push_blob("cli/gc", b"nobody references me")
    upload = admin.http.post("/v2/cli/gc/blobs/uploads/").headers["location"]
    admin.http.patch(upload, content=b"abandoned")
    time.sleep(0.05)
    assert main(["registry", "gc", "--grace", "0", "--data", str(registry_server.data_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["blobs_deleted"] >= 1 and report["uploads_deleted"] >= 1
    assert admin.http.head(f"/v2/cli/gc/blobs/{orphan}").status_code == 404
    assert admin.http.get(upload).status_code == 404
    assert admin.http.get(f"/v2/cli/gc/manifests/{kept}").status_code == 200
    assert admin.http.get("/v2/cli/gc/blobs/" + sha(b"referenced layer")).status_code == 200


def test_audit_log_records_writes(registry_server):
    from registry.admin import metadata

    admin = Client(registry_server, registry_server.admin_token)
    digest, _ = admin.push_image("cli/audit", "1.0.0")
    with metadata(registry_server._settings()) as meta:
        rows = meta.audit(500)
    assert any(r[2] == "manifest.push" and r[3] == "cli/audit" and r[5] == digest and r[1].startswith("admin")
               for r in rows)


def test_enarx_registry_script_is_the_same_cli():
    from enarx_pkg._cli.registry import main as registry_main

    assert registry_main(["--help"]) == 0


def test_unknown_token_page_is_401(registry_server):
    r = httpx.get(registry_server.url + "/", headers={"Authorization": "Bearer enxr_nope_nope"})
    assert r.status_code == 401


def test_serve_max_blob_size_flag_refuses_larger_blobs(tmp_path):
    import hashlib

    server = start_registry(tmp_path / "small", extra=["--max-blob-size", "1000"])
    try:
        auth = {"Authorization": f"Bearer {server.admin_token}"}
        for size, expected in ((999, 201), (2000, 413)):
            body = bytes(size)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            r = httpx.post(f"{server.url}/v2/limits/blob/blobs/uploads/", params={"digest": digest}, content=body,
                           headers=auth)
            assert r.status_code == expected, (size, r.text)
    finally:
        server.stop()


def test_serve_with_a_missing_trusted_key_is_not_found(tmp_path, capsys):
    code = main(["registry", "serve", "--data", str(tmp_path / "data"), "--port", "9",
                 "--trusted-key", str(tmp_path / "nope.pem")])
    assert code == 66 and f"--trusted-key {tmp_path / 'nope.pem'}: no such file" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
