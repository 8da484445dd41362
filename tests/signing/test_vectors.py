"""Real sigstore bundles (../shared/testvectors/sigstore): made by real Fulcio/Rekor, verified offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from enarx_pkg import verify
from enarx_pkg.errors import Error, VerificationError
from enarx_pkg.package import Layout
from tests.signing.conftest import make_package

GH = "https://github.com/login/oauth"
ACTIONS = "https://token.actions.githubusercontent.com"
DSSE_ID = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
           "extremely-dangerous-oidc-beacon.yml@refs/heads/main")
WHEEL_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
WHEEL_ID = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"

# (bundle, artifact file or None, staging?, identity, issuer)
VALID = [
    ("bundle_v3.txt.sigstore", "bundle_v3.txt", True, "william@yossarian.net", GH),
    ("bundle_v3_alt.txt.sigstore", "bundle_v3_alt.txt", True, "william@yossarian.net", GH),
    ("bundle.txt.sigstore", "bundle.txt", True, "a@tny.town", GH),
    ("staging-rekor-v2.txt.sigstore.json", "staging-rekor-v2.txt", True, "jku@goto.fi", GH),
    ("a.dsse.staging-rekor-v2.txt.sigstore.json", None, True, DSSE_ID, ACTIONS),
    ("bundle_v3_github.whl.sigstore", None, False, WHEEL_ID, ACTIONS),
]
IDS = [v[0] for v in VALID]


def _artifact(dir: Path, bundle: str, artifact: str | None) -> bytes | str:
    """The artifact bytes; the wheel by its digest; the DSSE bundle's payload."""
    if artifact:
        return (dir / artifact).read_bytes()
    if bundle.startswith("bundle_v3_github"):
        return WHEEL_DIGEST
    from enarx_pkg._internal import sigstore_bundle

    env = sigstore_bundle.parse((dir / bundle).read_bytes()).envelope
    assert env is not None
    return env.payload


@pytest.fixture()
def vectors(testvectors: Path) -> Path:
    return testvectors / "sigstore"


@pytest.mark.parametrize(("bundle", "artifact", "staging", "identity", "issuer"), VALID, ids=IDS)
def test_valid_bundle_verifies_offline(vectors: Path, bundle: str, artifact: str | None, staging: bool,
                                       identity: str, issuer: str) -> None:
    policy = verify.IdentityPolicy(identity=identity, issuer=issuer, staging=staging)
    sig = verify.verify_artifact_bundle((vectors / bundle).read_bytes(), _artifact(vectors, bundle, artifact), policy)
    assert sig.kind == "keyless" and identity in sig.signer.split(", ") and sig.issuer == issuer
    if "rekor-v2" not in bundle:  # Rekor v2 entries carry no integrated time
        assert sig.time and sig.time.startswith("20") and sig.time_source and "Rekor" in sig.time_source
    info = verify.describe_bundle((vectors / bundle).read_bytes())
    assert (info.kind, info.issuer) == ("keyless", issuer) and identity in info.signer


@pytest.mark.parametrize(("bundle", "artifact", "staging", "identity", "issuer"), VALID, ids=IDS)
def test_valid_bundle_refused_with_wrong_identity(vectors: Path, bundle: str, artifact: str | None,
                                                  staging: bool, identity: str, issuer: str) -> None:
    policy = verify.IdentityPolicy(identity="mallory@example.com", issuer=issuer, staging=staging)
    with pytest.raises(VerificationError, match="does not match"):
        verify.verify_artifact_bundle((vectors / bundle).read_bytes(), _artifact(vectors, bundle, artifact), policy)


@pytest.mark.parametrize(("bundle", "artifact", "staging", "identity", "issuer"), VALID, ids=IDS)
def test_valid_bundle_refused_with_wrong_issuer(vectors: Path, bundle: str, artifact: str | None,
                                                staging: bool, identity: str, issuer: str) -> None:
    policy = verify.IdentityPolicy(identity=identity, issuer="https://accounts.google.com", staging=staging)
    with pytest.raises(VerificationError, match="issuer"):
        verify.verify_artifact_bundle((vectors / bundle).read_bytes(), _artifact(vectors, bundle, artifact), policy)


@pytest.mark.parametrize(("bundle", "artifact", "staging", "identity", "issuer"), VALID, ids=IDS)
def test_valid_bundle_refused_against_the_other_instance_root(vectors: Path, bundle: str, artifact: str | None,
                                                              staging: bool, identity: str, issuer: str) -> None:
    policy = verify.IdentityPolicy(identity=identity, issuer=issuer, staging=not staging)
    instance = "production" if staging else "staging"
    with pytest.raises(VerificationError, match=f"sigstore {instance} root"):
        verify.verify_artifact_bundle((vectors / bundle).read_bytes(), _artifact(vectors, bundle, artifact), policy)


@pytest.mark.parametrize(("bundle", "artifact", "staging", "identity", "issuer"), VALID, ids=IDS)
def test_valid_bundle_refused_for_a_modified_artifact(vectors: Path, bundle: str, artifact: str | None,
                                                      staging: bool, identity: str, issuer: str) -> None:
    original = _artifact(vectors, bundle, artifact)
    modified: bytes | str = ("sha256:" + hashlib.sha256(original.encode()).hexdigest() if isinstance(original, str)
                             else original[:-1] + bytes([original[-1] ^ 1]))
    policy = verify.IdentityPolicy(identity=identity, issuer=issuer, staging=staging)
    with pytest.raises(VerificationError):
        verify.verify_artifact_bundle((vectors / bundle).read_bytes(), modified, policy)


@pytest.mark.parametrize(("name", "reason"), [
    ("bundle_cve_2022_36056.txt", "transparency log entry is inconsistent"),
    ("bundle_invalid_version.txt", "unknown sigstore bundle media type 'this is completely wrong'"),
    ("bundle_no_log_entry.txt", "expected exactly one log entry"),
])
def test_negative_bundle_is_refused_with_its_reason(vectors: Path, name: str, reason: str) -> None:
    neg = vectors / "negative"
    policy = verify.IdentityPolicy(identity_regexp=".*", issuer_regexp=".*", staging=True)
    with pytest.raises(Error, match=reason):
        verify.verify_artifact_bundle((neg / f"{name}.sigstore").read_bytes(), (neg / name).read_bytes(), policy)


def test_regexp_policy_must_match_the_whole_value(vectors: Path) -> None:
    data = (vectors / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    payload = _artifact(vectors, "a.dsse.staging-rekor-v2.txt.sigstore.json", None)
    ok = verify.IdentityPolicy(identity_regexp=r"https://github\.com/sigstore-conformance/.*@refs/heads/main",
                               issuer_regexp=r"https://token\.actions\.githubusercontent\.com", staging=True)
    assert verify.verify_artifact_bundle(data, payload, ok).issuer == ACTIONS
    partial = verify.IdentityPolicy(identity_regexp="sigstore-conformance", issuer=ACTIONS, staging=True)
    with pytest.raises(VerificationError, match="does not match"):
        verify.verify_artifact_bundle(data, payload, partial)


def test_keyless_dsse_statement_verifies_at_package_level(vectors: Path) -> None:
    """verify_bundle checks a real keyless statement's subject against the digest it is asked about."""
    data = (vectors / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    subject = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
    policy = verify.IdentityPolicy(identity=DSSE_ID, issuer=ACTIONS, staging=True)
    sig = verify.verify_bundle(data, subject, policy)
    assert (sig.subject_name, sig.predicate_type) == ("a.txt", "https://slsa.dev/provenance/v1")
    assert sig.provenance is not None and sig.provenance.build_type.startswith("https://github.com/sigstore-conformance")
    with pytest.raises(VerificationError, match="not the package manifest"):
        verify.verify_bundle(data, "sha256:" + "00" * 32, policy)


def test_keyless_bundle_attached_to_a_layout_goes_through_the_identity_policy(vectors: Path, tmp_path: Path,
                                                                             keypairs: dict[str, Path]) -> None:
    from enarx_pkg import sign

    layout, desc = make_package(tmp_path / "l")
    data = (vectors / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    sign.attach(layout, desc, data, "https://slsa.dev/provenance/v1")
    report = verify.verify_layout_report(Layout.open(tmp_path / "l"), None,
                                         verify.IdentityPolicy(identity=DSSE_ID, issuer=ACTIONS, staging=True))
    assert not report.verified
    (refusal,) = report.refused
    assert "not the package manifest" in refusal.reason  # signature and identity passed; subject did not
    alice = verify.KeyPolicy(keypairs["alice"].with_suffix(".pub").read_bytes())
    key_report = verify.verify_layout_report(layout, None, alice)
    assert "signed keylessly by" in key_report.refused[0].reason
