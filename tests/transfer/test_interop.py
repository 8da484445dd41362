"""Interop with real peers: skopeo (Go, containers/image) and oras-py, through docker-registry."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from enarx_pkg._internal import digest
from enarx_pkg.oci import parse_registry
from enarx_pkg.package import ANNOTATION_TITLE, Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from tests.fixtures.distribution import Peer
from tests.transfer.conftest import add_signature, make_package

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


def _skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@skopeo
def test_skopeo_reads_what_we_publish(docker_registry: Peer, tmp_path: Path) -> None:
    layout, dg = make_package(tmp_path / "pkg", note="to-skopeo")
    add_signature(layout, dg, "alice")
    publish(layout, Target(parse_registry(docker_registry.host), "interop/ours", "2.0.0"))
    src = f"docker://{docker_registry.host}/interop/ours:2.0.0"
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", src)
    assert digest.of_bytes(raw.encode()) == dg and json.loads(raw)["config"]["mediaType"].startswith(
        "application/vnd.wasm.config")
    _skopeo("copy", "--src-tls-verify=false", src, f"oci:{tmp_path / 'copy'}:2.0.0")
    copied = Layout.open(tmp_path / "copy")
    assert copied.resolve("2.0.0").digest == dg
    for d in layout.manifest(dg).layers:
        assert copied.read_blob(d.digest) == layout.read_blob(d.digest)
    # the signature is reachable the way cosign/oras look it up on a registry without the referrers API
    idx = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false",
                             f"docker://{docker_registry.host}/interop/ours:sha256-{dg[7:]}"))
    assert [m["artifactType"] for m in idx["manifests"]] == ["application/vnd.dev.sigstore.bundle.v0.3+json"]


@skopeo
def test_we_pull_what_skopeo_copies_from_a_layout(docker_registry: Peer, tmp_path: Path) -> None:
    layout, dg = make_package(tmp_path / "pkg", note="from-skopeo", tag="3.0.0")
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:3.0.0",
            f"docker://{docker_registry.host}/interop/skopeo:3.0.0")
    got = pull(f"{docker_registry.host}/interop/skopeo:3.0.0", tmp_path / "out")
    assert got.manifest_digest == dg  # skopeo kept the manifest bytes; we verified every blob against it
    for d in layout.manifest(dg).layers:
        assert got.layout.read_blob(d.digest) == layout.read_blob(d.digest)


def test_we_pull_what_oras_pushes(docker_registry: Peer, tmp_path: Path) -> None:
    import oras.provider

    art = tmp_path / "artifact.txt"
    art.write_bytes(b"pushed by oras-py\n" * 1000)
    reg = oras.provider.Registry(hostname=docker_registry.host, insecure=True)
    reg.push(target=f"{docker_registry.host}/interop/oras:v1", files=[f"{art}:text/plain"],
             disable_path_validation=True, quiet=True)
    got = pull(f"{docker_registry.host}/interop/oras:v1", tmp_path / "out")
    layer = got.layout.manifest(got.manifest_digest).layers[0]
    assert layer.annotations[ANNOTATION_TITLE] == str(art) or layer.annotations[ANNOTATION_TITLE].endswith(
        "artifact.txt")
    assert got.layout.read_blob(layer.digest) == art.read_bytes()


def test_oras_pulls_what_we_publish(docker_registry: Peer, tmp_path: Path) -> None:
    import oras.provider

    layout, dg = make_package(tmp_path / "pkg", note="to-oras")
    publish(layout, Target(parse_registry(docker_registry.host), "interop/toras", "1"))
    reg = oras.provider.Registry(hostname=docker_registry.host, insecure=True)
    files = reg.pull(target=f"{docker_registry.host}/interop/toras:1", outdir=str(tmp_path / "oras-out"))
    wasm = next(d for d in layout.manifest(dg).layers if d.media_type == "application/wasm")
    by_name = {Path(f).name: Path(f).read_bytes() for f in files}
    assert by_name["app.wasm"] == layout.read_blob(wasm.digest)
