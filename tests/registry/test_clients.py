"""Real clients against the registry: skopeo, oras-py, and copies to and from CNCF distribution."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.conftest import INDEX, Client


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


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def _image(layout: Path, arch: str) -> dict[str, object]:
    """A real (tiny) container image in ``layout``: one gzip tar layer, an image config, an OCI manifest."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        body = f"hello from {arch}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(body), 0
        tf.addfile(info, io.BytesIO(body))
    layer = gzip.compress(tar.getvalue(), mtime=0)
    config = {"architecture": arch, "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **_blob(layout, json.dumps(config).encode())},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, layer)}]}
    return {"mediaType": manifest["mediaType"], **_blob(layout, json.dumps(manifest).encode()),
            "platform": {"architecture": arch, "os": "linux"}}


@pytest.fixture(scope="module")
def container_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout with a single-platform image (tag ``one``) and a two-platform index (tag ``multi``)."""
    layout = tmp_path_factory.mktemp("images") / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    one = _image(layout, "amd64")
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [one, _image(layout, "arm64")]}
    multi = {"mediaType": INDEX, **_blob(layout, json.dumps(index).encode())}
    refs = [{**one, "annotations": {"org.opencontainers.image.ref.name": "one"}},
            {**multi, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": refs}))
    return layout


def test_skopeo_pulls_a_docker_v2_schema_2_image(registry_server, container_layout, tmp_path):
    token = registry_server.token("push:containers/*")
    ref = f"docker://{registry_server.host}/containers/v2s2:1.0.0"
    skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false", "--dest-creds", f"x:{token}",
           f"oci:{container_layout}:one", ref)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"x:{token}", ref))
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    out = tmp_path / "pulled"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", f"x:{token}", ref, f"dir:{out}")
    assert json.loads((out / "manifest.json").read_text()) == raw


def test_skopeo_pulls_an_oci_index_with_all_platforms(registry_server, container_layout, tmp_path):
    token = registry_server.token("push:containers/*")
    ref = f"docker://{registry_server.host}/containers/multi:1.0.0"
    skopeo("copy", "--all", "--dest-tls-verify=false", "--dest-creds", f"x:{token}",
           f"oci:{container_layout}:multi", ref)
    out = tmp_path / "pulled"
    skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", f"x:{token}", ref, f"oci:{out}:multi")
    pulled = json.loads((out / "index.json").read_text())["manifests"][0]
    source = json.loads((container_layout / "index.json").read_text())["manifests"][1]
    assert pulled["mediaType"] == INDEX and pulled["digest"] == source["digest"]
    index = json.loads((out / "blobs" / "sha256" / pulled["digest"][7:]).read_text())
    assert all((out / "blobs" / "sha256" / m["digest"][7:]).exists() for m in index["manifests"])


def test_skopeo_delete_with_a_scoped_token(registry_server, container_layout):
    token = registry_server.token("push:containers/*", "delete:containers/*")
    ref = f"docker://{registry_server.host}/containers/doomed:1.0.0"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"x:{token}", f"oci:{container_layout}:one", ref)
    skopeo("delete", "--tls-verify=false", "--creds", f"x:{token}", ref)
    r = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", f"x:{token}", ref],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "manifest unknown" in r.stderr.lower()
    pull_only = registry_server.token("pull:containers/*")
    ref2 = f"docker://{registry_server.host}/containers/kept:1.0.0"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"x:{token}", f"oci:{container_layout}:one", ref2)
    r = subprocess.run(["skopeo", "delete", "--tls-verify=false", "--creds", f"x:{pull_only}", ref2],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and pull_only not in r.stderr


@pytest.fixture
def podman_root(tmp_path: Path) -> Iterator[Path]:
    """Storage of podman's own for one test (its runroot path must be under 50 characters)."""
    run = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))
    (tmp_path / "run").symlink_to(run)
    yield tmp_path
    shutil.rmtree(run, ignore_errors=True)


def podman(root: Path, *args: str) -> str:
    """podman with storage of its own under ``root`` (vfs: no overlay mounts needed), never the machine's."""
    r = subprocess.run(["podman", "--root", str(root / "storage"), "--runroot", str((root / "run").resolve()),
                        "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize(("fmt", "tag"), [("v2s2", "one"), ("oci", "one"), ("oci", "multi")])
def test_podman_pulls_docker_and_oci_images_and_an_index(registry_server, container_layout, podman_root, fmt, tag):
    """podman (containers/image, several Accept: lines) pulls from ours: a Docker v2 schema 2 image, an
    OCI image, and from an OCI index the image of this machine's platform; layers unpacked, digests kept."""
    token = registry_server.token("push:containers/*")
    name = f"{registry_server.host}/containers/podman-{fmt}-{tag}:1.0.0"
    copy = ["--all"] if tag == "multi" else ["--format", fmt]
    skopeo("copy", *copy, "--dest-tls-verify=false", "--dest-creds", f"x:{token}",
           f"oci:{container_layout}:{tag}", f"docker://{name}")
    pushed = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"x:{token}", f"docker://{name}")
    podman(podman_root, "pull", "--tls-verify=false", "--creds", f"x:{token}", "--arch", "amd64", name)
    [image] = json.loads(podman(podman_root, "image", "inspect", name))
    assert image["Digest"] == "sha256:" + hashlib.sha256(pushed.encode()).hexdigest()  # what the registry served
    assert image["Architecture"] == "amd64"
    assert len(image["RootFS"]["Layers"]) == 1  # the layer was unpacked into podman's storage



def test_anonymous_skopeo_on_a_private_repository_is_asked_to_authenticate(registry_server, oci_layout, tmp_path):
    """skopeo without credentials gets an anonymous token, then a 401 challenge (as from distribution): it says
    'unauthorized' (what it says for distribution), not 'denied: token does not grant pull', which blamed a
    token the user never gave."""
    import httpx

    token = registry_server.token("push:private/*")
    ref = f"docker://{registry_server.host}/private/hello:1.0.0"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"x:{token}", f"oci:{oci_layout}:1.0.0", ref)
    env = dict(os.environ, HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), REGISTRY_AUTH_FILE=str(tmp_path / "a"))
    r = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", ref], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode != 0 and r.stderr.rstrip().endswith("unauthorized\""), r.stderr  # as for distribution
    assert "does not grant" not in r.stderr
    base = f"http://{registry_server.host}"
    anon = httpx.get(f"{base}/token", params={"service": registry_server.host,
                                              "scope": "repository:private/hello:pull"}).json()["token"]
    got = httpx.get(f"{base}/v2/private/hello/manifests/1.0.0", headers={"Authorization": f"Bearer {anon}"})
    assert got.status_code == 401 and got.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert got.headers["www-authenticate"].startswith("Bearer realm=")
    # a real token short of the scope is still told so (403 DENIED)
    other = registry_server.token("pull:elsewhere/*")
    denied = httpx.get(f"{base}/v2/private/hello/manifests/1.0.0", headers={"Authorization": f"Bearer {other}"})
    assert denied.status_code == 403 and "does not grant pull on private/hello" in denied.text
