"""Signing and verifying a package in a real registry (CNCF distribution on loopback, no referrers API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.publish import Target, publish
from tests.signing.conftest import make_package


def test_sign_and_verify_a_remote_reference(tmp_path: Path, docker_registry: Any, keypairs: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    layout, desc = make_package(tmp_path / "l", name="remote", message="remote")
    reg = parse_registry(docker_registry.host)
    publish(layout, Target(reg, "signing/remote", "0.1.0"), source_ref="0.1.0")
    ref = f"{reg.host}/signing/remote:0.1.0"
    assert main(["verify", ref, "--key", str(keypairs["alice"].with_suffix(".pub"))]) == 77
    assert "no sigstore signature" in capsys.readouterr().err
    for who in ("alice", "bob"):  # two signatures on one package, pushed as referrers
        assert main(["sign", ref, "--key", str(keypairs[who].with_suffix(".key"))]) == 0
    capsys.readouterr()
    for who in ("alice", "bob"):
        assert main(["verify", ref, "--key", str(keypairs[who].with_suffix(".pub")), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["manifestDigest"] == desc.digest
        assert len(report["verified"]) == 1 and len(report["refused"]) == 1  # both referrers came back
    assert main(["verify", ref, "--key", str(keypairs["mallory"].with_suffix(".pub"))]) == 77
