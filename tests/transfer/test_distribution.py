"""Publish to and pull from CNCF distribution: anonymous, htpasswd Basic, and the Bearer token flow."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.oci import Client, parse_registry
from enarx_pkg.oci.auth import AuthError, Credential, static
from enarx_pkg.oci.client import parse_index
from enarx_pkg.oci.transport import Settings
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from tests.fixtures.distribution import Peer
from tests.transfer.conftest import add_signature, make_package

SMALL_CHUNKS = Settings(upload_chunk=1 << 20, monolithic_limit=1 << 20, backoff=0.01)


def _blobs(layout: Layout) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout.path / "blobs" / "sha256").iterdir()}


def test_round_trip_chunked_with_signature(docker_registry: Peer, tmp_path: Path) -> None:
    layout, dg = make_package(tmp_path / "pkg", extra=(3 << 20) + 12345)
    sig = add_signature(layout, dg, "alice")
    target = Target(parse_registry(docker_registry.host), "rt/chunked", "1.0.0")
    first = publish(layout, target, settings=SMALL_CHUNKS)
    assert first.pushed == 6 and first.skipped == 0 and first.referrers == [sig]
    assert first.referrers_via == "tag-schema"  # distribution 2.8 has no referrers API
    again = publish(layout, target, settings=SMALL_CHUNKS)
    assert again.pushed == 0 and again.skipped == 6

    got = pull(f"{docker_registry.host}/rt/chunked:1.0.0", tmp_path / "out")
    assert got.manifest_digest == dg and got.referrers == (sig,)
    assert _blobs(got.layout) == _blobs(layout)
    assert got.layout.resolve("1.0.0").digest == dg
    assert got.layout.referrers(dg)[0].digest == sig


def test_second_signature_is_merged_into_the_tag_index(docker_registry: Peer, tmp_path: Path) -> None:
    layout, dg = make_package(tmp_path / "pkg", note="two-sigs")
    target = Target(parse_registry(docker_registry.host), "rt/twosigs", "1")
    first = add_signature(layout, dg, "alice")
    publish(layout, target)
    # a second signer works from a fresh pull that holds only the first signature... plus their own
    second_layout, _ = make_package(tmp_path / "pkg2", note="two-sigs")
    second = add_signature(second_layout, dg, "bob")
    publish(second_layout, target)
    with Client(target.registry) as c:
        idx = parse_index(c.fetch_manifest("rt/twosigs", "sha256-" + dg[7:]).data, "index")
    assert {d.digest for d in idx} == {first, second}
    got = pull(f"{docker_registry.host}/rt/twosigs@{dg}", tmp_path / "out")
    assert set(got.referrers) == {first, second}


def test_cross_repository_mount(docker_registry: Peer, tmp_path: Path) -> None:
    layout, _ = make_package(tmp_path / "pkg", note="mount")
    reg = parse_registry(docker_registry.host)
    publish(layout, Target(reg, "mount/source", "1"))
    res = publish(layout, Target(reg, "mount/dest", "1"), mount_from="mount/source")
    assert res.mounted == 3 and res.pushed == 0


def test_pull_by_digest_and_missing_tag(docker_registry: Peer, tmp_path: Path) -> None:
    layout, dg = make_package(tmp_path / "pkg", note="bydigest")
    publish(layout, Target(parse_registry(docker_registry.host), "rt/bydigest", "v1"))
    got = pull(f"{docker_registry.host}/rt/bydigest@{dg}", tmp_path / "out")
    assert got.manifest_digest == dg and str(got.reference).endswith(dg)
    rc = main(["pull", f"{docker_registry.host}/rt/bydigest:nope", "-o", str(tmp_path / "none")])
    assert rc == 66 and not (tmp_path / "none").exists()


def _cli(argv: list[str], stdin: str, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_login_publish_pull_logout_htpasswd(docker_registry_htpasswd: Peer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    peer = docker_registry_htpasswd
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    wrong = "Wrong-Pa55-must-not-leak"
    rc, out, err = _cli(["login", peer.host, "-u", "enarx", "--password-stdin"], wrong + "\n", capsys, monkeypatch)
    assert rc == 77 and peer.host in err and wrong not in out + err
    assert not (tmp_path / "xdg" / "enarx-pkg" / "auth.json").exists()

    assert peer.password
    rc, out, err = _cli(["login", peer.host, "-u", "enarx", "--password-stdin"], peer.password + "\n", capsys,
                        monkeypatch)
    assert rc == 0, err
    store = tmp_path / "xdg" / "enarx-pkg" / "auth.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600 and peer.password not in out + err

    layout, dg = make_package(tmp_path / "pkg", note="cli")
    rc, out, err = _cli(["publish", str(layout.path), "--registry", peer.host, "--repository", "cli/hello",
                         "--tag", "0.1.0", "--json"], "", capsys, monkeypatch)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["reference"] == f"{peer.host}/cli/hello@{dg}" and doc["blobs"] == {"pushed": 3, "skipped": 0,
                                                                                 "mounted": 0}
    rc, out, err = _cli(["pull", f"{peer.host}/cli/hello:0.1.0", "-o", str(tmp_path / "got"), "--json"], "",
                        capsys, monkeypatch)
    assert rc == 0, err
    assert json.loads(out)["digest"] == dg

    rc, _, err = _cli(["logout", peer.host], "", capsys, monkeypatch)
    assert rc == 0 and "Removed" in err
    rc, out, err = _cli(["pull", f"{peer.host}/cli/hello:0.1.0", "-o", str(tmp_path / "anon")], "", capsys,
                        monkeypatch)
    assert rc == 77 and peer.host in err and "anonymous" in err


def test_bearer_token_flow_caches_tokens(docker_registry_token: Peer, tmp_path: Path) -> None:
    peer = docker_registry_token
    assert peer.username and peer.password
    creds = static(peer.host, Credential(peer.username, peer.password, "test"))
    layout, dg = make_package(tmp_path / "pkg", note="bearer")
    add_signature(layout, dg, "alice")
    res = publish(layout, Target(parse_registry(peer.host), "tok/hello", "1"), credentials=creds)
    assert res.pushed == 5
    tokens = peer.tokens.requests  # type: ignore[attr-defined]
    push_scopes = [r for r in tokens if "repository:tok/hello:pull,push" in r["query"].get("scope", [])]
    assert push_scopes and len(tokens) <= 3, tokens  # one token per scope, reused for every request
    got = pull(f"{peer.host}/tok/hello:1", tmp_path / "out", credentials=creds)
    assert got.manifest_digest == dg and len(got.referrers) == 1


def test_bearer_wrong_password_names_registry_not_secret(docker_registry_token: Peer, tmp_path: Path) -> None:
    creds = static(docker_registry_token.host, Credential("enarx", "Not-The-Password-42", "test"))
    with pytest.raises(AuthError) as exc:
        pull(f"{docker_registry_token.host}/tok/hello:1", tmp_path / "out", credentials=creds)
    text = exc.value.diagnostics()
    assert docker_registry_token.host in text and "Not-The-Password-42" not in text
    assert not (tmp_path / "out").exists()


def test_inspect_a_remote_reference(docker_registry: Peer, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    layout, dg = make_package(tmp_path / "pkg", note="inspect")
    sig = add_signature(layout, dg, "alice")
    publish(layout, Target(parse_registry(docker_registry.host), "rt/inspect", "1.0.0"))
    capsys.readouterr()
    rc = main(["inspect", f"{docker_registry.host}/rt/inspect:1.0.0", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert doc["digest"] == dg and [r["digest"] for r in doc["referrers"]] == [sig]
    assert doc["enarxToml"].startswith("[package]")


def test_publish_defaults_come_from_enarx_toml(docker_registry: Peer, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "proj"
    _, dg = make_package(project / "target" / "oci", note="defaults", tag="0.3.0")
    (project / "Enarx.toml").write_text(
        f'[package]\nname = "hello"\nversion = "0.3.0"\n\n[publish]\nregistry = "{docker_registry.host}"\n'
        'repository = "defaults/hello"\n')
    capsys.readouterr()
    assert main(["publish", str(project), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reference"] == f"{docker_registry.host}/defaults/hello@{dg}" and doc["tag"] == "0.3.0"


def test_encrypt_needs_a_recipient(tmp_path: Path) -> None:
    layout, _ = make_package(tmp_path / "pkg", note="enc")
    assert main(["publish", str(layout.path), "--registry", "127.0.0.1:1", "--repository", "x", "--encrypt"]) == 2
