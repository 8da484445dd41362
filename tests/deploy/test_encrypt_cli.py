"""Encrypting from the command line: `encrypt` then `sign` then `publish`, or `publish --encrypt --sign-key`.

The encrypted manifest is a new package (its digest covers ciphertext), so the plaintext's signatures
do not cover it: an encrypted package published unsigned must be refused by `deploy`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enarx_pkg import deploy as d
from enarx_pkg import keys, verify
from enarx_pkg._cli.main import main
from enarx_pkg.build import build
from enarx_pkg.errors import VerificationError
from enarx_pkg.package import ENCRYPTED_SUFFIX, Layout
from tests.deploy.conftest import MARKER, SECRET, WORKLOAD
from tests.fixtures.hosts import HostAgent


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    root = tmp_path_factory.mktemp("encrypt-cli")
    project = root / "project"
    shutil.copytree(WORKLOAD, project, ignore=shutil.ignore_patterns("target"))
    built = build(project, root / "oci")
    signer = keys.generate(root / "signer", password_env=None)
    rsa_key = rsa.generate_private_key(65537, 2048)
    recipient = root / "recipient.pem"
    recipient.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    pub = root / "recipient.pub"
    pub.write_bytes(rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return built.layout, signer.private_path, signer.public_path, recipient


def _all_blobs(layout: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir())


def test_encrypt_sign_verify_from_the_cli(plain, tmp_path, monkeypatch, capsys) -> None:
    layout, signer_key, signer_pub, recipient = plain
    monkeypatch.setenv("ENARX_PKG_KEY_PASSWORD", "")
    out = tmp_path / "enc"
    assert main(["encrypt", str(layout), "--recipient", str(recipient.with_suffix(".pub")), "-o", str(out)]) == 0
    enc = Layout.open(out)
    manifest = enc.manifest(enc.resolve().digest)
    assert all(layer.media_type.endswith(ENCRYPTED_SUFFIX) for layer in manifest.layers)
    assert MARKER not in _all_blobs(out)  # the module's marker string is only in ciphertext now
    # unsigned: verify refuses
    assert main(["verify", str(out), "--key", str(signer_pub)]) == 77
    assert main(["sign", str(out), "--key", str(signer_key)]) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--key", str(signer_pub)]) == 0
    shown = capsys.readouterr().out
    # the encrypted package's provenance is the plaintext build's, and names the plaintext manifest
    plain_digest = Layout.open(layout).resolve().digest
    assert "builder: unknown" not in shown and "builder: enarx-pkg@" in shown
    assert f"encrypted from: {plain_digest}" in shown
    assert "(0 input digests)" not in shown


def test_encrypted_provenance_names_the_plaintext_build_record(plain, tmp_path, monkeypatch) -> None:
    import json

    from enarx_pkg import provenance, sign
    from enarx_pkg._internal import digest

    layout, signer_key, signer_pub, recipient = plain
    monkeypatch.setenv("ENARX_PKG_KEY_PASSWORD", "")
    out = tmp_path / "enc"
    assert main(["encrypt", str(layout), "--recipient", str(recipient.with_suffix(".pub")), "-o", str(out)]) == 0
    enc = Layout.open(out)
    statement = json.loads(provenance.statement(enc.resolve().digest, enc.manifest(enc.resolve().digest),
                                                provenance.read_build_record(enc, enc.resolve().digest), "x"))
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    (plaintext,) = [d for d in deps if d.get("uri") == provenance.PLAINTEXT_URI]
    assert "sha256:" + plaintext["digest"]["sha256"] == Layout.open(layout).resolve().digest
    assert plaintext["annotations"]["buildRecord"] == digest.of_bytes((layout / "enarx-build.json").read_bytes())
    sign.sign_layout(enc, None, key=keys.load_private(signer_key, password_env=None))
    (sig,) = verify.verify_layout(enc, None, verify.KeyPolicy(signer_pub.read_bytes()))
    assert sig.provenance is not None and sig.provenance.builder != "unknown"


def test_encrypt_needs_a_readable_recipient(plain, tmp_path) -> None:
    layout, *_ = plain
    assert main(["encrypt", str(layout), "--recipient", str(tmp_path / "nope.pub"), "-o", str(tmp_path / "o")]) == 66
    assert not (tmp_path / "o").exists()


def test_publish_encrypt_with_sign_key_deploys(plain, docker_registry, sim_host: HostAgent, tmp_path,
                                               monkeypatch) -> None:
    layout, signer_key, signer_pub, recipient = plain
    monkeypatch.setenv("ENARX_PKG_KEY_PASSWORD", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    args = ["publish", str(layout), "--registry", docker_registry.host, "--repository", "enc-cli/signed",
            "--tag", "0.1.0", "--encrypt", "--recipient", str(recipient.with_suffix(".pub")),
            "--sign-key", str(signer_key)]
    assert main(args) == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(sim_host.policy())
    settings = d.DeploySettings(ref=f"{docker_registry.host}/enc-cli/signed:0.1.0", hosts=(sim_host.url,),
                                policy_path=policy, host_token=sim_host.token,
                                signer=verify.KeyPolicy(signer_pub.read_bytes()), insecure_sim=True,
                                decryption_key=recipient.read_bytes())
    [r] = d.deploy(settings)
    assert r.error is None, r.error and r.error.message
    assert MARKER in r.stdout


def test_publish_encrypt_unsigned_warns_and_deploy_refuses(plain, docker_registry, sim_host: HostAgent, tmp_path,
                                                            monkeypatch, capsys) -> None:
    layout, _, signer_pub, recipient = plain
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    args = ["publish", str(layout), "--registry", docker_registry.host, "--repository", "enc-cli/unsigned",
            "--tag", "0.1.0", "--encrypt", "--recipient", str(recipient.with_suffix(".pub"))]
    assert main(args) == 0
    assert "not signed" in capsys.readouterr().err
    policy = tmp_path / "policy.toml"
    policy.write_text(sim_host.policy())
    settings = d.DeploySettings(ref=f"{docker_registry.host}/enc-cli/unsigned:0.1.0", hosts=(sim_host.url,),
                                policy_path=policy, host_token=sim_host.token,
                                signer=verify.KeyPolicy(signer_pub.read_bytes()), insecure_sim=True,
                                decryption_key=recipient.read_bytes())
    with pytest.raises(VerificationError) as exc:
        d.deploy(settings)
    assert "signature" in exc.value.message.lower()


def test_sign_key_without_encrypt_is_a_usage_error(plain, docker_registry) -> None:
    layout, signer_key, *_ = plain
    assert main(["publish", str(layout), "--registry", docker_registry.host, "--repository", "x/y",
                 "--sign-key", str(signer_key)]) == 2


def test_registry_page_shows_the_real_builder_of_an_encrypted_package(plain, tmp_path, monkeypatch) -> None:
    """What the registry's version page shows about the signature (registry.signatures.inspect)."""
    from enarx_pkg import provenance, sign
    from registry.signatures import Trust, inspect

    layout, signer_key, signer_pub, recipient = plain
    out = tmp_path / "enc"
    assert main(["encrypt", str(layout), "--recipient", str(recipient.with_suffix(".pub")), "-o", str(out)]) == 0
    enc = Layout.open(out)
    subject = enc.resolve().digest
    sign.sign_layout(enc, None, key=keys.load_private(signer_key, password_env=None))
    (ref,) = enc.referrers(subject)
    bundle = enc.read_blob(enc.manifest(ref.digest).layers[0].digest)
    shown = inspect(ref.digest, bundle, subject, Trust.load((signer_pub.read_text(),), ()))
    assert shown.verified and shown.subject_matches
    assert shown.provenance["builder"].startswith("enarx-pkg@")
    assert provenance.PLAINTEXT_URI in shown.provenance["dependencies"]
