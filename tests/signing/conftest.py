"""Packages to sign: real OCI layouts holding a real wasm module (wat2wasm) and an Enarx.toml layer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from enarx_pkg import keys
from enarx_pkg._internal import canonical
from enarx_pkg.package import (
    MEDIA_ENARX_CONFIG,
    MEDIA_WASM,
    MEDIA_WASM_CONFIG,
    Descriptor,
    ImageManifest,
    Layout,
)

WAT = '(module (memory (export "memory") 1) (func (export "_start")) (data (i32.const 0) "%s"))'


def make_package(path: Path, name: str = "hello", message: str = "hello",
                 record: bool = True) -> tuple[Layout, Descriptor]:
    """An OCI layout with one wasm package; with ``record``, the enarx-build.json ``build`` writes."""
    layout = Layout.create(path)
    wasm = layout.put_bytes(wasmtime.wat2wasm(WAT % message), MEDIA_WASM)
    toml = layout.put_bytes(f'[package]\nname = "{name}"\nversion = "0.1.0"\n'.encode(), MEDIA_ENARX_CONFIG)
    config = layout.put_bytes(canonical.dumps({
        "created": "2026-11-26T00:00:00Z", "author": "tests", "architecture": "wasm", "os": "wasip1",
        "layerDigests": [wasm.digest, toml.digest]}), MEDIA_WASM_CONFIG)
    manifest = ImageManifest(config, (wasm, toml), {
        "org.opencontainers.image.title": name, "org.opencontainers.image.version": "0.1.0",
        "org.opencontainers.image.source": f"https://example.com/{name}.git",
        "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567"})
    desc = layout.add_manifest(manifest, "0.1.0")
    if record:
        (path / "enarx-build.json").write_bytes(canonical.dumps({
            "builder": {"id": "https://enarx.dev/enarx-pkg/local"}, "buildType": "https://enarx.dev/enarx-pkg/build/v1",
            "command": ["wat2wasm", "hello.wat"], "workdir": ".", "toolchains": {"wasmtime": "50.0.1"},
            "source": {"repository": f"https://example.com/{name}.git",
                       "revision": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
            "inputs": [{"path": "hello.wat", "digest": "sha256:" + "ab" * 32}],
            "sourceDateEpoch": 1764115200, "manifestDigest": desc.digest}))
    return layout, desc


@pytest.fixture(scope="session")
def keypairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three unencrypted key pairs (prefixes): alice, bob and mallory (never trusted)."""
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for who in ("alice", "bob", "mallory"):
        keys.generate(d / who, password_env=None)
        out[who] = d / who
    return out


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory, keypairs: dict[str, Path]) -> tuple[Path, str]:
    """A package signed by alice, built once; tests copy it before tampering."""
    from enarx_pkg import sign

    path = tmp_path_factory.mktemp("pristine") / "layout"
    layout, desc = make_package(path)
    sign.sign_layout(layout, None, key=keys.load_private(keypairs["alice"].with_suffix(".key"), password_env=None))
    return path, desc.digest


@pytest.fixture()
def signed(tmp_path: Path, pristine: tuple[Path, str]) -> tuple[Layout, str]:
    """A private copy of the alice-signed package, free to tamper with."""
    dst = tmp_path / "layout"
    shutil.copytree(pristine[0], dst)
    return Layout.open(dst), pristine[1]


def pub(prefix: Path) -> bytes:
    return prefix.with_suffix(".pub").read_bytes()


def bundle_of(layout: Layout, subject: str) -> tuple[str, bytes]:
    """(referrer digest, bundle bytes) of the one signature on ``subject``."""
    (ref,) = layout.referrers(subject)
    man = layout.manifest(ref.digest)
    return ref.digest, layout.read_blob(man.layers[0].digest)


def edit_json(data: bytes, change: Callable[[dict], None]) -> bytes:
    obj = json.loads(data)
    change(obj)
    return json.dumps(obj).encode()


from tests.signing.sigstore_peers import private_sigstore  # noqa: E402,F401 (session fixture)
