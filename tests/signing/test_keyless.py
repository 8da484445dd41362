"""Keyless signing end to end against sigstore's own mock Fulcio and Rekor on loopback.

OIDC token in -> Fulcio certificate -> Rekor entry -> bundle -> verified by identity and issuer,
by enarx-pkg, by sigstore-python's Verifier and by sigstore-js: three verifiers must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from tests.signing.conftest import bundle_of, make_package
from tests.signing.sigstore_peers import IDENTITY, ISSUER, PrivateSigstore, oidc_token, sigstore_js_verify


@pytest.fixture(scope="session")
def keyless_signed(tmp_path_factory: pytest.TempPathFactory,
                   private_sigstore: PrivateSigstore) -> tuple[Path, str, Path]:
    """A package signed keylessly through the mock (layout, manifest digest, bundle file)."""
    d = tmp_path_factory.mktemp("keyless")
    layout, desc = make_package(d / "layout", name="keyless")
    token = d / "token"
    token.write_text(oidc_token())
    token.chmod(0o600)
    code = main(["sign", str(d / "layout"), "--keyless", "--identity-token", str(token),
                 "--trust-config", str(private_sigstore.trust_config)])
    assert code == 0
    _, bundle = bundle_of(layout, desc.digest)
    (d / "bundle.json").write_bytes(bundle)
    return d / "layout", desc.digest, d / "bundle.json"


def test_keyless_bundle_verifies_with_enarx_pkg(keyless_signed: tuple[Path, str, Path],
                                                private_sigstore: PrivateSigstore,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    layout, digest, _ = keyless_signed
    capsys.readouterr()
    assert main(["verify", str(layout), "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
                 "--trust-config", str(private_sigstore.trust_config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (sig,) = report["verified"]
    assert report["manifestDigest"] == digest
    assert sig["kind"] == "keyless" and sig["signer"] == IDENTITY and sig["issuer"] == ISSUER
    assert sig["timeSource"] == "transparency log (Rekor integrated time)"
    assert sig["provenance"]["builder"] == "https://enarx.dev/enarx-pkg/local"


def test_keyless_bundle_verifies_with_sigstore_python(keyless_signed: tuple[Path, str, Path],
                                                      private_sigstore: PrivateSigstore) -> None:
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.verify import Verifier, policy

    config = ClientTrustConfig.from_json(private_sigstore.trust_config.read_text())
    bundle = Bundle.from_json(keyless_signed[2].read_bytes())
    payload_type, payload = Verifier(trusted_root=config.trusted_root).verify_dsse(
        bundle, policy.Identity(identity=IDENTITY, issuer=ISSUER))
    assert payload_type == "application/vnd.in-toto+json"
    assert json.loads(payload)["subject"][0]["digest"]["sha256"] == keyless_signed[1].removeprefix("sha256:")


def test_keyless_bundle_verifies_with_sigstore_js(keyless_signed: tuple[Path, str, Path],
                                                  private_sigstore: PrivateSigstore) -> None:
    verdict = sigstore_js_verify(keyless_signed[2], private_sigstore.trusted_root,
                                 "--identity", IDENTITY, "--issuer", ISSUER)
    assert verdict["ok"], verdict
    assert verdict["identity"]["subjectAlternativeName"] == IDENTITY


def test_bundle_whose_certificate_key_is_not_the_signing_key_is_refused(
        tmp_path: Path, private_sigstore: PrivateSigstore, capsys: pytest.CaptureFixture[str]) -> None:
    """The bug of issue 18, reproduced with sigstore-python's own Signer(cache=False): refused (77)."""
    from sigstore import dsse
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    from enarx_pkg import provenance, sign

    layout, desc = make_package(tmp_path / "layout", name="mismatch")
    statement = provenance.statement(desc.digest, layout.manifest(desc.digest), None, "mismatch")
    context = SigningContext.from_trust_config(ClientTrustConfig.from_json(private_sigstore.trust_config.read_text()))
    with context.signer(IdentityToken(oidc_token()), cache=False) as signer:
        bundle = signer.sign_dsse(dsse.Statement(statement)).to_json().encode()
    sign.attach(layout, desc, bundle, provenance.SLSA_PROVENANCE_V1)
    assert main(["verify", str(tmp_path / "layout"), "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", ISSUER, "--trust-config", str(private_sigstore.trust_config)]) == 77
    err = capsys.readouterr().err
    assert "keyless signature refused" in err and "signature" in err.lower()
    (tmp_path / "b.json").write_bytes(bundle)
    verdict = sigstore_js_verify(tmp_path / "b.json", private_sigstore.trusted_root, "--identity", IDENTITY,
                                 "--issuer", ISSUER)
    assert not verdict["ok"]  # sigstore-js agrees


def test_wrong_issuer_message_names_the_expected_issuer(keyless_signed: tuple[Path, str, Path],
                                                        private_sigstore: PrivateSigstore,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(keyless_signed[0]), "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
                 "--trust-config", str(private_sigstore.trust_config)]) == 77
    err = capsys.readouterr().err
    assert f"certificate OIDC issuer is '{ISSUER}'" in err
    assert "the expected 'https://token.actions.githubusercontent.com'" in err


def test_wrong_identity_is_refused(keyless_signed: tuple[Path, str, Path], private_sigstore: PrivateSigstore,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(keyless_signed[0]), "--certificate-identity-regexp", "^https://github.com/evil/.*",
                 "--certificate-oidc-issuer", ISSUER, "--trust-config", str(private_sigstore.trust_config)]) == 77
    assert "the expected regexp '^https://github.com/evil/.*'" in capsys.readouterr().err


def test_keyless_bundle_is_refused_under_the_public_root(keyless_signed: tuple[Path, str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Without --trust-config the private instance's certificates chain to nothing we trust."""
    assert main(["verify", str(keyless_signed[0]), "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", ISSUER]) == 77
    assert "sigstore production root" in capsys.readouterr().err
