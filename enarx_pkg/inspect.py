"""``enarx-pkg inspect``: what a package holds (manifest, config, layers, Enarx.toml, signatures).

:func:`describe` works on bytes already fetched (from a layout or a registry) through a
``fetch_blob(digest, limit)`` callable that must return verified content; :func:`inspect_layout`
is that for a local OCI image layout.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from enarx_pkg._internal import digest
from enarx_pkg.errors import InputError
from enarx_pkg.package import (
    ANNOTATION_REF_NAME,
    ANNOTATION_TITLE,
    MEDIA_ENARX_CONFIG,
    MEDIA_SIGSTORE_BUNDLE,
    MEDIA_WASM_CONFIG,
    Descriptor,
    ImageManifest,
    Layout,
    RemotePackage,
    load_json,
    locate,
)

if TYPE_CHECKING:
    from enarx_pkg.oci.auth import CredentialSource
    from enarx_pkg.oci.reference import Reference

MAX_CONFIG_BYTES = 1 << 20
MAX_TOML_BYTES = 1 << 20
FetchBlob = Callable[[str, int], bytes]


@dataclass(frozen=True)
class PackageInfo:
    digest: str
    manifest: ImageManifest
    config: dict[str, Any]
    enarx_toml: str | None
    referrers: tuple[Descriptor, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def signatures(self) -> tuple[Descriptor, ...]:
        return tuple(r for r in self.referrers if r.artifact_type == MEDIA_SIGSTORE_BUNDLE)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "tags": list(self.tags),
            "manifest": self.manifest.to_json(),
            "config": self.config,
            "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size,
                        "title": d.annotations.get(ANNOTATION_TITLE)}
                       for d in self.manifest.layers],
            "annotations": dict(self.manifest.annotations),
            "enarxToml": self.enarx_toml,
            "referrers": [r.to_json() for r in self.referrers],
        }


def describe(manifest_digest: str, manifest_bytes: bytes, fetch_blob: FetchBlob,
             referrers: Sequence[Descriptor] = (), tags: Sequence[str] = ()) -> PackageInfo:
    """Parse a package manifest and the small blobs it names (config, Enarx.toml)."""
    digest.check(manifest_bytes, manifest_digest, "manifest")
    manifest = ImageManifest.from_bytes(manifest_bytes, f"manifest {manifest_digest}")
    config: dict[str, Any] = {}
    if manifest.config.media_type == MEDIA_WASM_CONFIG:
        config = load_json(fetch_blob(manifest.config.digest, MAX_CONFIG_BYTES), "config", MAX_CONFIG_BYTES)
    layer = manifest.find_layer(MEDIA_ENARX_CONFIG)
    toml = None
    if layer is not None and layer.media_type == MEDIA_ENARX_CONFIG:  # an encrypted one stays unread
        toml = fetch_blob(layer.digest, MAX_TOML_BYTES).decode("utf-8", "replace")
    return PackageInfo(manifest_digest, manifest, config, toml, tuple(referrers), tuple(tags))


def inspect_layout(layout: Layout, ref: str | None = None) -> PackageInfo:
    """Describe the package in a local OCI image layout (by tag or digest, or its only package)."""
    desc = layout.resolve(ref)
    data = layout.read_blob(desc.digest)
    tags = sorted({t for m in layout.index() if m.digest == desc.digest
                   for t in [m.annotations.get(ANNOTATION_REF_NAME)] if t})
    return describe(desc.digest, data, lambda dg, limit: layout.read_blob(dg, limit),
                    layout.referrers(desc.digest), tags)


def inspect_target(target: str, ref: str | None = None) -> PackageInfo:
    """Describe a package named as :func:`enarx_pkg.package.locate` takes it (a registry one in place)."""
    found = locate(target, ref)
    if isinstance(found, RemotePackage):
        return inspect_remote(found.reference)
    return inspect_layout(found.layout, found.digest)


def inspect_remote(ref: Reference | str, *, credentials: CredentialSource | None = None,
                   plain_http: bool | None = None) -> PackageInfo:
    """A package on a registry: manifest, config, Enarx.toml and referrers, all verified, no layers."""
    from enarx_pkg.oci import reference
    from enarx_pkg.oci.client import Client
    from enarx_pkg.oci.referrers import find_referrers

    ref = reference.parse(ref, plain_http=plain_http) if isinstance(ref, str) else ref
    if credentials is None:
        from enarx_pkg import credentials as _creds

        credentials = _creds.lookup
    with Client(ref.registry, credentials) as client:
        fetched = client.fetch_manifest(ref.repository, ref.reference)
        manifest = ImageManifest.from_bytes(fetched.data, f"manifest {fetched.digest}")
        sizes = {d.digest: d for d in (manifest.config, *manifest.layers)}

        def fetch_blob(dg: str, limit: int) -> bytes:
            desc = sizes[dg]
            if desc.size > limit:
                raise InputError(f"blob {dg} is {desc.size} bytes, over the {limit}-byte limit")
            buf = io.BytesIO()
            client.fetch_blob_to(ref.repository, desc, buf)
            return buf.getvalue()
        refs = find_referrers(client, ref.repository, fetched.digest)
        return describe(fetched.digest, fetched.data, fetch_blob, refs, (ref.tag,) if ref.tag else ())


def render(info: PackageInfo) -> str:
    """The human-readable form printed by ``enarx-pkg inspect``."""
    lines = [f"package   {info.digest}"]
    if info.tags:
        lines.append(f"tags      {', '.join(info.tags)}")
    for key, value in sorted(info.manifest.annotations.items()):
        lines.append(f"  {key.removeprefix('org.opencontainers.image.')}: {value}")
    cfg = info.manifest.config
    lines.append(f"config    {cfg.media_type}  {cfg.digest}  {cfg.size} B")
    for k in ("os", "architecture", "created", "author"):
        if k in info.config:
            lines.append(f"  {k}: {info.config[k]}")
    lines.append("layers")
    for d in info.manifest.layers:
        title = d.annotations.get(ANNOTATION_TITLE, "")
        lines.append(f"  {d.media_type:40} {d.digest}  {d.size:>10} B  {title}")
    lines.append(f"signatures {len(info.signatures)}" + "".join(f"\n  {s.digest}" for s in info.signatures))
    if info.enarx_toml is not None:
        lines.append("Enarx.toml (layer 2)")
        lines.extend("  " + line for line in info.enarx_toml.rstrip().splitlines())
    return "\n".join(lines)
