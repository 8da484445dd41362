"""One test per attack on a signed package: each is refused, naming what failed (python-tuf style)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from enarx_pkg import keys, provenance, sign, verify
from enarx_pkg._cli.main import main
from enarx_pkg._internal import canonical
from enarx_pkg.errors import InputError, NotFoundError, VerificationError
from enarx_pkg.package import Layout
from tests.signing.conftest import bundle_of, edit_json, make_package, pub


def _flip(path: Path, at: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _replace_signature(layout: Layout, manifest: str, bundle: bytes) -> None:
    """What an attacker with write access does: drop the real referrer, attach a forged one."""
    ref, _ = bundle_of(layout, manifest)
    index = json.loads((layout.path / "index.json").read_bytes())
    index["manifests"] = [m for m in index["manifests"] if m["digest"] != ref]
    (layout.path / "index.json").write_bytes(canonical.dumps(index))
    sign.attach(layout, layout.resolve(manifest), bundle, provenance.SLSA_PROVENANCE_V1)


def _alice(keypairs: dict[str, Path]) -> verify.KeyPolicy:
    return verify.KeyPolicy(pub(keypairs["alice"]))


def _refused(layout: Layout, policy: verify.Policy, match: str, error: type = VerificationError) -> None:
    with pytest.raises(error, match=match) as err:
        verify.verify_layout(layout, None, policy)
    assert type(err.value) is error or issubclass(type(err.value), error)


def _envelope_edit(bundle: bytes, field: str) -> bytes:
    def change(obj: dict) -> None:
        raw = bytearray(base64.b64decode(obj["dsseEnvelope"][field] if field == "payload"
                                         else obj["dsseEnvelope"]["signatures"][0]["sig"]))
        raw[len(raw) // 2] ^= 0x01
        value = base64.b64encode(bytes(raw)).decode()
        if field == "payload":
            obj["dsseEnvelope"]["payload"] = value
        else:
            obj["dsseEnvelope"]["signatures"][0]["sig"] = value
    return edit_json(bundle, change)


def test_flipped_byte_in_manifest(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _flip(layout.blob_path(manifest))
    _refused(layout, _alice(keypairs), f"manifest .* was altered: digest mismatch .*{manifest}")


def test_flipped_byte_in_config(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _flip(layout.blob_path(layout.manifest(manifest).config.digest))
    _refused(layout, _alice(keypairs), "config blob .* does not match the manifest")


def test_flipped_byte_in_layer(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _flip(layout.blob_path(layout.manifest(manifest).layers[0].digest), at=10)
    _refused(layout, _alice(keypairs), r"layer 0 \(application/wasm\) blob .* does not match the manifest")


def test_missing_layer(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    layout.blob_path(layout.manifest(manifest).layers[1].digest).unlink()
    _refused(layout, _alice(keypairs), "layer 1 .* is missing", NotFoundError)


def test_flipped_byte_in_envelope_payload(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _replace_signature(layout, manifest, _envelope_edit(bundle_of(layout, manifest)[1], "payload"))
    _refused(layout, _alice(keypairs), "DSSE signature does not verify")


def test_flipped_byte_in_signature(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _replace_signature(layout, manifest, _envelope_edit(bundle_of(layout, manifest)[1], "sig"))
    _refused(layout, _alice(keypairs), "DSSE signature does not verify")


def test_changed_payload_type(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    forged = edit_json(bundle_of(layout, manifest)[1],
                       lambda o: o["dsseEnvelope"].__setitem__("payloadType", "text/plain"))
    _replace_signature(layout, manifest, forged)
    _refused(layout, _alice(keypairs), "DSSE signature does not verify")  # PAE covers the type


def test_flipped_byte_in_bundle_blob_on_disk(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    ref, _ = bundle_of(layout, manifest)
    _flip(layout.blob_path(layout.manifest(ref).layers[0].digest))
    _refused(layout, _alice(keypairs), "digest mismatch for blob")


def test_bundle_of_another_package(signed: tuple[Layout, str], keypairs: dict[str, Path], tmp_path: Path) -> None:
    layout, manifest = signed
    other, other_desc = make_package(tmp_path / "other", name="other", message="other")
    other_manifest = other_desc.digest
    sign.sign_layout(other, None, key=keys.load_private(keypairs["alice"].with_suffix(".key"), password_env=None))
    _replace_signature(layout, manifest, bundle_of(other, other_manifest)[1])
    _refused(layout, _alice(keypairs), f"signed statement is about {other_manifest}, not the package manifest")


def test_signature_by_an_untrusted_key(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    mallory = keys.load_private(keypairs["mallory"].with_suffix(".key"), password_env=None)
    st = provenance.statement(manifest, layout.manifest(manifest), None, "hello")
    _replace_signature(layout, manifest, sign.sign_with_key(st, mallory))
    _refused(layout, _alice(keypairs), "signed by another key")


def test_untrusted_key_forging_the_trusted_keys_hint(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    mallory = keys.load_private(keypairs["mallory"].with_suffix(".key"), password_env=None)
    st = provenance.statement(manifest, layout.manifest(manifest), None, "hello")
    alice_hint = keys.hint(keys.load_public(pub(keypairs["alice"])))
    forged = edit_json(sign.sign_with_key(st, mallory),
                       lambda o: o["verificationMaterial"]["publicKey"].__setitem__("hint", alice_hint))
    _replace_signature(layout, manifest, forged)
    _refused(layout, _alice(keypairs), "DSSE signature does not verify")  # the hint is not trusted


def test_truncated_bundle(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    bundle = bundle_of(layout, manifest)[1]
    _replace_signature(layout, manifest, bundle[: len(bundle) // 2])
    _refused(layout, _alice(keypairs), "bundle: not valid JSON", verify.MalformedBundle)


def test_non_json_bundle(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    _replace_signature(layout, manifest, b"\x89PNG\r\n not a bundle")
    _refused(layout, _alice(keypairs), "bundle: not valid JSON", verify.MalformedBundle)


def test_unknown_bundle_media_type(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    forged = edit_json(bundle_of(layout, manifest)[1],
                       lambda o: o.__setitem__("mediaType", "application/vnd.dev.sigstore.bundle.v9+json"))
    _replace_signature(layout, manifest, forged)
    _refused(layout, _alice(keypairs), "unknown sigstore bundle media type", verify.MalformedBundle)


def test_provenance_subject_not_the_manifest(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    """A validly signed statement about some other digest, attached to this package."""
    layout, manifest = signed
    elsewhere = "sha256:" + "5e" * 32
    st = provenance.statement(elsewhere, layout.manifest(manifest), None, "hello")
    alice = keys.load_private(keypairs["alice"].with_suffix(".key"), password_env=None)
    _replace_signature(layout, manifest, sign.sign_with_key(st, alice))
    _refused(layout, _alice(keypairs), f"signed statement is about {elsewhere}, not the package manifest")


def test_signed_payload_that_is_not_a_statement(signed: tuple[Layout, str], keypairs: dict[str, Path]) -> None:
    layout, manifest = signed
    from enarx_pkg._internal import dsse, sigstore_bundle

    alice = keys.load_private(keypairs["alice"].with_suffix(".key"), password_env=None)
    env = dsse.sign(alice, dsse.INTOTO_PAYLOAD_TYPE, b'{"_type": "something else"}')
    _replace_signature(layout, manifest, sigstore_bundle.key_bundle(env, keys.hint(alice.public_key())))
    _refused(layout, _alice(keypairs), "_type: expected https://in-toto.io/Statement/v1", InputError)


def test_no_signature_at_all(tmp_path: Path, keypairs: dict[str, Path]) -> None:
    layout, _ = make_package(tmp_path / "l")
    _refused(layout, _alice(keypairs), "has no sigstore signature attached")


def test_key_bundle_is_refused_under_an_identity_policy(signed: tuple[Layout, str]) -> None:
    layout, _ = signed
    policy = verify.IdentityPolicy(identity="a@example.com", issuer="https://accounts.google.com")
    _refused(layout, policy, "signed with a key .* but a certificate identity was required")


def test_exit_codes_77_refused_65_malformed(signed: tuple[Layout, str], keypairs: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    layout, manifest = signed
    alice, mallory = str(keypairs["alice"].with_suffix(".pub")), str(keypairs["mallory"].with_suffix(".pub"))
    assert main(["verify", str(layout.path), "--key", alice]) == 0
    capsys.readouterr()
    assert main(["verify", str(layout.path), "--key", mallory, "--json"]) == 77
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["kind"] == "VerificationError" and "another key" in out["error"]["message"]
    _replace_signature(layout, manifest, b"{")
    assert main(["verify", str(layout.path), "--key", alice]) == 65
    assert "not valid JSON" in capsys.readouterr().err
