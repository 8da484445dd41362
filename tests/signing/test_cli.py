"""The CLI as a user runs it: sign and verify layouts and project directories, keyless up to the network."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg._internal import sigstore_keyless
from enarx_pkg.errors import InputError, UsageError
from tests.signing.conftest import make_package

AMBIENT = ("SIGSTORE_ID_TOKEN", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "GITLAB_CI", "BUILDKITE",
           "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME")


@pytest.fixture()
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in AMBIENT:
        monkeypatch.delenv(var, raising=False)


def test_sign_then_verify_a_layout(tmp_path: Path, keypairs: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, desc = make_package(tmp_path / "l")
    key, pub = str(keypairs["bob"].with_suffix(".key")), str(keypairs["bob"].with_suffix(".pub"))
    assert main(["sign", str(tmp_path / "l"), "--key", key, "--json"]) == 0
    signed = json.loads(capsys.readouterr().out)
    assert signed["manifestDigest"] == desc.digest and signed["kind"] == "key"
    assert main(["verify", str(tmp_path / "l"), "--key", pub]) == 0
    out = capsys.readouterr().out
    assert f"verified {desc.digest}" in out and f"signed by {signed['signer']}" in out
    assert "builder: https://enarx.dev/enarx-pkg/local" in out and "command: wat2wasm hello.wat" in out
    assert main(["verify", str(tmp_path / "l"), "--key", pub, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"][0]["referrer"] == signed["referrerDigest"] and report["refused"] == []


def test_project_directory_uses_signing_defaults(tmp_path: Path, keypairs: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    proj = tmp_path / "proj"
    make_package(proj / "target" / "oci")
    (proj / "keys").mkdir()
    for suffix in (".key", ".pub"):
        (proj / "keys" / f"alice{suffix}").write_bytes(keypairs["alice"].with_suffix(suffix).read_bytes())
    os.chmod(proj / "keys" / "alice.key", 0o600)
    (proj / "Enarx.toml").write_text('[signing]\nkey = "keys/alice.key"\n')
    assert main(["sign", str(proj)]) == 0
    assert main(["verify", str(proj)]) == 0  # [signing].key names the private key: verify uses its .pub
    assert "signed by sha256:" in capsys.readouterr().out
    assert main(["verify", str(proj), "--key", str(keypairs["mallory"].with_suffix(".pub"))]) == 77


def test_verify_needs_a_policy_and_an_issuer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_package(tmp_path / "l")
    assert main(["verify", str(tmp_path / "l")]) == 2
    assert "nothing to verify against" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "l"), "--certificate-identity", "a@example.com"]) == 2
    assert "--certificate-oidc-issuer" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "l"), "--certificate-identity-regexp", "(",
                 "--certificate-oidc-issuer", "x"]) == 2
    assert main(["verify", str(tmp_path / "nowhere")]) == 66


def test_keyless_without_any_token_is_a_usage_error(tmp_path: Path, no_ambient_credentials: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    make_package(tmp_path / "l")
    assert main(["sign", str(tmp_path / "l"), "--keyless"]) == 2
    assert "needs an OIDC identity token" in capsys.readouterr().err
    assert main(["sign", str(tmp_path / "l"), "--keyless", "--key", "x.key"]) == 2


def test_keyless_refuses_a_malformed_token_without_echoing_it(tmp_path: Path, no_ambient_credentials: None,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    make_package(tmp_path / "l")
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", "eyJhbGciOi.secret-token-value.x")
    assert main(["sign", str(tmp_path / "l"), "--keyless"]) == 65
    err = capsys.readouterr().err
    assert "identity token refused" in err and "secret-token-value" not in err


def test_identity_token_is_read_from_a_file_or_stdin_never_argv(tmp_path: Path, no_ambient_credentials: None,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import io

    make_package(tmp_path / "l")
    token = "eyJhbGciOi.secret-token-value.x"
    # typed on the command line: refused as a usage error, and not echoed
    assert main(["sign", str(tmp_path / "l"), "--keyless", "--identity-token", token]) == 2
    err = capsys.readouterr().err
    assert "FILE holding the token" in err and "secret-token-value" not in err
    # from a file and from stdin: read (and then refused by the token check, as it is malformed)
    (tmp_path / "tok").write_text(token + "\n")
    assert main(["sign", str(tmp_path / "l"), "--keyless", "--identity-token", str(tmp_path / "tok")]) == 65
    assert "identity token refused" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(token))
    assert main(["sign", str(tmp_path / "l"), "--keyless", "--identity-token", "-"]) == 65
    assert main(["sign", str(tmp_path / "l"), "--keyless", "--identity-token", str(tmp_path / "nope")]) == 66


def _jwt(**claims: object) -> str:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    now = int(time.time())
    body = {"iss": "https://oidc.example.test", "sub": "ci@example.test", "aud": "sigstore",
            "iat": now, "nbf": now, "exp": now + 300, **claims}
    return str(jwt.encode(body, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"))


def test_identity_token_parsed_up_to_the_network_boundary(no_ambient_credentials: None) -> None:
    """Everything before Fulcio: the token is parsed and checked (audience, expiry, identity claim)."""
    assert sigstore_keyless.identity_token(_jwt()).identity == "ci@example.test"
    with pytest.raises(InputError, match="identity token refused"):
        sigstore_keyless.identity_token(_jwt(aud="not-sigstore"))
    with pytest.raises(InputError, match="identity token refused"):
        sigstore_keyless.identity_token(_jwt(exp=int(time.time()) - 3600))
    with pytest.raises(UsageError):
        sigstore_keyless.identity_token(None)


def test_our_statement_is_what_sigstore_signs(signed: tuple) -> None:
    """sign_dsse takes a sigstore.dsse.Statement: ours must pass its in-toto model."""
    from sigstore.dsse import Statement

    from enarx_pkg import provenance

    layout, manifest = signed
    st = provenance.statement(manifest, layout.manifest(manifest), None, "hello")
    assert Statement(st)._inner.predicate_type == provenance.SLSA_PROVENANCE_V1


def test_project_identity_defaults_select_keyless_verification(tmp_path: Path, keypairs: dict[str, Path],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    proj = tmp_path / "proj"
    make_package(proj / "target" / "oci")
    assert main(["sign", str(proj / "target" / "oci"), "--key", str(keypairs["alice"].with_suffix(".key"))]) == 0
    (proj / "Enarx.toml").write_text('[signing]\nidentity = "ci@example.com"\n'
                                     'issuer = "https://token.actions.githubusercontent.com"\n')
    capsys.readouterr()
    assert main(["verify", str(proj)]) == 77
    assert "a certificate identity was required" in capsys.readouterr().err
    assert main(["verify", str(proj), "--key", str(keypairs["alice"].with_suffix(".pub"))]) == 0  # flags win


def test_sign_with_an_encrypted_key_reads_the_passphrase_from_the_named_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    make_package(tmp_path / "l")
    monkeypatch.setenv("RELEASE_PASS", "hunter2-but-longer")
    assert main(["keys", "generate", "--out", str(tmp_path / "rel"), "--password-env", "RELEASE_PASS"]) == 0
    monkeypatch.delenv("RELEASE_PASS")
    sign = ["sign", str(tmp_path / "l"), "--key", str(tmp_path / "rel.key"), "--password-env", "RELEASE_PASS"]
    assert main(sign) == 2
    assert "RELEASE_PASS is not set" in capsys.readouterr().err
    monkeypatch.setenv("RELEASE_PASS", "hunter2-but-longer")
    assert main(sign) == 0
    assert main(["verify", str(tmp_path / "l"), "--key", str(tmp_path / "rel.pub")]) == 0
    assert "hunter2" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [["keys", "generate"], ["sign"], ["verify"]])
def test_help_quoted_in_the_docs_is_the_real_help(command: list[str], monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import REPO

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERMINAL_WIDTH", "80")
    assert main([*command, "--help"]) == 0
    assert capsys.readouterr().out.strip() in (REPO / "docs" / "signing.md").read_text()
