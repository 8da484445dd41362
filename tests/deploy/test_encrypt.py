"""Encrypted packages: ocicrypt-compatible, checked against skopeo (the reference decrypter)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
import wasmtime
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from enarx_pkg import encrypt
from enarx_pkg.errors import InputError, VerificationError
from enarx_pkg.package import MEDIA_ENARX_CONFIG, MEDIA_WASM, MEDIA_WASM_CONFIG, ImageManifest, Layout

WASM = wasmtime.wat2wasm('(module (func (export "_start")) (data (memory 0) (i32.const 0) "MARK"))')


def plain_layout(root: Path) -> tuple[Layout, list[bytes]]:
    layout = Layout.create(root / "plain")
    blobs = [WASM, b'args = ["x"]\n']
    layers = (layout.put_bytes(blobs[0], MEDIA_WASM), layout.put_bytes(blobs[1], MEDIA_ENARX_CONFIG))
    layout.add_manifest(ImageManifest(layout.put_bytes(b"{}", MEDIA_WASM_CONFIG), layers), "t")
    return layout, blobs


def pems(key) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    priv = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    return key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo), priv


KEYS = {"rsa": lambda: rsa.generate_private_key(65537, 2048),
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "p521": lambda: ec.generate_private_key(ec.SECP521R1())}
REFUSED = {"x25519": x25519.X25519PrivateKey.generate, "ed25519": ed25519.Ed25519PrivateKey.generate,
           "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
           "rsa1024": lambda: rsa.generate_private_key(65537, 1024)}


@pytest.mark.parametrize("kind", list(KEYS))
def test_round_trip_for_each_recipient_kind(tmp_path: Path, kind: str) -> None:
    layout, blobs = plain_layout(tmp_path)
    other_pub, _ = pems(KEYS["rsa"]())
    pub, priv = pems(KEYS[kind]())
    enc = encrypt.encrypt_layout(layout, [other_pub, pub], ref="t", dest=tmp_path / "enc")
    manifest = enc.manifest(enc.resolve("t").digest)
    for layer, plain in zip(manifest.layers, blobs, strict=True):
        assert layer.media_type.endswith("+encrypted") and b"MARK" not in enc.read_blob(layer.digest)
        key = encrypt.unwrap_layer_key(layer, priv)
        out = io.BytesIO()
        with enc.open_blob(layer.digest) as f:
            encrypt.decrypt_layer(f, layer, key, out)
        assert out.getvalue() == plain


def test_wrong_key_and_tampered_ciphertext_are_refused(tmp_path: Path) -> None:
    layout, _ = plain_layout(tmp_path)
    pub, priv = pems(KEYS["rsa"]())
    enc = encrypt.encrypt_layout(layout, [pub], ref="t", dest=tmp_path / "enc")
    layer = enc.manifest(enc.resolve("t").digest).layers[0]
    with pytest.raises(VerificationError, match="no wrapped key"):
        encrypt.unwrap_layer_key(layer, pems(KEYS["rsa"]())[1])
    key = encrypt.unwrap_layer_key(layer, priv)
    data = bytearray(enc.read_blob(layer.digest))
    data[5] ^= 1
    with pytest.raises(VerificationError, match="HMAC"):
        encrypt.decrypt_layer(io.BytesIO(bytes(data)), layer, key, io.BytesIO())


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_recipients_ocicrypt_cannot_read_are_refused(tmp_path: Path, kind: str) -> None:
    layout, _ = plain_layout(tmp_path)
    pub, _ = pems(REFUSED[kind]())
    with pytest.raises(InputError) as err:
        encrypt.encrypt_layout(layout, [pub], ref="t", dest=tmp_path / "enc")
    assert "skopeo" in err.value.message or "ocicrypt" in err.value.message or "bits" in err.value.message
    assert not (tmp_path / "enc").exists()  # refused before anything was written


def test_cli_refuses_an_x25519_recipient_naming_skopeo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from enarx_pkg._cli.main import main

    plain_layout(tmp_path)
    (tmp_path / "x.pub").write_bytes(pems(REFUSED["x25519"]())[0])
    assert main(["encrypt", str(tmp_path / "plain"), "--recipient", str(tmp_path / "x.pub"),
                 "-o", str(tmp_path / "enc")]) == 65
    assert "skopeo and other ocicrypt clients cannot unwrap" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo (Debian) is not installed")
@pytest.mark.parametrize("kind", sorted(KEYS))
def test_skopeo_decrypts_what_we_encrypted_byte_identically(tmp_path: Path, kind: str) -> None:
    """Every key type `encrypt` accepts is one skopeo (ocicrypt) can decrypt with."""
    layout, blobs = plain_layout(tmp_path)
    pub, priv = pems(KEYS[kind]())
    (tmp_path / "priv.pem").write_bytes(priv)
    encrypt.encrypt_layout(layout, [pub], ref="t", dest=tmp_path / "enc")
    subprocess.run(["skopeo", "copy", "--decryption-key", str(tmp_path / "priv.pem"),
                    f"oci:{tmp_path / 'enc'}:t", f"oci:{tmp_path / 'dec'}:t"], check=True, capture_output=True)
    dec = Layout.open(tmp_path / "dec")
    manifest = dec.manifest(dec.resolve("t").digest)
    assert [d.media_type for d in manifest.layers] == [MEDIA_WASM, MEDIA_ENARX_CONFIG]
    assert [dec.read_blob(d.digest) for d in manifest.layers] == blobs
