"""Details cosign and OCI users rely on: the referrer layer's title, a standalone bundle checked by
digest, the DSSE keyid of key-based bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.package import Layout
from tests.signing.conftest import bundle_of


def _referrer_layer(layout: Layout, subject: str) -> dict:
    (ref,) = layout.referrers(subject)
    return json.loads(layout.read_blob(ref.digest))["layers"][0]  # type: ignore[no-any-return]


def test_referrer_layer_has_a_title(signed: tuple[Layout, str]) -> None:
    layout, subject = signed
    layer = _referrer_layer(layout, subject)
    assert layer["annotations"]["org.opencontainers.image.title"] == "bundle.sigstore.json"


def test_dsse_keyid_is_the_public_key_hint(signed: tuple[Layout, str]) -> None:
    _, data = bundle_of(*signed)
    bundle = json.loads(data)
    assert bundle["dsseEnvelope"]["signatures"][0]["keyid"] == bundle["verificationMaterial"]["publicKey"]["hint"]


def _standalone(signed: tuple[Layout, str], tmp_path: Path) -> tuple[Path, str]:
    _, data = bundle_of(*signed)
    (tmp_path / "b.json").write_bytes(data)
    return tmp_path / "b.json", signed[1]


def test_standalone_bundle_verifies_by_digest(signed: tuple[Layout, str], tmp_path: Path, keypairs: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path, subject = _standalone(signed, tmp_path)
    capsys.readouterr()
    assert main(["verify", "--bundle", str(path), "--digest", subject,
                 "--key", str(keypairs["alice"].with_suffix(".pub"))]) == 0
    out = capsys.readouterr().out
    assert f"verified {subject}: bundle is about this digest" in out and "builder:" in out


def test_standalone_bundle_for_another_digest_is_refused(signed: tuple[Layout, str], tmp_path: Path,
                                                         keypairs: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _standalone(signed, tmp_path)
    other = "sha256:" + "0" * 64
    assert main(["verify", "--bundle", str(path), "--digest", other,
                 "--key", str(keypairs["alice"].with_suffix(".pub"))]) == 77
    assert f"not the package manifest {other}" in capsys.readouterr().err


def test_standalone_bundle_of_another_key_is_refused(signed: tuple[Layout, str], tmp_path: Path,
                                                     keypairs: dict[str, Path]) -> None:
    path, subject = _standalone(signed, tmp_path)
    assert main(["verify", "--bundle", str(path), "--digest", subject,
                 "--key", str(keypairs["mallory"].with_suffix(".pub"))]) == 77


@pytest.mark.parametrize("args", [["--bundle", "b.json"], ["--digest", "sha256:" + "0" * 64],
                                  ["somewhere", "--bundle", "b.json", "--digest", "sha256:" + "0" * 64]])
def test_bundle_and_digest_go_together(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", *args, "--key", "k.pub"]) == 2
    assert "--bundle FILE with --digest" in capsys.readouterr().err
