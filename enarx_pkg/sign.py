"""Sign a package: an SLSA provenance statement in a DSSE envelope in a sigstore bundle v0.3,
attached to the package manifest as an OCI 1.1 referrer, the way cosign attaches bundles.

Key-based signing (ECDSA P-256, ``verificationMaterial.publicKey``, no log entry) is ours;
keyless signing (Fulcio + Rekor) goes through sigstore-python.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg import keys, provenance
from enarx_pkg._internal import dsse, sigstore_bundle
from enarx_pkg.package import (
    EMPTY_JSON,
    MEDIA_EMPTY,
    MEDIA_MANIFEST,
    MEDIA_SIGSTORE_BUNDLE,
    Descriptor,
    ImageManifest,
    Layout,
)

if TYPE_CHECKING:
    from enarx_pkg.manifest.model import Signing
    from enarx_pkg.package import LocalPackage

ANN_CONTENT = "dev.sigstore.bundle.content"
ANN_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
ANN_CREATED = "org.opencontainers.image.created"
ANN_TITLE = "org.opencontainers.image.title"
BUNDLE_FILE_NAME = "bundle.sigstore.json"


@dataclass(frozen=True)
class KeylessOptions:
    """How to obtain a Fulcio certificate: an explicit OIDC token or ambient CI credentials."""

    identity_token: str | None = None
    staging: bool = False
    trust_config: str | None = None  # ClientTrustConfig JSON of a private Sigstore instance


@dataclass(frozen=True)
class Countersign:
    """What a key-based signature may add: an RFC 3161 timestamp, a Rekor entry (URLs; None: no)."""

    timestamp_server: str | None = None
    rekor_url: str | None = None


@dataclass(frozen=True)
class SignResult:
    """What was signed and where the signature was stored."""

    manifest_digest: str
    subject_name: str
    referrer_digest: str
    bundle_digest: str
    kind: str  # "key" | "keyless"
    signer: str
    predicate_type: str
    created: str

    def to_json(self) -> dict[str, str]:
        return {"manifestDigest": self.manifest_digest, "subject": self.subject_name,
                "referrerDigest": self.referrer_digest, "bundleDigest": self.bundle_digest,
                "kind": self.kind, "signer": self.signer, "predicateType": self.predicate_type,
                "created": self.created}


def sign_layout(layout: Layout, ref: str | None = None, *, key: ec.EllipticCurvePrivateKey | None = None,
                keyless: KeylessOptions | None = None, countersign: Countersign | None = None) -> SignResult:
    """Sign the package manifest ``ref`` (default: the layout's one package) and attach the bundle."""
    if (key is None) == (keyless is None):
        raise ValueError("sign_layout needs exactly one of key= or keyless=")
    subject = layout.resolve(ref)
    manifest = layout.manifest(subject.digest)
    record = provenance.read_build_record(layout, subject.digest)
    name = provenance.subject_name(manifest, record, Path(layout.path).resolve().name)
    statement = provenance.statement(subject.digest, manifest, record, name)
    if key is not None:
        bundle, signer = sign_with_key(statement, key, countersign), keys.fingerprint(key.public_key())
    else:
        assert keyless is not None
        from enarx_pkg._internal import sigstore_keyless

        bundle = sigstore_keyless.sign_statement(statement, keyless.identity_token, staging=keyless.staging,
                                                 trust_config=keyless.trust_config)
        signer = _keyless_signer(bundle)
    created = now()
    ref_desc = attach(layout, subject, bundle, provenance.SLSA_PROVENANCE_V1, created)
    bundle_digest = layout.manifest(ref_desc.digest).layers[0].digest
    return SignResult(subject.digest, name, ref_desc.digest, bundle_digest, "key" if key else "keyless",
                      signer, provenance.SLSA_PROVENANCE_V1, created)


def sign_with_key(statement: bytes, key: ec.EllipticCurvePrivateKey, countersign: Countersign | None = None) -> bytes:
    """A key-based bundle v0.3 over an in-toto statement (DSSE, PAE, ECDSA P-256 SHA-256), with
    the timestamp and log entry ``countersign`` asks for. The DSSE keyid is the key hint."""
    hint = keys.hint(key.public_key())
    envelope = dsse.sign(key, dsse.INTOTO_PAYLOAD_TYPE, statement, keyid=hint)
    cs = countersign or Countersign()
    if not (cs.timestamp_server or cs.rekor_url):
        return sigstore_bundle.key_bundle(envelope, hint)
    from enarx_pkg._internal import sigstore_services

    stamps = (sigstore_services.timestamp(cs.timestamp_server, envelope.signatures[0]),) \
        if cs.timestamp_server else ()
    entries = (sigstore_services.upload_dsse(cs.rekor_url, envelope, keys.public_pem(key.public_key())),) \
        if cs.rekor_url else ()
    return sigstore_bundle.key_bundle(envelope, hint, entries, stamps)


def attach(layout: Layout, subject: Descriptor, bundle: bytes, predicate_type: str,
           created: str | None = None) -> Descriptor:
    """Store ``bundle`` as an OCI 1.1 referrer of ``subject`` (untagged), as cosign does."""
    config = layout.put_bytes(EMPTY_JSON, MEDIA_EMPTY)
    # the title is the file name oras and other OCI clients give the blob when they pull it
    layer = layout.put_bytes(bundle, MEDIA_SIGSTORE_BUNDLE, {ANN_TITLE: BUNDLE_FILE_NAME})
    referrer = ImageManifest(
        config=config,
        layers=(layer,),
        annotations={ANN_CONTENT: "dsse-envelope", ANN_PREDICATE_TYPE: predicate_type,
                     ANN_CREATED: created or now()},
        subject=Descriptor(MEDIA_MANIFEST, subject.digest, subject.size),
        artifact_type=MEDIA_SIGSTORE_BUNDLE,
    )
    return layout.add_manifest(referrer)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keyless_signer(bundle: bytes) -> str:
    parsed = sigstore_bundle.parse(bundle)
    if parsed.certificate_der is None:
        return "unknown"
    names, issuer = sigstore_bundle.certificate_identity(parsed.certificate_der)
    return f"{', '.join(names)} ({issuer})"


@dataclass(frozen=True)
class SignSettings:
    """What the ``sign`` command was asked; no key and no keyless falls back to ``[signing]``."""

    key: str | None = None
    keyless: bool = False
    identity_token: str | None = None
    staging: bool = False
    password_env: str | None = keys.DEFAULT_PASSWORD_ENV
    ref: str | None = None
    trust_config: str | None = None
    timestamp_server: str | None = None
    tlog_upload: bool = False


def sign_target(target: str, settings: SignSettings) -> SignResult:
    """Sign a package named as :func:`enarx_pkg.package.locate` takes it; a registry reference is
    pulled, signed, and its new signature published back."""
    from enarx_pkg.errors import UsageError
    from enarx_pkg.package import opened

    if settings.key and settings.keyless:
        raise UsageError("give either --key or --keyless, not both")
    with opened(target, settings.ref) as found:
        result = _sign_opened(found, settings)
        if found.remote:
            _push_signatures(found)
        return result


def _sign_opened(found: LocalPackage, settings: SignSettings) -> SignResult:
    from enarx_pkg.errors import UsageError

    key_path = settings.key
    defaults = signing_defaults(found.project)
    if not key_path and not settings.keyless and defaults is not None and defaults.key and found.project:
        # [signing].key may name either half of the pair; signing needs the private one
        key_path = str(found.project / defaults.key.removesuffix(".pub")) + (
            ".key" if defaults.key.endswith(".pub") else "")
    if key_path:
        key = keys.load_private(Path(key_path), password_env=settings.password_env)
        return sign_layout(found.layout, found.digest, key=key,
                           countersign=_countersign(settings, defaults, found.project))
    if settings.timestamp_server or settings.tlog_upload:
        raise UsageError("--timestamp-server and --tlog-upload are for key-based signing (--key)",
                         hint="keyless bundles get their log entry (and timestamps) from the trust config")
    if not settings.keyless and not (defaults is not None and (defaults.identity or defaults.identity_regexp)):
        raise UsageError("nothing to sign with", hint="pass --key KEY or --keyless")
    return sign_layout(found.layout, found.digest, keyless=KeylessOptions(
        settings.identity_token, settings.staging, trust_config_of(settings, defaults, found.project)))


def _countersign(settings: SignSettings, defaults: Signing | None, project: Path | None) -> Countersign:
    from enarx_pkg._internal import sigstore_services

    rekor = sigstore_services.rekor_url(trust_config_of(settings, defaults, project)) if settings.tlog_upload else None
    return Countersign(settings.timestamp_server, rekor)


def trust_config_of(settings: Any, defaults: Any, project: Path | None) -> str | None:
    """``--trust-config``, else ``[signing] trust_config`` (relative to the project), else None."""
    if settings.trust_config:
        return str(settings.trust_config)
    if defaults is not None and defaults.trust_config:
        return str(Path(project or ".") / defaults.trust_config)
    return None


def _push_signatures(found: LocalPackage) -> None:
    """Publish a pulled layout (now with new referrers) back to the reference it came from."""
    from enarx_pkg import publish
    from enarx_pkg.oci import reference

    assert found.remote is not None
    ref = reference.parse(found.remote)
    publish.publish(found.layout, publish.Target(ref.registry, ref.repository, None), source_ref=found.digest)


def signing_defaults(project: Path | None) -> Signing | None:
    """The ``[signing]`` table of a project's Enarx.toml (None without a project)."""
    if project is None:
        return None
    from enarx_pkg import manifest

    return manifest.load(project / "Enarx.toml").signing
