"""The main CLI flows with real secrets: none may appear in our output, messages, JSON, or any file
that is not 0600. The workload's own output (sealed end to end) is the one place a secret it prints
may show up; everything around it is checked.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from tests.deploy.conftest import Published, policy_for, published  # noqa: F401 - fixtures
from tests.fixtures.hosts import HostAgent

PASSPHRASE = "pass-phrase-5be1c0d9"
DEPLOY_SECRET = "deploy-secret-1d8e44f0"


def leaked_into(root: Path, secret: str) -> list[str]:
    """Files under ``root`` holding ``secret`` that others could read (anything but 0600)."""
    found = []
    for p in root.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode) if p.is_file() and not p.is_symlink() else 0o600
        if mode != 0o600 and secret.encode() in p.read_bytes():
            found.append(f"{p} ({oct(mode)})")
    return found


def holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    for var in ("ENARX_PKG_REGISTRY_TOKEN", "ENARX_PKG_REGISTRY_USERNAME", "ENARX_PKG_REGISTRY_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_login_with_password_stdin_stores_0600_and_prints_nothing_secret(registry_server, home, monkeypatch,
                                                                         capfd) -> None:
    token = registry_server.token("pull:*")
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    assert main(["login", registry_server.host, "-u", "ci", "--password-stdin"]) == 0
    out, err = capfd.readouterr()
    assert token not in out + err
    auth = home / "config" / "enarx-pkg" / "auth.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600 and stat.S_IMODE(auth.parent.stat().st_mode) == 0o700
    assert holding(home, token) == [] and leaked_into(home, token) == []  # stored base64, mode 0600
    assert auth in [p for p in home.rglob("auth.json")]


def test_refused_login_names_no_password(registry_server, home, monkeypatch, capfd) -> None:
    wrong = "enxr_deadbeef_" + "W" * 43
    monkeypatch.setattr(sys, "stdin", io.StringIO(wrong + "\n"))
    assert main(["login", registry_server.host, "-u", "ci", "--password-stdin"]) != 0
    out, err = capfd.readouterr()
    assert wrong not in out + err and "refused" in err
    assert not (home / "config" / "enarx-pkg" / "auth.json").exists()


def test_publish_with_token_env_prints_no_token(registry_server, home, monkeypatch, capfd) -> None:
    from tests.build.helpers import WASI_START, wat_project

    token = registry_server.token("push:leak/*")
    monkeypatch.setenv("ENARX_PKG_REGISTRY_TOKEN", token)
    project = wat_project(home / "p", f"{WASI_START} (func (export \"_start\"))", name="leak")
    assert main(["build", str(project)]) == 0
    assert main(["publish", str(project), "--registry", registry_server.host, "--repository", "leak/app",
                 "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out[out.index("\n{") + 1:]) and token not in out + err
    assert holding(home, token) == [] and holding(registry_server.data_dir, token) == []
    monkeypatch.setenv("ENARX_PKG_REGISTRY_TOKEN", token + "x")  # refused: still not echoed
    assert main(["publish", str(project), "--registry", registry_server.host, "--repository", "leak/app",
                 "--tag", "2.0.0", "--json"]) != 0
    out, err = capfd.readouterr()
    assert token not in out + err


def test_keys_generate_with_passphrase_env(home, monkeypatch, capfd) -> None:
    monkeypatch.setenv("ENARX_PKG_KEY_PASSWORD", PASSPHRASE)
    assert main(["keys", "generate", "--out", str(home / "keys" / "signer")]) == 0
    out, err = capfd.readouterr()
    assert PASSPHRASE not in out + err
    private = home / "keys" / "signer.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert holding(home, PASSPHRASE) == []
    monkeypatch.setenv("ENARX_PKG_KEY_PASSWORD", PASSPHRASE + "-wrong")  # a wrong one is not echoed either
    from enarx_pkg import keys
    from enarx_pkg.errors import InputError

    with pytest.raises(InputError) as info:
        keys.load_private(private)
    assert PASSPHRASE not in str(info.value) and PASSPHRASE not in info.value.diagnostics()


def test_deploy_secret_from_env_stays_inside_the_sealed_run(published: Published, sim_host: HostAgent,  # noqa: F811
                                                            policy_for, home, monkeypatch, capfd) -> None:  # noqa: F811
    monkeypatch.setenv("MY_SECRET_SOURCE", DEPLOY_SECRET)
    code = main(["deploy", published.plain, "--host", sim_host.url, "--host-token-file", str(sim_host.token_file),
                 "--policy", str(policy_for(sim_host)), "--key", str(published.signer_pub), "--insecure-sim",
                 "--secret", "PROBE_SECRET=env:MY_SECRET_SOURCE", "--json"])
    out, err = capfd.readouterr()
    report = json.loads(out)
    [row] = report["hosts"]
    assert row["error"] is None and row["status"] == code == 1  # the probe exits with argc - 1
    assert f"PROBE_SECRET={DEPLOY_SECRET}" in row["stdout"]  # the workload got it (and chose to print it)
    row.pop("stdout")
    assert DEPLOY_SECRET not in json.dumps(report) + err and sim_host.token not in out + err
    for root in (home, sim_host.data_dir, published.registry_root):
        assert holding(root, DEPLOY_SECRET) == [], root
    assert leaked_into(sim_host.data_dir, sim_host.token) == []


def test_deploy_refused_by_signature_sends_no_secret(published: Published, sim_host: HostAgent,  # noqa: F811
                                                     policy_for, home, monkeypatch, capfd) -> None:  # noqa: F811
    monkeypatch.setenv("PROBE_SECRET_SOURCE", DEPLOY_SECRET)
    code = main(["deploy", published.plain, "--host", sim_host.url, "--host-token-file", str(sim_host.token_file),
                 "--policy", str(policy_for(sim_host)), "--key", str(published.other_pub), "--insecure-sim",
                 "--json"])
    out, err = capfd.readouterr()
    assert code != 0 and DEPLOY_SECRET not in out + err and sim_host.token not in out + err


def test_files_with_secrets_are_0600(tmp_path: Path) -> None:
    """Every file the tool writes that holds a secret: login store, signing key, agent token, sim key."""
    from enarx_pkg import credentials, keys
    from enarx_pkg.attestation.sim import SimPlatform
    from enarx_pkg.host.serve import ServeOptions, load_token
    from enarx_pkg.oci.auth import Credential

    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    stored = credentials.save("127.0.0.1:1", Credential("u", "p"), env)
    pair = keys.generate(tmp_path / "k" / "signer", password_env=None)
    _, token_path = load_token(ServeOptions(data_dir=tmp_path / "host"))
    SimPlatform.load_or_create(tmp_path / "sim")
    secret_files = [stored, pair.private_path, token_path, *[p for p in (tmp_path / "sim").iterdir()
                                                             if "pub" not in p.name]]
    assert len(secret_files) >= 4
    for p in secret_files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert os.access(pair.public_path, os.R_OK)
