"""Encrypted packages, the way ocicrypt encrypts image layers (DESIGN §4), so skopeo can decrypt them.

Each layer is encrypted with a fresh 32-byte key and 16-byte nonce: AES-256-CTR with the nonce as
the whole initial counter block; HMAC-SHA256 of the ciphertext under the same key goes in
``org.opencontainers.image.enc.pubopts``. The key, nonce and plaintext digest are wrapped as a JWE for
each recipient (jwcrypto: RSA-OAEP + A256GCM for RSA keys, ECDH-ES+A256KW for EC P-256/384/521 keys:
what ocicrypt reads; X25519 recipients are refused, since skopeo could not open their layers)
in ``org.opencontainers.image.enc.keys.jwe``. The plaintext digest also rides in
``dev.enarx.pkg.plaintext.digest`` so the keep checks what it decrypted.

Signatures: sign the ENCRYPTED manifest (the one a deployer resolves and the keep pulls); its digest
covers the ciphertext, the wrapped keys and the HMACs, so no layer can be swapped unnoticed. The
plaintext build's record comes along (``provenance.record_encryption``), so that signature's SLSA
provenance names the real builder and the plaintext manifest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from enarx_pkg import provenance
from enarx_pkg._internal import digest
from enarx_pkg._internal.seal import LayerKey
from enarx_pkg.errors import InputError, VerificationError
from enarx_pkg.package import (
    ANNOTATION_REF_NAME,
    ENCRYPTED_SUFFIX,
    MEDIA_ENARX_CONFIG,
    MEDIA_WASM,
    Descriptor,
    Layout,
)

ANNOTATION_JWE = "org.opencontainers.image.enc.keys.jwe"
ANNOTATION_PUBOPTS = "org.opencontainers.image.enc.pubopts"
ANNOTATION_PLAINTEXT = "dev.enarx.pkg.plaintext.digest"
CIPHER = "AES_256_CTR_HMAC_SHA256"
ENCRYPTED_MEDIA = (MEDIA_WASM, MEDIA_ENARX_CONFIG)
MAX_ANNOTATION = 64 * 1024
MAX_RECIPIENT_BYTES = 64 * 1024  # a public key PEM


def read_recipients(paths: Sequence[Path]) -> list[bytes]:
    """The recipient public key PEMs the given files hold (each read no further than its limit)."""
    from enarx_pkg._internal import bounded

    return [bounded.file(path, "recipient public key", MAX_RECIPIENT_BYTES) for path in paths]


def is_encrypted(desc: Descriptor) -> bool:
    return desc.media_type.endswith(ENCRYPTED_SUFFIX)


def plaintext_media_type(desc: Descriptor) -> str:
    return desc.media_type.removesuffix(ENCRYPTED_SUFFIX)


def encrypt_layout(layout: Layout, recipients: Sequence[bytes], *, ref: str | None = None,
                   dest: Path | None = None) -> Layout:
    """Encrypt the wasm and Enarx.toml layers of the manifest ``ref`` for every recipient PEM key.

    Returns a new layout (``dest``, or a fresh temporary directory) holding the encrypted manifest
    under the same tag. Signatures of the plaintext manifest are not carried over: sign the result.
    """
    if not recipients:
        raise InputError("encryption needs at least one recipient public key")
    keys = [_public_jwk(pem, f"recipient {i + 1}") for i, pem in enumerate(recipients)]
    src_desc = layout.resolve(ref)
    manifest = layout.manifest(src_desc.digest)
    out = Layout.create(dest or Path(tempfile.mkdtemp(prefix="enarx-pkg-encrypted-")))
    layout.copy_blob_to(manifest.config.digest, out)
    layers = tuple(_encrypt_layer(layout, d, out, keys) if d.media_type in ENCRYPTED_MEDIA else _copy(layout, d, out)
                   for d in manifest.layers)
    new = out.add_manifest(replace(manifest, layers=layers), src_desc.annotations.get(ANNOTATION_REF_NAME))
    provenance.record_encryption(layout, src_desc.digest, out, new.digest)
    return out


def _copy(src: Layout, desc: Descriptor, out: Layout) -> Descriptor:
    src.copy_blob_to(desc.digest, out)
    return desc


def _encrypt_layer(src: Layout, desc: Descriptor, out: Layout, keys: list[Any]) -> Descriptor:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    symkey, nonce = os.urandom(32), os.urandom(16)
    enc = Cipher(algorithms.AES(symkey), modes.CTR(nonce)).encryptor()
    mac = hmac.new(symkey, digestmod=hashlib.sha256)
    plain = digest.Hasher()
    with src.open_blob(desc.digest) as f, tempfile.TemporaryFile(dir=out.path) as tmp:
        for chunk in iter(lambda: f.read(digest.CHUNK), b""):
            plain.update(chunk)
            ct = enc.update(chunk)
            mac.update(ct)
            tmp.write(ct)
        plain.verify(desc.digest, desc.size, f"layer {desc.digest}")
        tmp.seek(0)
        pubopts = {"cipher": CIPHER, "hmac": _b64(mac.digest()), "cipheroptions": {}}
        privopts = {"symkey": _b64(symkey), "digest": desc.digest, "cipheroptions": {"nonce": _b64(nonce)}}
        annotations = dict(desc.annotations) | {
            ANNOTATION_PUBOPTS: _b64(json.dumps(pubopts).encode()),
            ANNOTATION_JWE: ",".join(_wrap(json.dumps(privopts).encode(), k) for k in keys),
            ANNOTATION_PLAINTEXT: desc.digest,
        }
        return out.put_stream(tmp, desc.media_type + ENCRYPTED_SUFFIX, annotations=annotations)  # type: ignore[arg-type]


# What ocicrypt (skopeo, containerd imgcrypt, Confidential Containers) can unwrap: RSA-OAEP and
# ECDH-ES+A256KW on NIST curves (go-jose). An X25519 (OKP) JWE would be a layer no peer can open.
OCICRYPT_CURVES = ("P-256", "P-384", "P-521")
MIN_RSA_BITS = 2048


def _public_jwk(pem: bytes, where: str) -> Any:
    from jwcrypto import jwk

    try:
        key = jwk.JWK.from_pem(pem)
    except (ValueError, TypeError):
        raise InputError(f"{where}: not a PEM public key (RSA or EC P-256/P-384/P-521)") from None
    if key.has_private:
        key = jwk.JWK(**key.export_public(as_dict=True))
    kty, crv = key.get("kty"), key.get("crv")
    if kty == "OKP":
        raise InputError(f"{where}: {crv} keys cannot be recipients: skopeo and other ocicrypt clients "
                         "cannot unwrap layer keys for them",
                         hint="use an RSA (2048 bits or more) or EC P-256/P-384/P-521 key")
    if kty == "EC" and crv not in OCICRYPT_CURVES:
        raise InputError(f"{where}: EC curve {crv} is not one ocicrypt reads", hint="use P-256, P-384 or P-521")
    if kty == "RSA" and len(base64.urlsafe_b64decode(key.get("n") + "==")) * 8 < MIN_RSA_BITS:
        raise InputError(f"{where}: RSA key under {MIN_RSA_BITS} bits")
    return key


def _alg(key: Any) -> str:
    return "RSA-OAEP" if key.get("kty") == "RSA" else "ECDH-ES+A256KW"


def _wrap(payload: bytes, key: Any) -> str:
    from jwcrypto import jwe

    token = jwe.JWE(payload, protected=json.dumps({"alg": _alg(key), "enc": "A256GCM"}))
    token.add_recipient(key)
    return _b64(token.serialize(compact=False).encode())


def unwrap_layer_key(desc: Descriptor, private_key_pem: bytes) -> LayerKey:
    """Recover a layer's key, nonce and plaintext digest with the recipient's private key."""
    from jwcrypto import jwe, jwk
    from jwcrypto.common import JWException

    try:
        key = jwk.JWK.from_pem(private_key_pem)
    except (ValueError, TypeError):
        raise InputError("decryption key: not a PEM private key") from None
    wrapped = desc.annotations.get(ANNOTATION_JWE, "")
    if not wrapped or len(wrapped) > MAX_ANNOTATION:
        raise VerificationError(f"layer {desc.digest} carries no usable wrapped keys")
    for item in wrapped.split(","):
        token = jwe.JWE()
        token.allowed_algs = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A256KW", "A256GCM"]
        try:
            token.deserialize(base64.b64decode(item).decode(), key)
        except (JWException, ValueError, TypeError, UnicodeDecodeError):
            continue
        return _layer_key(token.payload, desc)
    raise VerificationError(f"layer {desc.digest}: no wrapped key opens with this decryption key",
                            hint="was the package encrypted for this key's public half?")


def _layer_key(payload: bytes, desc: Descriptor) -> LayerKey:
    try:
        obj = json.loads(payload)
        key = LayerKey(base64.b64decode(obj["symkey"]), base64.b64decode(obj["cipheroptions"]["nonce"]),
                       obj["digest"])
    except (ValueError, KeyError, TypeError):
        raise VerificationError(f"layer {desc.digest}: wrapped key payload is malformed") from None
    if len(key.symkey) != 32 or len(key.nonce) != 16 or not digest.is_valid(key.plaintext_digest):
        raise VerificationError(f"layer {desc.digest}: wrapped key has the wrong shape")
    if desc.annotations.get(ANNOTATION_PLAINTEXT, key.plaintext_digest) != key.plaintext_digest:
        raise VerificationError(f"layer {desc.digest}: wrapped key and annotation disagree on the plaintext")
    return key


def decrypt_layer(stream: BinaryIO, desc: Descriptor, key: LayerKey, out: BinaryIO) -> str:
    """Decrypt a layer into ``out`` streaming; raises unless the HMAC and plaintext digest check.

    The caller must discard ``out`` when this raises (nothing is trusted until it returns).
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    expected_mac = _pubopts_hmac(desc)
    dec = Cipher(algorithms.AES(key.symkey), modes.CTR(key.nonce)).decryptor()
    mac = hmac.new(key.symkey, digestmod=hashlib.sha256)
    plain = digest.Hasher()
    for chunk in iter(lambda: stream.read(digest.CHUNK), b""):
        mac.update(chunk)
        pt = dec.update(chunk)
        plain.update(pt)
        out.write(pt)
    if not hmac.compare_digest(mac.digest(), expected_mac):
        raise VerificationError(f"layer {desc.digest}: HMAC of the ciphertext does not match")
    plain.verify(key.plaintext_digest, what=f"decrypted layer {desc.digest}")
    annotated = desc.annotations.get(ANNOTATION_PLAINTEXT)
    if annotated is not None and annotated != plain.digest:
        raise VerificationError(f"layer {desc.digest}: plaintext digest differs from its annotation")
    return plain.digest


def _pubopts_hmac(desc: Descriptor) -> bytes:
    try:
        opts = json.loads(base64.b64decode(desc.annotations[ANNOTATION_PUBOPTS]))
        if opts.get("cipher") != CIPHER:
            raise VerificationError(f"layer {desc.digest}: unsupported cipher {opts.get('cipher')!r}")
        return base64.b64decode(opts["hmac"])
    except (KeyError, ValueError, TypeError, AttributeError):
        raise VerificationError(f"layer {desc.digest}: missing or malformed {ANNOTATION_PUBOPTS}") from None


# skopeo encrypts OCI tar layers only ("no counterpart for mediatype" for application/wasm): a
# package goes to skopeo relabelled (--for-skopeo), its own media type kept in an annotation that
# skopeo carries through, and comes back under our media types (--from-skopeo).
MEDIA_OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_MEDIA_TYPE = "dev.enarx.pkg.media-type"


def relabel_for_skopeo(layout: Layout, *, ref: str | None = None, dest: Path) -> Layout:
    """A copy of package ``ref`` whose wasm and Enarx.toml layers are labelled as OCI tar layers."""
    src_desc = layout.resolve(ref)
    manifest = layout.manifest(src_desc.digest)
    out = Layout.create(dest)
    layout.copy_blob_to(manifest.config.digest, out)
    layers = []
    for d in manifest.layers:
        layout.copy_blob_to(d.digest, out)
        if d.media_type in ENCRYPTED_MEDIA:
            d = replace(d, media_type=MEDIA_OCI_TAR,
                        annotations=dict(d.annotations) | {ANNOTATION_MEDIA_TYPE: d.media_type})
        layers.append(d)
    out.add_manifest(replace(manifest, layers=tuple(layers)), src_desc.annotations.get(ANNOTATION_REF_NAME))
    return out


def import_from_skopeo(layout: Layout, *, ref: str | None = None, dest: Path,
                       plaintext: Layout | None = None) -> Layout:
    """Package ``ref`` as skopeo encrypted it, back under our media types (``+encrypted``).

    Each encrypted layer gets back the media type ``relabel_for_skopeo`` recorded; it must carry
    ocicrypt's wrapped keys and our cipher. With ``plaintext`` (the package before relabelling) the
    build record comes along, so the signature's provenance names the real build.
    """
    src_desc = layout.resolve(ref)
    manifest = layout.manifest(src_desc.digest)
    layers = tuple(_from_skopeo(d, i) for i, d in enumerate(manifest.layers))
    plain_digest = _matching_plaintext(plaintext, manifest, layers) if plaintext is not None else None
    out = Layout.create(dest)
    layout.copy_blob_to(manifest.config.digest, out)
    for d in manifest.layers:
        layout.copy_blob_to(d.digest, out)
    new = out.add_manifest(replace(manifest, layers=layers), src_desc.annotations.get(ANNOTATION_REF_NAME))
    if plaintext is not None and plain_digest is not None:
        provenance.record_encryption(plaintext, plain_digest, out, new.digest)
    return out


def _from_skopeo(desc: Descriptor, index: int) -> Descriptor:
    if not is_encrypted(desc):
        return desc
    original = desc.annotations.get(ANNOTATION_MEDIA_TYPE)
    if plaintext_media_type(desc) != MEDIA_OCI_TAR or original not in ENCRYPTED_MEDIA:
        raise InputError(f"layer {index} ({desc.media_type}) was not relabelled by `enarx-pkg encrypt "
                         f"--for-skopeo`: no {ANNOTATION_MEDIA_TYPE} annotation naming a package layer type",
                         hint="relabel the package with --for-skopeo, then encrypt that with skopeo")
    _pubopts_hmac(desc)  # our cipher, with an HMAC
    if not desc.annotations.get(ANNOTATION_JWE):
        raise InputError(f"layer {index}: no {ANNOTATION_JWE} (skopeo wraps keys for JWE recipients only)",
                         hint="encrypt with `skopeo copy --encryption-key jwe:PUBKEY.pem`")
    annotations = {k: v for k, v in desc.annotations.items() if k != ANNOTATION_MEDIA_TYPE}
    return replace(desc, media_type=original + ENCRYPTED_SUFFIX, annotations=annotations)


def _matching_plaintext(plaintext: Layout, manifest: Any, layers: tuple[Descriptor, ...]) -> str:
    """The plaintext manifest ``manifest`` was encrypted from: same config, same layer types."""
    for desc in plaintext.index():
        plain = plaintext.manifest(desc.digest)
        if plain.config.digest == manifest.config.digest and \
                [d.media_type for d in plain.layers] == [plaintext_media_type(d) for d in layers]:
            return desc.digest
    raise InputError(f"{plaintext.path} holds no package that this skopeo output was made from "
                     "(config or layers differ)")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
