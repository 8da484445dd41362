"""Package layouts built here with the real Layout type and wasmtime's wat2wasm (no build step needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import wasmtime

from enarx_pkg.package import (
    EMPTY_JSON,
    MEDIA_EMPTY,
    MEDIA_ENARX_CONFIG,
    MEDIA_MANIFEST,
    MEDIA_SIGSTORE_BUNDLE,
    MEDIA_WASM,
    MEDIA_WASM_CONFIG,
    Descriptor,
    ImageManifest,
    Layout,
)

WAT = '(module (memory (export "memory") 1) (func (export "_start")) (data (i32.const 0) "{}"))'


def make_package(path: Path, *, note: str = "hello", extra: int = 0, tag: str = "1.0.0") -> tuple[Layout, str]:
    """A wasm package layout: config, module layer, Enarx.toml layer; ``extra`` random bytes in a 3rd layer."""
    layout = Layout.create(path)
    wasm = wasmtime.wat2wasm(WAT.format(note))
    mod = layout.put_bytes(wasm, MEDIA_WASM, {"org.opencontainers.image.title": "app.wasm"})
    toml = layout.put_bytes(f'[package]\nname = "hello"\nversion = "{tag}"\n'.encode(), MEDIA_ENARX_CONFIG)
    layers = [mod, toml]
    if extra:
        blob = path / "extra.bin"
        with open(blob, "wb") as f:
            left = extra
            while left:
                n = min(left, 1 << 20)
                f.write(os.urandom(n))
                left -= n
        layers.append(layout.put_file(blob, "application/octet-stream"))
        blob.unlink()
    config = {"architecture": "wasm", "os": "wasip1", "layerDigests": [d.digest for d in layers],
              "created": "2026-01-01T00:00:00Z"}
    cfg = layout.put_bytes(json.dumps(config, sort_keys=True).encode(), MEDIA_WASM_CONFIG)
    desc = layout.add_manifest(ImageManifest(cfg, tuple(layers)), tag)
    return layout, desc.digest


def add_signature(layout: Layout, subject: str, who: str) -> str:
    """A referrer shaped like our sigstore bundle referrer (content is not checked by transfer)."""
    empty = layout.put_bytes(EMPTY_JSON, MEDIA_EMPTY)
    bundle = layout.put_bytes(json.dumps({"who": who}).encode(), MEDIA_SIGSTORE_BUNDLE)
    size = layout.blob_path(subject).stat().st_size
    man = ImageManifest(empty, (bundle,), {"dev.sigstore.bundle.content": "dsse-envelope", "who": who},
                        subject=Descriptor(MEDIA_MANIFEST, subject, size), artifact_type=MEDIA_SIGSTORE_BUNDLE)
    return layout.add_manifest(man).digest


@pytest.fixture
def package(tmp_path: Path) -> tuple[Layout, str]:
    return make_package(tmp_path / "pkg", note=tmp_path.name)
