"""Verify a package's signatures: sigstore bundles attached as OCI referrers of its manifest.

A package passes when its blobs match its manifest (every digest re-hashed) and at least one
attached bundle (1) is signed by the policy's key or by a Fulcio certificate for the policy's
identity and issuer, and (2) holds an in-toto statement whose subject is the manifest digest.

Key-based verification uses only ``cryptography`` and JSON; sigstore is imported lazily, only for
keyless bundles (its import alone costs ~0.4 s).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg import keys, provenance
from enarx_pkg._internal import digest, dsse, sigstore_bundle
from enarx_pkg._internal.sigstore_bundle import MalformedBundle, ParsedBundle
from enarx_pkg.errors import Error, InputError, NotFoundError, UsageError, VerificationError
from enarx_pkg.package import Descriptor, Layout

__all__ = [
    "BundleInfo", "IdentityPolicy", "KeyPolicy", "LayoutReport", "MalformedBundle", "Refusal", "VerificationError",
    "VerifiedSignature", "check_package", "describe_bundle", "verify_artifact_bundle", "verify_bundle",
    "verify_layout", "verify_layout_report",
]

BUNDLE_ARTIFACT_PREFIX = "application/vnd.dev.sigstore.bundle"
ANN_CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class KeyPolicy:
    """Accept bundles signed by this ECDSA P-256 public key (SubjectPublicKeyInfo PEM).

    With ``trust_config``, a bundle's RFC 3161 timestamps must verify against its timestamp
    authorities (and give the signing time); without, they are not read.
    """

    public_key_pem: bytes
    trust_config: str | None = None
    key: ec.EllipticCurvePublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", keys.load_public(self.public_key_pem))


@dataclass(frozen=True)
class IdentityPolicy:
    """Accept keyless bundles whose Fulcio certificate names this identity and OIDC issuer.

    Exactly one of ``identity``/``identity_regexp`` and one of ``issuer``/``issuer_regexp``;
    regexps must match the whole value. ``staging`` selects the sigstore staging trusted root.
    """

    identity: str | None = None
    issuer: str | None = None
    identity_regexp: str | None = None
    issuer_regexp: str | None = None
    staging: bool = False
    trust_config: str | None = None  # ClientTrustConfig JSON of a private Sigstore instance

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_regexp is None):
            raise UsageError("give exactly one of --certificate-identity or --certificate-identity-regexp")
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise UsageError("give exactly one of --certificate-oidc-issuer or --certificate-oidc-issuer-regexp",
                             hint="an identity means nothing without the issuer that vouched for it")
        for flag, pattern in (("--certificate-identity-regexp", self.identity_regexp),
                              ("--certificate-oidc-issuer-regexp", self.issuer_regexp)):
            try:
                re.compile(pattern or "")
            except re.error as exc:
                raise UsageError(f"{flag}: invalid regular expression {pattern!r}: {exc}") from None


Policy = KeyPolicy | IdentityPolicy


@dataclass(frozen=True)
class VerifiedSignature:
    """One bundle that satisfied the policy: who signed, when, what, and how it was built."""

    kind: str  # "key" | "keyless"
    signer: str  # key fingerprint, or certificate identity
    issuer: str | None
    time: str | None
    time_source: str | None
    predicate_type: str
    subject_name: str
    subject_digest: str
    provenance: provenance.ProvenanceSummary | None = None
    referrer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "signer": self.signer, "issuer": self.issuer, "time": self.time,
                "timeSource": self.time_source, "predicateType": self.predicate_type,
                "subject": {"name": self.subject_name, "digest": self.subject_digest},
                "provenance": self.provenance.to_json() if self.provenance else None, "referrer": self.referrer}


@dataclass(frozen=True)
class BundleInfo:
    """What a bundle claims, NOT verified: for display only."""

    kind: str
    signer: str
    issuer: str | None
    predicate_type: str | None
    subject_digest: str | None


@dataclass(frozen=True)
class LayoutReport:
    """Every sigstore referrer of a manifest: the ones that verified and why the others did not."""

    manifest_digest: str
    verified: tuple[VerifiedSignature, ...]
    refused: tuple[Refusal, ...]

    def to_json(self) -> dict[str, Any]:
        return {"manifestDigest": self.manifest_digest, "verified": [v.to_json() for v in self.verified],
                "refused": [{"referrer": r.referrer, "reason": r.reason, "malformed": r.malformed}
                            for r in self.refused]}


@dataclass(frozen=True)
class Refusal:
    """A referrer that did not verify, and why (``malformed``: the bundle itself was not valid)."""

    referrer: str
    reason: str
    malformed: bool


def verify_bundle(bundle_bytes: bytes, manifest_digest: str, policy: Policy, *,
                  offline: bool = True) -> VerifiedSignature:
    """Verify one bundle against ``policy`` and check it is about ``manifest_digest``."""
    parsed = sigstore_bundle.parse(bundle_bytes)
    if parsed.envelope is None:
        raise VerificationError("bundle holds a plain message signature, not a DSSE statement about a package")
    payload_type, payload, signer, issuer = _verify_signature(bundle_bytes, parsed, policy, offline)
    if payload_type != dsse.INTOTO_PAYLOAD_TYPE:
        raise VerificationError(f"DSSE payload type is {payload_type!r}, expected {dsse.INTOTO_PAYLOAD_TYPE}")
    try:
        st = provenance.parse_statement(payload, "signed statement")
    except InputError as exc:
        raise MalformedBundle(exc.message) from None
    subjects = [d for _, d in st.subjects]
    if manifest_digest not in subjects:
        raise VerificationError(f"signed statement is about {', '.join(subjects)}, not the package manifest "
                                f"{manifest_digest}", hint="the signature belongs to another package or build")
    name = next(n for n, d in st.subjects if d == manifest_digest)
    when, source = _time(parsed, policy)
    return VerifiedSignature(parsed.kind, signer, issuer, when, source, st.predicate_type, name,
                             manifest_digest, provenance.summarize(st))


def verify_artifact_bundle(bundle_bytes: bytes, artifact: bytes | str, policy: Policy, *,
                           offline: bool = True) -> VerifiedSignature:
    """Verify a bundle over a plain artifact (its bytes, or its ``sha256:`` digest).

    For a DSSE bundle the artifact is the envelope payload itself.
    """
    parsed = sigstore_bundle.parse(bundle_bytes)
    art_digest = artifact if isinstance(artifact, str) else digest.of_bytes(artifact)
    digest.parse(art_digest)
    if parsed.envelope is not None:
        payload_type, payload, signer, issuer = _verify_signature(bundle_bytes, parsed, policy, offline)
        if digest.of_bytes(payload) != art_digest:
            raise VerificationError(f"the signed DSSE payload is {digest.of_bytes(payload)}, not the artifact "
                                    f"{art_digest}")
        pred = payload_type
    else:
        if not isinstance(policy, IdentityPolicy) or parsed.certificate_der is None:
            raise VerificationError("a message-signature bundle can only be verified keylessly "
                                    "(--certificate-identity/--certificate-oidc-issuer)")
        from enarx_pkg._internal import sigstore_keyless

        sigstore_keyless.verify_artifact(bundle_bytes, artifact, _identity_match(policy), staging=policy.staging,
                                         offline=offline, trust_config=policy.trust_config)
        signer, issuer = _cert_signer(parsed)
        pred = "message-signature"
    when, source = _log_time(parsed)
    return VerifiedSignature(parsed.kind, signer, issuer, when, source, pred, "", art_digest)


def _verify_signature(data: bytes, parsed: ParsedBundle, policy: Policy,
                      offline: bool) -> tuple[str, bytes, str, str | None]:
    """Check the envelope's signature under the policy: (payload type, payload, signer, issuer)."""
    assert parsed.envelope is not None
    if isinstance(policy, KeyPolicy):
        if parsed.kind != "key":
            who, _ = _cert_signer(parsed)
            raise VerificationError(f"bundle is signed keylessly by {who}, but a public key (--key) was required")
        want = keys.hint(policy.key)
        if parsed.key_hint and parsed.key_hint != want:
            raise VerificationError(f"bundle is signed by another key ({keys.hint_fingerprint(parsed.key_hint)}), "
                                    f"not {keys.fingerprint(policy.key)}")
        dsse.verify(policy.key, parsed.envelope)
        return parsed.envelope.payload_type, parsed.envelope.payload, keys.fingerprint(policy.key), None
    if parsed.kind != "keyless":
        signer = keys.hint_fingerprint(parsed.key_hint or "")
        raise VerificationError(f"bundle is signed with a key ({signer}), but a certificate "
                                "identity was required", hint="verify it with --key PUBLIC_KEY")
    from enarx_pkg._internal import sigstore_keyless

    payload_type, payload = sigstore_keyless.verify_dsse(data, _identity_match(policy), staging=policy.staging,
                                                         offline=offline, trust_config=policy.trust_config)
    signer, issuer = _cert_signer(parsed)
    return payload_type, payload, signer, issuer


def _identity_match(policy: IdentityPolicy) -> Any:
    from enarx_pkg._internal import sigstore_keyless

    return sigstore_keyless.IdentityMatch(policy.identity, policy.issuer, policy.identity_regexp,
                                          policy.issuer_regexp)


def _cert_signer(parsed: ParsedBundle) -> tuple[str, str | None]:
    if parsed.certificate_der is None:
        return f"key {parsed.key_hint}", None
    names, issuer = sigstore_bundle.certificate_identity(parsed.certificate_der)
    return ", ".join(names), issuer


def _time(parsed: ParsedBundle, policy: Policy) -> tuple[str | None, str | None]:
    """When it was signed: a key bundle's RFC 3161 timestamps, verified (all of them) when the
    policy names a trust config; else the log's integrated time."""
    if isinstance(policy, KeyPolicy) and policy.trust_config and parsed.timestamps:
        from enarx_pkg._internal import sigstore_services

        assert parsed.envelope is not None
        times = [sigstore_services.verified_time(t, parsed.envelope.signatures[0], policy.trust_config)
                 for t in parsed.timestamps]
        return min(times), "RFC 3161 timestamp (verified against the trust config's TSA)"
    return _log_time(parsed)


def _log_time(parsed: ParsedBundle) -> tuple[str | None, str | None]:
    if parsed.integrated_time is None:
        return None, None
    when = dt.datetime.fromtimestamp(parsed.integrated_time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if parsed.kind == "key":  # sigstore checked the entry of a keyless bundle; nothing checks this one
        return when, "Rekor integrated time (not verified: --key checks the signature only)"
    return when, "transparency log (Rekor integrated time)"


def check_package(layout: Layout, subject: Descriptor) -> None:
    """Re-hash the manifest, its config and every layer; refuse on any mismatch or missing blob."""
    try:
        manifest = layout.manifest(subject.digest)
    except VerificationError as exc:
        raise VerificationError(f"package manifest {subject.digest} was altered: {exc.message}") from None
    parts = [("config", manifest.config)] + [(f"layer {i} ({d.media_type})", d) for i, d in enumerate(manifest.layers)]
    for what, desc in parts:
        path = layout.blob_path(desc.digest)
        if not path.is_file():
            raise NotFoundError(f"{what} blob {desc.digest} is missing from {layout.path}")
        actual, size = digest.of_file(path)
        if actual != desc.digest or size != desc.size:
            raise VerificationError(f"{what} blob {desc.digest} does not match the manifest "
                                    f"(it hashes to {actual}, {size} bytes; the manifest says {desc.size})")


def verify_layout_report(layout: Layout, ref: str | None, policy: Policy, *, offline: bool = True) -> LayoutReport:
    """Check the package blobs, then every sigstore referrer of its manifest, and report each."""
    try:
        subject = layout.resolve(ref)
    except VerificationError as exc:
        raise VerificationError(f"a manifest in {layout.path} was altered: {exc.message}") from None
    check_package(layout, subject)
    referrers = [r for r in layout.referrers(subject.digest)
                 if (r.artifact_type or "").startswith(BUNDLE_ARTIFACT_PREFIX)]
    if referrers and isinstance(policy, IdentityPolicy) and policy.trust_config:
        from enarx_pkg._internal import sigstore_keyless

        # an unusable trust config is the caller's error (65/66), not one refusal per signature
        sigstore_keyless.verifier(policy.staging, offline, policy.trust_config)
    verified: list[VerifiedSignature] = []
    refused: list[Refusal] = []
    for r in referrers:
        try:
            verified.append(_verify_referrer(layout, r, subject.digest, policy, offline))
        except Error as exc:
            refused.append(Refusal(r.digest, exc.message, isinstance(exc, MalformedBundle)))
    return LayoutReport(subject.digest, tuple(verified), tuple(refused))


def verify_layout(layout: Layout, ref: str | None, policy: Policy, *, offline: bool = True) -> list[VerifiedSignature]:
    """The signatures on package ``ref`` that satisfy ``policy``; raise if there is none."""
    report = verify_layout_report(layout, ref, policy, offline=offline)
    if report.verified:
        return list(report.verified)
    raise refusal(report)


def refusal(report: LayoutReport) -> Error:
    """The error for a report with no valid signature: malformed (65) only if every bundle was."""
    if not report.refused:
        return VerificationError(f"package {report.manifest_digest} has no sigstore signature attached",
                                 hint="sign it with `enarx-pkg sign` before `enarx-pkg publish` (which pushes "
                                      "its signatures); `enarx-pkg pull` brings them along, skopeo copy does not")
    reasons = "; ".join(f"signature {r.referrer[:19]}…: {r.reason}" for r in report.refused)
    msg = f"no signature on {report.manifest_digest} satisfies the policy: {reasons}"
    return MalformedBundle(msg) if all(r.malformed for r in report.refused) else VerificationError(msg)


def _verify_referrer(layout: Layout, ref: Descriptor, manifest_digest: str, policy: Policy,
                     offline: bool) -> VerifiedSignature:
    man = layout.manifest(ref.digest)
    layers = [d for d in man.layers if d.media_type.startswith(BUNDLE_ARTIFACT_PREFIX)]
    if len(layers) != 1:
        raise MalformedBundle(f"referrer has {len(layers)} sigstore bundle layers, expected 1")
    data = layout.read_blob(layers[0].digest, sigstore_bundle.MAX_BUNDLE_BYTES)
    sig = verify_bundle(data, manifest_digest, policy, offline=offline)
    if sig.time is None and man.annotations.get(ANN_CREATED):
        sig = replace(sig, time=man.annotations[ANN_CREATED], time_source="referrer annotation (not signed)")
    return replace(sig, referrer=ref.digest)


def describe_bundle(bundle_bytes: bytes) -> BundleInfo:
    """What a bundle claims (signer, issuer, predicate, subject) WITHOUT verifying anything."""
    parsed = sigstore_bundle.parse(bundle_bytes)
    signer, issuer = _cert_signer(parsed)
    pred = subject = None
    if parsed.envelope is not None:
        try:
            st = provenance.parse_statement(parsed.envelope.payload)
            pred, subject = st.predicate_type, st.subjects[0][1]
        except InputError:
            pass
    return BundleInfo(parsed.kind, signer, issuer, pred, subject)


@dataclass(frozen=True)
class VerifySettings:
    """What the ``verify`` command was asked; empty fields fall back to Enarx.toml ``[signing]``."""

    key: str | None = None
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    staging: bool = False
    offline: bool = True
    ref: str | None = None
    trust_config: str | None = None


def verify_target(target: str, settings: VerifySettings) -> LayoutReport:
    """Verify a layout, project directory or remote reference; raise unless a signature passes."""
    from pathlib import Path

    from enarx_pkg.package import opened
    from enarx_pkg.sign import signing_defaults

    with opened(target, settings.ref) as t:
        policy = policy_for(settings, signing_defaults(t.project), t.project or Path.cwd())
        report = verify_layout_report(t.layout, t.digest, policy, offline=settings.offline)
    if not report.verified:
        raise refusal(report)
    return report


def verify_bundle_file(path: str, subject_digest: str, settings: VerifySettings) -> LayoutReport:
    """Verify a standalone bundle file (``cosign verify-blob --bundle`` style) about ``subject_digest``:
    a DSSE statement must name it as a subject; a message signature must sign it."""
    from pathlib import Path

    from enarx_pkg._internal import bounded

    digest.parse(subject_digest)
    data = bounded.file(Path(path), "bundle", sigstore_bundle.MAX_BUNDLE_BYTES)
    policy = policy_for(settings, None, Path.cwd())
    if sigstore_bundle.parse(data, path).envelope is None:
        sig = verify_artifact_bundle(data, subject_digest, policy, offline=settings.offline)
    else:
        sig = verify_bundle(data, subject_digest, policy, offline=settings.offline)
    return LayoutReport(subject_digest, (sig,), ())


def policy_for(s: VerifySettings, defaults: Any, base: Any) -> Policy:
    """The policy from explicit flags, else from ``[signing]`` (a ``.key`` path means its ``.pub``)."""
    from pathlib import Path

    explicit = s.key or s.identity or s.identity_regexp
    if not explicit and defaults is not None:
        key = defaults.key.removesuffix(".key") + ".pub" if defaults.key and defaults.key.endswith(".key") \
            else defaults.key
        s = replace(s, key=str(Path(base) / key) if key else None, identity=defaults.identity,
                    identity_regexp=defaults.identity_regexp, issuer=s.issuer or defaults.issuer,
                    issuer_regexp=s.issuer_regexp or defaults.issuer_regexp)
    if s.key and (s.identity or s.identity_regexp):
        raise UsageError("give either --key or --certificate-identity(-regexp), not both")
    if s.key:
        from enarx_pkg.sign import trust_config_of

        return KeyPolicy(keys.read_public_pem(Path(s.key)), trust_config_of(s, defaults, base))
    if not (s.identity or s.identity_regexp):
        raise UsageError("nothing to verify against",
                         hint="pass --key PUB or --certificate-identity ID --certificate-oidc-issuer ISS "
                              "(or set [signing] in Enarx.toml)")
    from enarx_pkg.sign import trust_config_of

    return IdentityPolicy(s.identity, s.issuer, s.identity_regexp, s.issuer_regexp, s.staging,
                          trust_config_of(s, defaults, base))
