"""Credential lookup: our store (0600, dir 0700), docker config auths, credential helpers, environment."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from enarx_pkg import credentials
from enarx_pkg.errors import InputError
from enarx_pkg.oci.auth import Credential, parse_challenge


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DOCKER_CONFIG": str(tmp_path / "docker"),
            "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}


def test_store_is_private_and_round_trips(env: dict[str, str]) -> None:
    path = credentials.save("reg.example:5000", Credential("alice", "pw:with:colons"), env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    got = credentials.lookup("reg.example:5000", env)
    assert got is not None and (got.username, got.password) == ("alice", "pw:with:colons")
    assert "pw:with" not in repr(got)
    assert credentials.remove("reg.example:5000", env)
    assert credentials.lookup("reg.example:5000", env) is None
    assert not credentials.remove("reg.example:5000", env)


def test_docker_config_auths(env: dict[str, str]) -> None:
    cfg = Path(env["DOCKER_CONFIG"]) / "config.json"
    cfg.parent.mkdir()
    auths = {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:hubpw").decode()},
             "http://reg.example": {"auth": base64.b64encode(b"bob:bobpw").decode()}}
    cfg.write_text(json.dumps({"auths": auths}))
    hub = credentials.lookup("docker.io", env)
    assert hub is not None and hub.password == "hubpw"
    reg = credentials.lookup("reg.example", env)
    assert reg is not None and reg.username == "bob" and "docker config" in reg.source


def test_docker_config_garbage_is_a_clear_error(env: dict[str, str]) -> None:
    cfg = Path(env["DOCKER_CONFIG"]) / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"auths": {"reg.example": {"auth": "not base64!"}}}))
    with pytest.raises(InputError, match=r"reg\.example"):
        credentials.lookup("reg.example", env)


def _helper(env: dict[str, str], name: str) -> Path:
    """A real executable speaking the docker credential-helper protocol (host on stdin, JSON out)."""
    bin_dir = Path(env["PATH"].split(":")[0])
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / "argv.log"
    exe = bin_dir / f"docker-credential-{name}"
    exe.write_text(f"""#!/bin/sh
echo "$@" >> {log}
read host
if [ "$host" = "helped.example" ]; then
  echo '{{"ServerURL":"helped.example","Username":"carol","Secret":"helper-secret"}}'
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
    exe.chmod(0o755)
    return log


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_credential_helpers(env: dict[str, str], key: str) -> None:
    log = _helper(env, "fake")
    cfg = Path(env["DOCKER_CONFIG"]) / "config.json"
    cfg.parent.mkdir()
    value: object = {"helped.example": "fake"} if key == "credHelpers" else "fake"
    cfg.write_text(json.dumps({key: value}))
    got = credentials.lookup("helped.example", env)
    assert got is not None and (got.username, got.password) == ("carol", "helper-secret")
    assert log.read_text().split() == ["get"]  # the host travels on stdin, not argv
    if key == "credsStore":
        assert credentials.lookup("other.example", env) is None


def test_environment_wins_and_can_be_scoped(env: dict[str, str]) -> None:
    credentials.save("reg.example", Credential("stored", "x"), env)
    env.update({credentials.ENV_USERNAME: "ci", credentials.ENV_PASSWORD: "cipw"})
    got = credentials.lookup("reg.example", env)
    assert got is not None and got.username == "ci"
    env[credentials.ENV_HOST] = "elsewhere.example"
    got = credentials.lookup("reg.example", env)
    assert got is not None and got.username == "stored"
    env.pop(credentials.ENV_HOST)
    env[credentials.ENV_TOKEN] = "tok"
    got = credentials.lookup("reg.example", env)
    assert got is not None and got.password == "tok"


def test_parse_bearer_challenge() -> None:
    ch = parse_challenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')
    assert ch is not None and ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"}
