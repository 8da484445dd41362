"""Real clients against the registry: skopeo, oras-py, and copies to and from CNCF distribution."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.registry.conftest import Client


def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _layout_manifest(path: Path) -> str:
    return json.loads((path / "index.json").read_text())["manifests"][0]["digest"]


def test_skopeo_copies_a_layout_in_and_back_out_digest_identical(registry_server, oci_layout, tmp_path):
    token = registry_server.token("push:skopeo/*")
    ref = f"docker://{registry_server.host}/skopeo/hello:1.0.0"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"x:{token}", f"oci:{oci_layout}:1.0.0", ref)
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", f"x:{token}", ref, f"oci:{out}:1.0.0")
    assert _layout_manifest(out) == _layout_manifest(oci_layout)
    for blob in (oci_layout / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()
    raw = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"x:{token}", ref)
    assert raw.encode() == (oci_layout / "blobs" / "sha256" / _layout_manifest(oci_layout)[7:]).read_bytes()


def test_oras_pushes_and_pulls_an_artifact(registry_server, tmp_path, monkeypatch):
    import oras.client

    token = registry_server.token("push:oras/*")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # oras login writes ~/.docker/config.json
    Path("artifact.txt").write_text("hello from oras\n")
    client = oras.client.OrasClient(hostname=registry_server.host, insecure=True)
    client.login(username="oras", password=token, hostname=registry_server.host)
    target = f"{registry_server.host}/oras/artifact:v1"
    assert client.push(target=target, files=["artifact.txt"]).status_code == 201
    files = client.pull(target=target, outdir=str(tmp_path / "pulled"))
    assert [Path(f).read_text() for f in files] == ["hello from oras\n"]


def test_copy_to_and_from_cncf_distribution(registry_server, docker_registry, oci_layout, tmp_path):
    token = registry_server.token("push:interop/*")
    ours_a = f"docker://{registry_server.host}/interop/hello:1.0.0"
    theirs = f"docker://{docker_registry.host}/interop/hello:1.0.0"
    ours_b = f"docker://{registry_server.host}/interop/back:1.0.0"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"x:{token}", f"oci:{oci_layout}:1.0.0", ours_a)
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", f"x:{token}", ours_a, theirs)
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", f"x:{token}", theirs, ours_b)
    ours = ["--creds", f"x:{token}"]
    digests = {skopeo("inspect", "--raw", "--tls-verify=false", *creds, ref)
               for ref, creds in ((ours_a, ours), (theirs, []), (ours_b, ours))}
    assert len(digests) == 1


def test_anonymous_skopeo_pull_goes_through_the_token_endpoint(registry_server, tmp_path):
    from registry.admin import set_repo

    admin = Client(registry_server, registry_server.admin_token)
    admin.push_image("public/hello", "1.0.0")
    set_repo(registry_server._settings(), "public/hello", anonymous_pull=1)
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "none.json")}
    r = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--no-creds",
                        f"docker://{registry_server.host}/public/hello:1.0.0"], capture_output=True, env=env)
    assert r.returncode == 0, r.stderr
    assert b'"schemaVersion"' in r.stdout
