"""`encrypt --for-skopeo` / `--from-skopeo`: skopeo (real, Debian) encrypts the package, we take it
back under our media types, sign it, and it decrypts (by us and by skopeo) to the plaintext."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg import encrypt, keys
from enarx_pkg._cli.main import main
from enarx_pkg.package import MEDIA_ENARX_CONFIG, MEDIA_WASM, Layout
from tests.signing.conftest import make_package

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo (Debian) is not installed")


@pytest.fixture()
def skopeo_encrypted(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(plaintext layout, skopeo's encrypted layout, recipient private key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "priv.pem").write_bytes(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(s.Encoding.PEM,
                                                                     s.PublicFormat.SubjectPublicKeyInfo))
    make_package(tmp_path / "plain", name="skopeo")
    assert main(["encrypt", str(tmp_path / "plain"), "--for-skopeo", "-o", str(tmp_path / "relabelled")]) == 0
    subprocess.run(["skopeo", "copy", "--encryption-key", f"jwe:{tmp_path / 'pub.pem'}",
                    f"oci:{tmp_path / 'relabelled'}:0.1.0", f"oci:{tmp_path / 'skenc'}:0.1.0"],
                   check=True, capture_output=True, timeout=120)
    return tmp_path / "plain", tmp_path / "skenc", tmp_path / "priv.pem"


def test_skopeo_encrypted_package_imports_signs_and_decrypts(skopeo_encrypted: tuple[Path, Path, Path],
                                                             tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    plain, skenc, priv = skopeo_encrypted
    signer = keys.generate(tmp_path / "signer", password_env=None)
    out = tmp_path / "imported"
    assert main(["encrypt", str(skenc), "--from-skopeo", "--plaintext", str(plain), "-o", str(out)]) == 0
    layout = Layout.open(out)
    manifest = layout.manifest(layout.resolve("0.1.0").digest)
    assert [d.media_type for d in manifest.layers] == [MEDIA_WASM + "+encrypted", MEDIA_ENARX_CONFIG + "+encrypted"]
    plain_layout = Layout.open(plain)
    plain_manifest = plain_layout.manifest(plain_layout.resolve("0.1.0").digest)
    for layer, original in zip(manifest.layers, plain_manifest.layers, strict=True):  # what the keep does
        key = encrypt.unwrap_layer_key(layer, priv.read_bytes())
        got = io.BytesIO()
        with layout.open_blob(layer.digest) as f:
            assert encrypt.decrypt_layer(f, layer, key, got) == original.digest
    assert main(["sign", str(out), "--key", str(signer.private_path)]) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--key", str(signer.public_path)]) == 0
    shown = capsys.readouterr().out
    assert "builder: https://enarx.dev/enarx-pkg/local" in shown
    assert f"encrypted from: {plain_layout.resolve('0.1.0').digest}" in shown
    subprocess.run(["skopeo", "copy", "--decryption-key", str(priv), f"oci:{out}:0.1.0",
                    f"oci:{tmp_path / 'dec'}:0.1.0"], check=True, capture_output=True, timeout=120)
    dec = Layout.open(tmp_path / "dec")
    assert [d.digest for d in dec.manifest(dec.resolve("0.1.0").digest).layers] == \
        [d.digest for d in plain_manifest.layers]


def test_from_skopeo_refuses_layers_it_did_not_relabel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A package skopeo encrypted without --for-skopeo has no record of its layers' real types."""
    make_package(tmp_path / "plain", name="skopeo")
    layout = Layout.open(tmp_path / "plain")
    index = json.loads((tmp_path / "plain" / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(layout.read_blob(digest))
    for layer in manifest["layers"]:
        layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
    relabelled = Layout.create(tmp_path / "bare")
    for d in [manifest["config"], *manifest["layers"]]:
        layout.copy_blob_to(d["digest"], relabelled)
    relabelled.add_manifest(json.dumps(manifest).encode(), "0.1.0")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(s.Encoding.PEM,
                                                                     s.PublicFormat.SubjectPublicKeyInfo))
    subprocess.run(["skopeo", "copy", "--encryption-key", f"jwe:{tmp_path / 'pub.pem'}",
                    f"oci:{tmp_path / 'bare'}:0.1.0", f"oci:{tmp_path / 'skenc'}:0.1.0"],
                   check=True, capture_output=True, timeout=120)
    assert main(["encrypt", str(tmp_path / "skenc"), "--from-skopeo", "-o", str(tmp_path / "out")]) == 65
    assert "was not relabelled by `enarx-pkg encrypt --for-skopeo`" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_from_skopeo_refuses_a_plaintext_of_another_package(skopeo_encrypted: tuple[Path, Path, Path],
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, skenc, _ = skopeo_encrypted
    make_package(tmp_path / "other", name="other", message="other")
    assert main(["encrypt", str(skenc), "--from-skopeo", "--plaintext", str(tmp_path / "other"),
                 "-o", str(tmp_path / "out")]) == 65
    assert "no package that this skopeo output was made from" in capsys.readouterr().err
