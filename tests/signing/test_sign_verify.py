"""Signing a package and verifying it: the bundle, the provenance, the referrer, several signers."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from enarx_pkg import keys, provenance, sign, verify
from enarx_pkg.errors import VerificationError
from enarx_pkg.package import EMPTY_JSON, MEDIA_EMPTY, MEDIA_SIGSTORE_BUNDLE, Layout
from tests.conftest import REPO
from tests.signing.conftest import bundle_of, make_package, pub


def _statement(bundle: bytes) -> dict:
    return json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))


def test_signed_package_verifies_with_its_key(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    (sig,) = verify.verify_layout(layout, None, verify.KeyPolicy(pub(keypairs["alice"])))
    alice = keys.load_public(pub(keypairs["alice"]))
    assert (sig.kind, sig.signer, sig.subject_digest) == ("key", keys.fingerprint(alice), manifest)
    assert sig.subject_name == "hello" and sig.predicate_type == provenance.SLSA_PROVENANCE_V1
    assert sig.time and sig.time_source == "referrer annotation (not signed)"
    assert sig.provenance == provenance.ProvenanceSummary(
        builder="https://enarx.dev/enarx-pkg/local", build_type="https://enarx.dev/enarx-pkg/build/v1",
        command="wat2wasm hello.wat", source_repository="https://example.com/hello.git",
        source_revision="0123456789abcdef0123456789abcdef01234567", inputs=1)


def test_bundle_is_a_v03_key_bundle_with_an_slsa_statement(signed: tuple[Layout, str],
                                                            keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _, bundle = bundle_of(layout, manifest)
    obj = json.loads(bundle)
    assert obj["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    alice = keys.load_public(pub(keypairs["alice"]))
    assert obj["verificationMaterial"] == {"publicKey": {"hint": keys.hint(alice)}, "tlogEntries": []}
    assert obj["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    st = _statement(bundle)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["subject"] == [{"name": "hello", "digest": {"sha256": manifest.removeprefix("sha256:")}}]
    bd = st["predicate"]["buildDefinition"]
    assert bd["externalParameters"] == {"command": ["wat2wasm", "hello.wat"], "workdir": "."}
    assert bd["internalParameters"] == {"toolchains": {"wasmtime": "50.0.1"}, "sourceDateEpoch": 1764115200}
    assert {"name": "hello.wat", "digest": {"sha256": "ab" * 32}} in bd["resolvedDependencies"]
    assert st["predicate"]["runDetails"]["builder"]["id"] == "https://enarx.dev/enarx-pkg/local"


def test_bundle_matches_the_protobuf_specs_models(signed: tuple[Layout, str]) -> None:
    """Round-trips through sigstore's protobuf-level models; sigstore.models.Bundle refuses key bundles."""
    from sigstore.dsse import Statement
    from sigstore.models import Bundle, InvalidBundle
    from sigstore_models.bundle.v1 import Bundle as ProtoBundle

    layout, manifest = signed
    _, bundle = bundle_of(layout, manifest)
    assert ProtoBundle.from_json(bundle).to_dict() == json.loads(bundle)
    Statement(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))  # a valid in-toto statement
    with pytest.raises(InvalidBundle, match="expected certificate"):
        Bundle.from_json(bundle)  # sigstore-python only models keyless bundles


def test_referrer_manifest_is_shaped_like_cosigns(signed: tuple[Layout, str]) -> None:
    layout, manifest = signed
    ref_digest, bundle = bundle_of(layout, manifest)
    ref = layout.manifest(ref_digest)
    assert ref.artifact_type == MEDIA_SIGSTORE_BUNDLE
    assert (ref.config.media_type, ref.config.size) == (MEDIA_EMPTY, len(EMPTY_JSON))
    assert ref.config.digest == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert [(d.media_type, d.size) for d in ref.layers] == [(MEDIA_SIGSTORE_BUNDLE, len(bundle))]
    assert ref.subject is not None and ref.subject.digest == manifest
    assert ref.annotations["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert ref.annotations["dev.sigstore.bundle.predicateType"] == "https://slsa.dev/provenance/v1"
    assert ref.annotations["org.opencontainers.image.created"].endswith("Z")
    assert layout.resolve(None).digest == manifest  # the referrer is not mistaken for the package
    assert all("org.opencontainers.image.ref.name" not in d.annotations
               for d in layout.index() if d.digest == ref_digest)  # untagged


def test_two_signatures_coexist_and_each_key_finds_its_own(signed: tuple[Layout, str],
                                                           keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    sign.sign_layout(layout, None, key=keys.load_private(keypairs["bob"].with_suffix(".key"), password_env=None))
    assert len(layout.referrers(manifest)) == 2
    for who in ("alice", "bob"):
        report = verify.verify_layout_report(layout, None, verify.KeyPolicy(pub(keypairs[who])))
        assert len(report.verified) == 1 and len(report.refused) == 1
        assert report.verified[0].signer == keys.fingerprint(keys.load_public(pub(keypairs[who])))
        assert "another key" in report.refused[0].reason
    with pytest.raises(VerificationError, match="no signature"):
        verify.verify_layout(layout, None, verify.KeyPolicy(pub(keypairs["mallory"])))


def test_without_a_build_record_the_provenance_says_what_the_manifest_says(
        tmp_path: Path, keypairs: dict[str, Path]) -> None:
    layout, _ = make_package(tmp_path / "l", record=False)
    sign.sign_layout(layout, None, key=keys.load_private(keypairs["alice"].with_suffix(".key"), password_env=None))
    (sig,) = verify.verify_layout(layout, "0.1.0", verify.KeyPolicy(pub(keypairs["alice"])))
    assert sig.provenance is not None
    assert sig.provenance.builder == "unknown" and sig.provenance.command is None
    assert sig.provenance.source_repository == "https://example.com/hello.git"


def test_a_build_record_of_another_manifest_is_not_used(tmp_path: Path, keypairs: dict[str, Path]) -> None:
    layout, _ = make_package(tmp_path / "l")
    record = json.loads((tmp_path / "l" / "enarx-build.json").read_bytes())
    record["manifestDigest"] = "sha256:" + "00" * 32
    (tmp_path / "l" / "enarx-build.json").write_text(json.dumps(record))
    sign.sign_layout(layout, None, key=keys.load_private(keypairs["alice"].with_suffix(".key"), password_env=None))
    (sig,) = verify.verify_layout(layout, None, verify.KeyPolicy(pub(keypairs["alice"])))
    assert sig.provenance is not None and sig.provenance.builder == "unknown"


def test_describe_bundle_reports_without_verifying(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _, bundle = bundle_of(layout, manifest)
    info = verify.describe_bundle(bundle)
    alice = keys.load_public(pub(keypairs["alice"]))
    assert (info.kind, info.signer, info.issuer) == ("key", f"key {keys.hint(alice)}", None)
    assert (info.predicate_type, info.subject_digest) == (provenance.SLSA_PROVENANCE_V1, manifest)


def test_key_based_verification_never_imports_sigstore(pristine: tuple[Path, str], keypairs: dict[str, Path]) -> None:
    code = (
        "import sys\n"
        "from enarx_pkg._cli.main import main\n"
        f"rc = main(['verify', {str(pristine[0])!r}, '--key', {str(pub_path(keypairs))!r}])\n"
        "roots = ('sigstore', 'sigstore_models', 'rekor_types', 'tuf')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "print('RC', rc, 'HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "RC 0 HEAVY []" in out, out


def pub_path(keypairs: dict[str, Path]) -> Path:
    return keypairs["alice"].with_suffix(".pub")
