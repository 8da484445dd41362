"""Publish a package from an OCI layout to a registry: blobs, manifest by digest, tag, signatures.

Order matters to anyone pulling concurrently: every blob exists before the manifest that names it,
the manifest exists (by digest) before the tag points at it, and signatures go last, attached to the
digest. Signature referrers use the OCI 1.1 referrers API when the registry has it (it says so with
an ``OCI-Subject`` header on the manifest PUT); otherwise the referrers tag schema (an index tagged
``sha256-<hex>``) is fetched, merged and pushed, so a second signature adds to the first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from enarx_pkg.errors import NotFoundError, UsageError
from enarx_pkg.oci import reference as _ref
from enarx_pkg.oci import referrers
from enarx_pkg.oci.auth import CredentialSource
from enarx_pkg.oci.client import Client, ProgressFactory, blob_label
from enarx_pkg.oci.transport import Settings
from enarx_pkg.package import (
    ANNOTATION_REF_NAME,
    MAX_MANIFEST_BYTES,
    MEDIA_MANIFEST,
    Descriptor,
    ImageManifest,
    Layout,
    tag_for_version,
)

ANNOTATION_VERSION = "org.opencontainers.image.version"

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class Target:
    """Where to publish: registry, repository and (optional) tag."""

    registry: _ref.Registry
    repository: str
    tag: str | None = None


@dataclass
class PublishResult:
    reference: _ref.Reference  # registry/repo@sha256:...
    tag: str | None
    pushed: int = 0
    skipped: int = 0
    mounted: int = 0
    referrers: list[str] = field(default_factory=list)
    referrers_via: str | None = None  # "api" or "tag-schema"

    def to_json(self) -> dict[str, object]:
        return {
            "reference": str(self.reference.with_tag(None)),
            "tag": self.tag,
            "blobs": {"pushed": self.pushed, "skipped": self.skipped, "mounted": self.mounted},
            "referrers": self.referrers,
            "referrers_via": self.referrers_via,
        }


def target_from(registry: str | None, repository: str | None, tag: str | None, enarx_toml: Path | None,
                *, plain_http: bool | None = None) -> Target:
    """Fill registry and repository left out on the command line from ``[publish]`` and ``[package]``.

    The tag is not taken from Enarx.toml: a left-out tag is the published package's own (see
    :func:`package_tag`), so ``DIR:0.1.0`` goes out as 0.1.0 after the project moved on to 0.2.0.
    """
    if enarx_toml is not None and not (registry and repository):
        from enarx_pkg.manifest import load

        model = load(enarx_toml)
        registry = registry or model.publish.registry
        pkg = model.package
        repository = repository or model.publish.repository or (pkg.name if pkg else None)
    if not registry or not repository:
        raise UsageError("no registry or repository to publish to",
                         hint="pass --registry and --repository, or set [publish] in Enarx.toml")
    reg = _ref.parse_registry(registry, plain_http=plain_http)
    return Target(reg, _ref.check_repository(repository), _ref.check_tag(tag) if tag else None)


def publish(layout: Layout, target: Target, *, credentials: CredentialSource | None = None,
            settings: Settings | None = None, progress: ProgressFactory | None = None,
            mount_from: str | None = None, source_ref: str | None = None,
            recipients: tuple[Path, ...] = (), sign_key: ec.EllipticCurvePrivateKey | None = None) -> PublishResult:
    """Push the package in ``layout`` (and its signatures) to ``target``; encrypt first if asked.

    Encryption makes a new manifest (its digest covers the ciphertext), which the plaintext's
    signatures do not cover: ``sign_key`` (an EC private key) signs the encrypted manifest.
    """
    if recipients:
        layout, source_ref = _encrypt(layout, recipients, source_ref), None
        if sign_key is not None:
            from enarx_pkg.sign import sign_layout

            sign_layout(layout, key=sign_key)
    if credentials is None:
        from enarx_pkg import credentials as _creds

        credentials = _creds.lookup
    desc = layout.resolve(source_ref)
    with Client(target.registry, credentials, settings) as client:
        p = _Publisher(client, target.repository, layout, progress, mount_from)
        p.package(desc)
        tag = target.tag or package_tag(layout, desc)
        if tag:
            client.put_manifest(target.repository, tag, p.manifest_bytes(desc.digest), MEDIA_MANIFEST)
        p.signatures(desc.digest)
    ref = _ref.Reference(target.registry, target.repository, tag, desc.digest)
    return PublishResult(ref, tag, p.pushed, p.skipped, p.mounted, p.refs, p.via)


def package_tag(layout: Layout, desc: Descriptor) -> str | None:
    """The tag a package is published under by default: its tag in the layout, else its version."""
    tag = desc.annotations.get(ANNOTATION_REF_NAME)
    if not tag:
        version = layout.manifest(desc.digest).annotations.get(ANNOTATION_VERSION)
        tag = tag_for_version(version) if version else None
    return _ref.check_tag(tag) if tag else None


def _encrypt(layout: Layout, recipients: tuple[Path, ...], source_ref: str | None) -> Layout:
    """A temporary layout holding only the encrypted form of the package ``source_ref``."""
    from enarx_pkg.encrypt import encrypt_layout, read_recipients

    return encrypt_layout(layout, read_recipients(recipients), ref=source_ref)


class _Publisher:
    def __init__(self, client: Client, repo: str, layout: Layout, progress: ProgressFactory | None,
                 mount_from: str | None) -> None:
        self.client, self.repo, self.layout = client, repo, layout
        self.progress, self.mount_from = progress, mount_from
        self.pushed = self.skipped = self.mounted = 0
        self.lock = threading.Lock()
        self.refs: list[str] = []
        self.via: str | None = None

    def manifest_bytes(self, dg: str) -> bytes:
        return self.layout.read_blob(dg, MAX_MANIFEST_BYTES)  # re-hashed: we push what we signed

    def package(self, desc: Descriptor) -> bytes:
        data = self.manifest_bytes(desc.digest)
        manifest = ImageManifest.from_bytes(data, f"manifest {desc.digest}")
        self.blobs((manifest.config, *manifest.layers))
        self.client.put_manifest(self.repo, desc.digest, data, MEDIA_MANIFEST)
        return data

    def blobs(self, blobs: tuple[Descriptor, ...]) -> None:
        """Push ``blobs``: the smallest alone first, then the rest side by side (as skopeo does).

        The first one settles the auth scheme, token and credential lookup on its own, so the
        concurrent ones reuse them instead of each answering the same challenge. The small blobs'
        round trips (HEAD, POST, PUT each) then hide behind the big one's upload. Every blob is
        done (or has failed) before this returns; the first failure is raised.
        """
        first, *rest = sorted(blobs, key=lambda d: d.size)
        self.blob(first)
        if len(rest) < 2:
            for d in rest:
                self.blob(d)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(rest), 4), thread_name_prefix="publish") as pool:
            futures = [pool.submit(self.blob, d) for d in reversed(rest)]  # the biggest starts first
        for f in futures:
            f.result()

    def blob(self, desc: Descriptor) -> None:
        if not self.layout.has_blob(desc.digest):
            raise NotFoundError(f"blob {desc.digest} is missing from {self.layout.path}")
        report = self.progress(blob_label(desc), desc.size) if self.progress else None
        outcome = self.client.push_blob(self.repo, desc, lambda: self.layout.open_blob(desc.digest),
                                        mount_from=self.mount_from, progress=report)
        if report:
            report(desc.size)
        with self.lock:
            if outcome == "skipped":
                self.skipped += 1
            elif outcome == "mounted":
                self.mounted += 1
            else:
                self.pushed += 1

    def signatures(self, subject: str) -> None:
        refs = self.layout.referrers(subject)
        if not refs:
            return
        api = True
        for r in refs:
            data = self.manifest_bytes(r.digest)
            manifest = ImageManifest.from_bytes(data, f"referrer {r.digest}")
            self.blobs((manifest.config, *manifest.layers))
            headers = self.client.put_manifest(self.repo, r.digest, data, MEDIA_MANIFEST)
            api = api and headers.get("oci-subject") == subject
            self.refs.append(r.digest)
        self.via = "api" if api else "tag-schema"
        if not api:
            referrers.merge_tag_index(self.client, self.repo, subject, refs)
