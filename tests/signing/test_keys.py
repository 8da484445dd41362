"""`keys generate`: P-256 PEM pairs, 0600 private keys, passphrases only from the environment."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg import keys
from enarx_pkg._cli.main import main
from enarx_pkg.errors import InputError, UsageError


def test_generate_writes_p256_pair_with_private_key_0600(tmp_path: Path) -> None:
    pair = keys.generate(tmp_path / "k", password_env=None)
    assert pair.private_path == tmp_path / "k.key" and pair.public_path == tmp_path / "k.pub"
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    assert pair.private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert pair.public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SPKI
    priv = keys.load_private(pair.private_path, password_env=None)
    assert isinstance(priv.curve, ec.SECP256R1)
    assert keys.fingerprint(keys.load_public(pair.public_path.read_bytes())) == pair.fingerprint
    assert not pair.encrypted


def test_generate_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    first = keys.generate(tmp_path / "k", password_env=None)
    with pytest.raises(UsageError, match="already exists"):
        keys.generate(tmp_path / "k", password_env=None)
    assert keys.generate(tmp_path / "k", password_env=None, force=True).fingerprint != first.fingerprint


def test_passphrase_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PASS", "correct horse")
    pair = keys.generate(tmp_path / "k", password_env="MY_PASS")
    assert pair.encrypted
    assert b"ENCRYPTED PRIVATE KEY" in pair.private_path.read_bytes()
    assert keys.load_private(pair.private_path, password_env="MY_PASS")
    monkeypatch.setenv("MY_PASS", "wrong")
    with pytest.raises(InputError, match="wrong passphrase") as err:
        keys.load_private(pair.private_path, password_env="MY_PASS")
    assert "wrong" not in err.value.message.replace("wrong passphrase", "")  # the passphrase is not echoed
    monkeypatch.delenv("MY_PASS")
    with pytest.raises(UsageError, match="MY_PASS"):
        keys.load_private(pair.private_path, password_env="MY_PASS")


def test_non_p256_and_garbage_keys_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    other = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "p384.pub").write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(InputError, match="P-256"):
        keys.read_public_pem(tmp_path / "p384.pub")
    (tmp_path / "junk.key").write_bytes(b"not a key")
    with pytest.raises(InputError, match="not a PEM private key"):
        keys.load_private(tmp_path / "junk.key", password_env=None)


def test_cli_generate_json_and_no_password_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENARX_PKG_KEY_PASSWORD", "s3cret-passphrase")
    assert main(["keys", "generate", "--out", str(tmp_path / "ci"), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"encrypted": true' in out and "s3cret" not in out
    assert main(["keys", "generate", "--out", str(tmp_path / "ci")]) == 2  # refuses to overwrite
    assert main(["keys", "generate", "--help"]) == 0
    assert "--password " not in capsys.readouterr().out  # secrets never travel in argv


@pytest.mark.parametrize(("name", "code", "words"), [
    ("missing.key", 66, "no such file"),
    (".", 65, "cannot read"),  # a directory: it exists, so not 'does not exist'
    ("/dev/zero", 65, "larger than 65536 bytes"),  # endless: read no further than the limit
])
def test_key_and_recipient_files_that_cannot_be_used_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str], name: str,
                                                                code: int, words: str) -> None:
    from tests.build.helpers import wat_project

    monkeypatch.chdir(wat_project(tmp_path / "proj", '(func (export "_start"))'))
    assert main(["build"]) == 0
    capsys.readouterr()
    assert main(["sign", "--key", name, "."]) == code
    assert f"error: private key {name}: {words}" in capsys.readouterr().err
    assert main(["encrypt", ".", "--recipient", name, "-o", "out"]) == code
    assert f"error: recipient public key {name}: {words}" in capsys.readouterr().err
    assert not (tmp_path / "proj" / "out").exists()


def test_bundle_and_identity_token_files_that_cannot_be_read_are_named(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    digest = "sha256:" + "0" * 64
    assert main(["verify", "--bundle", str(tmp_path), "--digest", digest, "--key", "k.pub"]) == 65
    assert f"bundle {tmp_path}: cannot read" in capsys.readouterr().err
    assert main(["verify", "--bundle", str(tmp_path / "none.json"), "--digest", digest, "--key", "k.pub"]) == 66
    assert f"bundle {tmp_path / 'none.json'}: no such file" in capsys.readouterr().err
    assert main(["sign", "--keyless", "--identity-token", str(tmp_path), str(tmp_path)]) == 65
    assert f"identity token file {tmp_path}: cannot read" in capsys.readouterr().err
