"""Keyless signing end to end against sigstore's own mock Fulcio and Rekor on loopback.

OIDC token in -> Fulcio certificate -> Rekor entry -> bundle -> verified by identity and issuer,
by enarx-pkg, by sigstore-python's Verifier and by sigstore-js: three verifiers must agree.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.package import Layout
from tests.signing.conftest import bundle_of, make_package
from tests.signing.sigstore_peers import (
    IDENTITY,
    ISSUER,
    PrivateSigstore,
    failing_service,
    oidc_token,
    sigstore_js_verify,
    with_service,
)


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


MALFORMED_ENTRIES = {
    "no inclusion proof": lambda e: e.pop("inclusionProof"),
    "no kind": lambda e: e.pop("kindVersion"),
    "no log id": lambda e: e.pop("logId"),
    "body of another kind": lambda e: e.update(canonicalizedBody=base64.b64encode(b'{"kind":"x"}').decode()),
    "body not JSON": lambda e: e.update(canonicalizedBody=base64.b64encode(b"hello").decode()),
    "checkpoint garbage": lambda e: e["inclusionProof"]["checkpoint"].update(envelope="garbage"),
    "proof hash garbage": lambda e: e["inclusionProof"].update(hashes=["AAAA"]),
    "tree size 0": lambda e: e["inclusionProof"].update(treeSize="0"),
}


@pytest.mark.parametrize("mutation", sorted(MALFORMED_ENTRIES))
def test_malformed_log_entry_is_a_refusal(mutation: str, tmp_path: Path, keyless_signed: tuple[Path, str, Path],
                                          private_sigstore: PrivateSigstore,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from enarx_pkg import provenance, sign

    _layout, desc = make_package(tmp_path / "layout", name="keyless")
    bundle = json.loads(keyless_signed[2].read_bytes())
    MALFORMED_ENTRIES[mutation](bundle["verificationMaterial"]["tlogEntries"][0])
    sign.attach(Layout.open(tmp_path / "layout"), desc, json.dumps(bundle).encode(), provenance.SLSA_PROVENANCE_V1)
    code = main(["verify", str(tmp_path / "layout"), "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", ISSUER, "--trust-config", str(private_sigstore.trust_config)])
    err = capsys.readouterr().err
    assert code == 77, err
    assert "internal error" not in err and "Traceback" not in err


def _sign_keyless(layout: Path, token: Path, config: Path) -> int:
    return main(["sign", str(layout), "--keyless", "--identity-token", str(token), "--trust-config", str(config)])


@pytest.mark.parametrize(("service", "field"), [("Fulcio", "caUrls"), ("Rekor", "rekorTlogUrls")])
def test_service_failure_exits_69_naming_the_service(service: str, field: str, tmp_path: Path,
                                                     private_sigstore: PrivateSigstore,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    make_package(tmp_path / "layout", name="down")
    raw = oidc_token()
    (tmp_path / "token").write_text(raw)
    with failing_service(503) as url:
        config = with_service(private_sigstore.trust_config, tmp_path / "tc.json", field, url)
        code = _sign_keyless(tmp_path / "layout", tmp_path / "token", config)
    err = capsys.readouterr().err
    assert code == 69, err
    assert f"{service} failed: HTTP 503" in err and "127.0.0.1" in err
    assert raw not in err and raw.split(".")[1] not in err  # the token never shows
    layout = Layout.open(tmp_path / "layout")
    assert all(not layout.referrers(m.digest) for m in layout.index())  # nothing half-written


def test_unreachable_fulcio_exits_69(tmp_path: Path, private_sigstore: PrivateSigstore,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    make_package(tmp_path / "layout", name="down")
    (tmp_path / "token").write_text(oidc_token())
    with failing_service() as url:
        pass  # closed again: nothing listens there now
    config = with_service(private_sigstore.trust_config, tmp_path / "tc.json", "caUrls", url)
    assert _sign_keyless(tmp_path / "layout", tmp_path / "token", config) == 69
    assert "Fulcio failed: cannot connect" in capsys.readouterr().err


def test_ambient_oidc_failure_exits_69(tmp_path: Path, private_sigstore: PrivateSigstore,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """GitHub Actions ambient credentials whose token endpoint fails (a real HTTP exchange on loopback)."""
    make_package(tmp_path / "layout", name="oidc")
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    with failing_service(500, b"token service down") as url:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url + "/token?x=1")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-secret-42")
        code = main(["sign", str(tmp_path / "layout"), "--keyless",
                     "--trust-config", str(private_sigstore.trust_config)])
    err = capsys.readouterr().err
    assert code == 69, err
    assert "OIDC failed" in err and "500" in err
    assert "request-secret-42" not in err


def test_standalone_keyless_bundle_verifies_by_digest(keyless_signed: tuple[Path, str, Path],
                                                      private_sigstore: PrivateSigstore,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _, digest, bundle = keyless_signed
    capsys.readouterr()
    assert main(["verify", "--bundle", str(bundle), "--digest", digest, "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", ISSUER, "--trust-config", str(private_sigstore.trust_config)]) == 0
    assert f"signed by {IDENTITY} (issuer {ISSUER})" in capsys.readouterr().out


def test_enarx_toml_trust_config_is_used_by_sign_and_verify(tmp_path: Path, private_sigstore: PrivateSigstore,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """[signing] trust_config (relative to the project) selects the private instance; no flags needed."""
    import shutil

    proj = tmp_path / "proj"
    make_package(proj / "target" / "oci", name="proj")
    (proj / "sigstore").mkdir()
    shutil.copy(private_sigstore.trust_config, proj / "sigstore" / "trust.json")
    (proj / "Enarx.toml").write_text(f'[signing]\nidentity = "{IDENTITY}"\nissuer = "{ISSUER}"\n'
                                     'trust_config = "sigstore/trust.json"\n')
    (tmp_path / "token").write_text(oidc_token())
    assert main(["sign", str(proj), "--keyless", "--identity-token", str(tmp_path / "token")]) == 0
    capsys.readouterr()
    assert main(["verify", str(proj)]) == 0
    assert f"signed by {IDENTITY} (issuer {ISSUER})" in capsys.readouterr().out
    (proj / "sigstore" / "trust.json").write_text("{}")  # the project's file decides: now unusable
    assert main(["verify", str(proj)]) == 65
    assert "trust config" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "code"), [(None, 66), ("{}", 65), ("not json", 65)])
def test_unusable_trust_config_is_the_callers_error(content: str | None, code: int, tmp_path: Path,
                                                    keyless_signed: tuple[Path, str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "trust.json"
    if content is not None:
        config.write_text(content)
    (tmp_path / "token").write_text(oidc_token())
    make_package(tmp_path / "layout", name="tc")
    assert main(["sign", str(tmp_path / "layout"), "--keyless", "--identity-token", str(tmp_path / "token"),
                 "--trust-config", str(config)]) == code
    assert main(["verify", str(keyless_signed[0]), "--certificate-identity", IDENTITY,
                 "--certificate-oidc-issuer", ISSUER, "--trust-config", str(config)]) == code
    assert "trust config" in capsys.readouterr().err
