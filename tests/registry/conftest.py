"""Registry test set-up: the same server suite against both metadata backends, and a small OCI client."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.registry import RegistryServer, start_registry

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def postgres_registry(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    url = postgres_server.database("registry_tests")
    server = start_registry(tmp_path_factory.mktemp("registry-pg"), database=url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_registry(postgres_server: Any, swift: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Blobs in a Swift bucket (S3 API), metadata in PostgreSQL: what replicas without a shared disk run."""
    from tests.fixtures.swift import new_bucket, storage_args

    url = postgres_server.database("registry_s3_tests")
    server = start_registry(tmp_path_factory.mktemp("registry-s3"), database=url,
                            extra=storage_args(swift, new_bucket(swift)), env=swift.env())
    yield server
    server.stop()


BACKENDS = {"sqlite": "registry_server", "postgresql": "postgres_registry", "s3": "s3_registry"}


@pytest.fixture(scope="session", params=list(BACKENDS))
def server(request: pytest.FixtureRequest) -> RegistryServer:
    """The registry under test, once per backend: SQLite + files, PostgreSQL + files, PostgreSQL + S3 bucket."""
    return request.getfixturevalue(BACKENDS[request.param])  # type: ignore[no-any-return]


class Client:
    """A deliberately plain OCI distribution client, so tests show the wire protocol."""

    def __init__(self, server: RegistryServer, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=server.url, headers=headers, timeout=60)

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        r = self.http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201, r.text
        return digest

    def push_manifest(self, repo: str, ref: str, manifest: dict[str, Any] | bytes,
                      media_type: str = MANIFEST) -> httpx.Response:
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        return self.http.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})

    def push_image(self, repo: str, tag: str, payload: bytes = b"hello", **extra: Any) -> tuple[str, bytes]:
        """Push a config + one layer + manifest; returns (manifest digest, manifest bytes)."""
        config = self.push_blob(repo, b"{}")
        layer = self.push_blob(repo, payload)
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                    "layers": [{"mediaType": "application/wasm", "digest": layer, "size": len(payload)}], **extra}
        body = json.dumps(manifest).encode()
        r = self.push_manifest(repo, tag, body)
        assert r.status_code == 201, r.text
        return sha(body), body

    def attach_bundle(self, repo: str, subject: str, subject_size: int, bundle: bytes) -> None:
        """Push ``bundle`` as a sigstore-bundle referrer of the manifest ``subject`` (by digest)."""
        config = self.push_blob(repo, b"{}")
        layer = self.push_blob(repo, bundle)
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": BUNDLE,
                    "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                    "layers": [{"mediaType": BUNDLE, "digest": layer, "size": len(bundle)}],
                    "subject": {"mediaType": MANIFEST, "digest": subject, "size": subject_size}}
        body = json.dumps(manifest).encode()
        assert self.push_manifest(repo, sha(body), body).status_code == 201


@pytest.fixture
def admin(server: RegistryServer) -> Iterator[Client]:
    client = Client(server, server.admin_token)
    yield client
    client.http.close()


@pytest.fixture(scope="session")
def oci_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Enarx package as an OCI image layout (real wasm from wat2wasm), tagged 1.0.0."""
    import wasmtime

    from enarx_pkg.package import (
        MEDIA_ENARX_CONFIG,
        MEDIA_WASM,
        MEDIA_WASM_CONFIG,
        ImageManifest,
        Layout,
    )

    path = tmp_path_factory.mktemp("layout") / "hello"
    layout = Layout.create(path)
    wasm = layout.put_bytes(wasmtime.wat2wasm('(module (func (export "_start")))'), MEDIA_WASM)
    toml = layout.put_bytes(b'[package]\nname = "hello"\nversion = "1.0.0"\n\nargs = ["hello"]\n', MEDIA_ENARX_CONFIG)
    config = layout.put_bytes(json.dumps({"architecture": "wasm", "os": "wasip1",
                                          "layerDigests": [wasm.digest, toml.digest]}).encode(), MEDIA_WASM_CONFIG)
    manifest = ImageManifest(config, (wasm, toml), {"org.opencontainers.image.description": "Hello from a keep",
                                                    "org.opencontainers.image.licenses": "Apache-2.0",
                                                    "org.opencontainers.image.version": "1.0.0"})
    layout.add_manifest(manifest, "1.0.0")
    return path
