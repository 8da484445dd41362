"""--trust-config where signatures are consumed: `deploy` (CNCF distribution + a sim host agent on
loopback) and `registry serve` (the signature badges), with a package signed keylessly through
sigstore's mock Fulcio/Rekor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.build import build
from enarx_pkg.oci.auth import Credential
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from tests.deploy.conftest import MARKER, SECRET, WORKLOAD
from tests.fixtures.registry import start_registry
from tests.signing.conftest import make_package
from tests.signing.sigstore_peers import IDENTITY, ISSUER, PrivateSigstore, oidc_token


def _keyless(layout: Path, token_dir: Path, private_sigstore: PrivateSigstore) -> None:
    (token_dir / "token").write_text(oidc_token())
    assert main(["sign", str(layout), "--keyless", "--identity-token", str(token_dir / "token"),
                 "--trust-config", str(private_sigstore.trust_config)]) == 0


def test_deploy_verifies_a_private_sigstore_signature(tmp_path: Path, docker_registry: Any, sim_host: Any,
                                                      private_sigstore: PrivateSigstore,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(WORKLOAD, project, ignore=shutil.ignore_patterns("target"))
    built = build(project, tmp_path / "oci")
    _keyless(built.layout, tmp_path, private_sigstore)
    reg = parse_registry(docker_registry.host)
    publish(Layout.open(built.layout), Target(reg, "keyless/probe", built.tag), source_ref=built.tag)
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    (tmp_path / "policy.toml").write_text(sim_host.policy())
    (tmp_path / "token.txt").write_text(sim_host.token)
    base = ["deploy", f"{reg.host}/keyless/probe:{built.tag}", "--host", sim_host.url, "--host-token-file",
            str(tmp_path / "token.txt"), "--policy", str(tmp_path / "policy.toml"), "--insecure-sim",
            "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]
    assert main([*base, "--json"]) == 77  # the public sigstore root does not vouch for the mock's CA
    assert "keyless signature refused" in capsys.readouterr().err
    code = main([*base, "--trust-config", str(private_sigstore.trust_config), "--json"])
    (host,) = json.loads(capsys.readouterr().out)["hosts"]
    assert host["error"] is None and code == host["status"]  # deploy exits with the workload's status
    assert MARKER.decode() in host["stdout"]


def test_registry_badges_use_the_trust_config(tmp_path: Path, private_sigstore: PrivateSigstore) -> None:
    layout, _ = make_package(tmp_path / "layout", name="badge")
    _keyless(tmp_path / "layout", tmp_path, private_sigstore)
    servers = {}
    try:
        for name, extra in (("public", []), ("private", ["--trust-config", str(private_sigstore.trust_config)])):
            servers[name] = start_registry(tmp_path / name, extra=["--anonymous-pull", *extra])
            admin = Credential("admin", servers[name].admin_token)
            publish(layout, Target(parse_registry(servers[name].host), "keyless/badge", "0.1.0"), source_ref="0.1.0",
                    credentials=lambda _host, c=admin: c)
        verdicts = {}
        for name, server in servers.items():
            r = httpx.get(f"{server.url}/api/v1/repositories/keyless/badge/-/versions/0.1.0/signatures", timeout=30)
            (sig,) = r.json()["signatures"]
            assert sig["signer"] == IDENTITY and sig["issuer"] == ISSUER
            verdicts[name] = (sig["verified"], sig["note"])
        assert verdicts["private"] == (True, "verified offline (the --trust-config root)")
        assert verdicts["public"][0] is False
    finally:
        for server in servers.values():
            server.stop()


def test_registry_serve_refuses_an_unusable_trust_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tc.json").write_text('{"mediaType": "something else"}')
    assert main(["registry", "serve", "--data", str(tmp_path / "d"), "--port", "1",
                 "--trust-config", str(tmp_path / "tc.json")]) == 65
    assert "not a usable sigstore ClientTrustConfig" in capsys.readouterr().err
