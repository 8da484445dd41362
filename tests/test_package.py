"""The OCI image layout and manifest model: round trips, confinement, and refusal of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enarx_pkg import package
from enarx_pkg._internal import digest
from enarx_pkg.errors import InputError, NotFoundError, VerificationError


def _manifest(layout: package.Layout, payload: bytes = b"\0asm\1\0\0\0") -> package.ImageManifest:
    config = layout.put_bytes(b"{}", package.MEDIA_WASM_CONFIG)
    layer = layout.put_bytes(payload, package.MEDIA_WASM)
    return package.ImageManifest(config=config, layers=(layer,), annotations={"a": "b"})


def test_layout_round_trip(tmp_path: Path) -> None:
    layout = package.Layout.create(tmp_path / "oci")
    desc = layout.add_manifest(_manifest(layout), tag="1.0.0")
    again = package.Layout.open(tmp_path / "oci")
    assert again.resolve("1.0.0").digest == desc.digest
    assert again.resolve().digest == desc.digest
    assert again.resolve(desc.digest).digest == desc.digest
    assert again.manifest(desc.digest).annotations == {"a": "b"}
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert index["manifests"][0]["annotations"][package.ANNOTATION_REF_NAME] == "1.0.0"


def test_manifest_bytes_are_canonical(tmp_path: Path) -> None:
    layout = package.Layout.create(tmp_path / "oci")
    m = _manifest(layout)
    assert package.ImageManifest.from_bytes(m.to_bytes()).to_bytes() == m.to_bytes()


def test_tag_moves_to_new_manifest(tmp_path: Path) -> None:
    layout = package.Layout.create(tmp_path / "oci")
    layout.add_manifest(_manifest(layout, b"\0asm\1\0\0\0one"), tag="latest")
    second = layout.add_manifest(_manifest(layout, b"\0asm\1\0\0\0two"), tag="latest")
    assert layout.resolve("latest").digest == second.digest
    assert len(layout.index()) == 1


def test_referrers(tmp_path: Path) -> None:
    layout = package.Layout.create(tmp_path / "oci")
    subject = layout.add_manifest(_manifest(layout), tag="v1")
    empty = layout.put_bytes(package.EMPTY_JSON, package.MEDIA_EMPTY)
    bundle = layout.put_bytes(b'{"x":1}', package.MEDIA_SIGSTORE_BUNDLE)
    sig = package.ImageManifest(config=empty, layers=(bundle,), subject=subject,
                                artifact_type=package.MEDIA_SIGSTORE_BUNDLE)
    layout.add_manifest(sig)
    refs = layout.referrers(subject.digest)
    assert [r.artifact_type for r in refs] == [package.MEDIA_SIGSTORE_BUNDLE]
    assert layout.resolve().digest == subject.digest  # the signature is not "the package"


def test_corrupted_blob_is_refused(tmp_path: Path) -> None:
    layout = package.Layout.create(tmp_path / "oci")
    desc = layout.put_bytes(b"hello", "text/plain")
    layout.blob_path(desc.digest).write_bytes(b"hellO")
    with pytest.raises(VerificationError, match="digest mismatch"):
        layout.read_blob(desc.digest)


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:abcd", "sha256:", "", "x"])
def test_blob_paths_are_confined(tmp_path: Path, bad: str) -> None:
    layout = package.Layout.create(tmp_path / "oci")
    with pytest.raises(InputError):
        layout.blob_path(bad)


def test_unsupported_algorithm_named() -> None:
    with pytest.raises(InputError, match="unsupported digest algorithm 'sha512'"):
        digest.parse("sha512:" + "a" * 128)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"schemaVersion": 1}', "schemaVersion"),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', "config.mediaType"),
        (b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:00", "size": 1}, "layers": []}',
         "malformed digest"),
        (b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:' + b"0" * 64 + b'", "size": -1},'
         b' "layers": []}', "size"),
        (b'{"schemaVersion": 2, "config": {"mediaType": "a", "digest": "sha256:' + b"0" * 64 + b'", "size": 1},'
         b' "layers": {}}', "layers"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_manifests_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        package.ImageManifest.from_bytes(data)


def test_oversized_manifest_refused() -> None:
    with pytest.raises(InputError, match="limit"):
        package.ImageManifest.from_bytes(b" " * (package.MAX_MANIFEST_BYTES + 1))


def test_open_non_layout(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not an OCI image layout"):
        package.Layout.open(tmp_path)


def test_put_stream_checks_expected_digest(tmp_path: Path) -> None:
    import io

    layout = package.Layout.create(tmp_path / "oci")
    with pytest.raises(VerificationError):
        layout.put_stream(io.BytesIO(b"abc"), "x", expected=digest.of_bytes(b"abd"))
    assert not any(p.name.startswith(".upload") for p in (tmp_path / "oci" / "blobs" / "sha256").iterdir())
    assert not layout.has_blob(digest.of_bytes(b"abc"))
