"""Key-based bundles with an RFC 3161 timestamp (openssl ts on loopback) and a Rekor entry (the
mock Rekor), judged by sigstore-js with its default thresholds and by enarx-pkg verify --key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.package import Layout
from tests.signing.conftest import bundle_of, make_package
from tests.signing.sigstore_peers import PrivateSigstore, failing_service, sigstore_js_verify


def _sign(tmp_path: Path, keypairs: dict[str, Path], *extra: str) -> tuple[Path, dict, Path]:
    layout, desc = make_package(tmp_path / "layout", name="stamped")
    assert main(["sign", str(tmp_path / "layout"), "--key", str(keypairs["alice"].with_suffix(".key")), *extra]) == 0
    _, data = bundle_of(layout, desc.digest)
    (tmp_path / "bundle.json").write_bytes(data)
    return tmp_path / "layout", json.loads(data), tmp_path / "bundle.json"


def test_key_bundle_with_timestamp_and_log_entry_passes_sigstore_js_defaults(
        tmp_path: Path, keypairs: dict[str, Path], private_sigstore: PrivateSigstore,
        capsys: pytest.CaptureFixture[str]) -> None:
    layout, bundle, path = _sign(tmp_path, keypairs, "--timestamp-server", private_sigstore.tsa_url,
                                 "--tlog-upload", "--trust-config", str(private_sigstore.trust_config))
    material = bundle["verificationMaterial"]
    assert len(material["timestampVerificationData"]["rfc3161Timestamps"]) == 1
    assert material["tlogEntries"][0]["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert bundle["dsseEnvelope"]["signatures"][0]["keyid"] == material["publicKey"]["hint"]
    pub = str(keypairs["alice"].with_suffix(".pub"))
    verdict = sigstore_js_verify(path, private_sigstore.trusted_root, "--key", pub)
    assert verdict["ok"], verdict
    capsys.readouterr()
    assert main(["verify", str(layout), "--key", pub]) == 0
    assert "signed by sha256:" in capsys.readouterr().out


def test_key_bundle_with_timestamp_alone(tmp_path: Path, keypairs: dict[str, Path],
                                         private_sigstore: PrivateSigstore) -> None:
    """sigstore-js's defaults also want a log entry: a TSA timestamp alone passes with tlogThreshold 0."""
    _, bundle, path = _sign(tmp_path, keypairs, "--timestamp-server", private_sigstore.tsa_url)
    assert bundle["verificationMaterial"]["tlogEntries"] == []
    pub = str(keypairs["alice"].with_suffix(".pub"))
    assert sigstore_js_verify(path, private_sigstore.trusted_root, "--key", pub, "--tlog-threshold", "0")["ok"]
    refused = sigstore_js_verify(path, private_sigstore.trusted_root, "--key", pub)
    assert not refused["ok"] and "tlog entries" in refused["message"]


def test_plain_key_bundle_has_no_timestamp_for_sigstore_js(tmp_path: Path, keypairs: dict[str, Path],
                                                           private_sigstore: PrivateSigstore) -> None:
    _, bundle, path = _sign(tmp_path, keypairs)
    assert bundle["dsseEnvelope"]["signatures"][0]["keyid"] == bundle["verificationMaterial"]["publicKey"]["hint"]
    pub = str(keypairs["alice"].with_suffix(".pub"))
    verdict = sigstore_js_verify(path, private_sigstore.trusted_root, "--key", pub, "--tlog-threshold", "0")
    assert not verdict["ok"] and "timestamps" in verdict["message"]


def test_timestamp_of_another_key_is_refused_by_sigstore_js(tmp_path: Path, keypairs: dict[str, Path],
                                                            private_sigstore: PrivateSigstore) -> None:
    _, _bundle, path = _sign(tmp_path, keypairs, "--timestamp-server", private_sigstore.tsa_url)
    verdict = sigstore_js_verify(path, private_sigstore.trusted_root, "--key", str(keypairs["bob"].with_suffix(".pub")),
                                 "--tlog-threshold", "0")
    assert not verdict["ok"]


def test_tsa_failure_exits_69(tmp_path: Path, keypairs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _layout, desc = make_package(tmp_path / "layout", name="stamped")
    with failing_service(502, b"bad gateway") as url:
        code = main(["sign", str(tmp_path / "layout"), "--key", str(keypairs["alice"].with_suffix(".key")),
                     "--timestamp-server", url])
    err = capsys.readouterr().err
    assert code == 69, err
    assert "TSA failed: HTTP 502: bad gateway" in err and url in err
    assert not Layout.open(tmp_path / "layout").referrers(desc.digest)  # nothing attached


def test_rekor_failure_on_upload_exits_69(tmp_path: Path, keypairs: dict[str, Path],
                                          private_sigstore: PrivateSigstore,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from tests.signing.sigstore_peers import with_service

    make_package(tmp_path / "layout", name="stamped")
    with failing_service(503) as url:
        config = with_service(private_sigstore.trust_config, tmp_path / "tc.json", "rekorTlogUrls", url)
        code = main(["sign", str(tmp_path / "layout"), "--key", str(keypairs["alice"].with_suffix(".key")),
                     "--tlog-upload", "--trust-config", str(config)])
    err = capsys.readouterr().err
    assert code == 69 and "Rekor failed: HTTP 503" in err


def test_malformed_rekor_answer_is_refused(tmp_path: Path, keypairs: dict[str, Path],
                                           private_sigstore: PrivateSigstore,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from tests.signing.sigstore_peers import with_service

    make_package(tmp_path / "layout", name="stamped")
    with failing_service(201, b'{"abc": {"body": "not base64!"}}') as url:
        config = with_service(private_sigstore.trust_config, tmp_path / "tc.json", "rekorTlogUrls", url)
        code = main(["sign", str(tmp_path / "layout"), "--key", str(keypairs["alice"].with_suffix(".key")),
                     "--tlog-upload", "--trust-config", str(config)])
    err = capsys.readouterr().err
    assert code == 77, err
    assert "Rekor returned a malformed log entry" in err


def test_verify_key_checks_timestamps_against_the_trust_config(tmp_path: Path, keypairs: dict[str, Path],
                                                               private_sigstore: PrivateSigstore,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    layout, _, _ = _sign(tmp_path, keypairs, "--timestamp-server", private_sigstore.tsa_url)
    pub = str(keypairs["alice"].with_suffix(".pub"))
    capsys.readouterr()
    assert main(["verify", str(layout), "--key", pub, "--trust-config", str(private_sigstore.trust_config),
                 "--json"]) == 0
    (sig,) = json.loads(capsys.readouterr().out)["verified"]
    assert sig["timeSource"] == "RFC 3161 timestamp (verified against the trust config's TSA)"
    # a trust config whose only TSA is someone else (here: the Fulcio root) refuses the timestamp
    other = json.loads(private_sigstore.trust_config.read_text())
    fulcio = other["trustedRoot"]["certificateAuthorities"][0]["certChain"]["certificates"]
    other["trustedRoot"]["timestampAuthorities"][0]["certChain"]["certificates"] = fulcio * 2
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["verify", str(layout), "--key", pub, "--trust-config", str(tmp_path / "other.json")]) == 77
    assert "not signed by a timestamp authority" in capsys.readouterr().err
