"""``keep restart``: a NEW keep, attested again (fresh nonce, new evidence) against the policy as it reads
now, running the same package by digest; the old keep is stopped and its state record replaced. A policy
that no longer accepts the host fails the restart closed, the old keep untouched."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.hosts import HostAgent
from tests.network.detached import Detached, Service, cli, deploy_detached, range_host

GREETING = "hello from rust\n"


@pytest.fixture(scope="module")
def restart_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostAgent, int]]:
    yield from range_host(tmp_path_factory.mktemp("restart-host"), 4)


def restart(d: Detached, host: HostAgent, *extra: str) -> tuple[int, dict[str, object], str]:
    r = cli("keep", "restart", d.keep_id, "--host", host.url, "--insecure-sim", "--json", *extra, env=d.env)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout) if r.returncode == 0 else {}, r.stderr


def keep_answers(host: HostAgent, keep_id: str, capability: str) -> int:
    r = httpx.get(f"{host.url}/v1/keeps/{keep_id}", headers={"Authorization": f"Bearer {capability}"}, timeout=30)
    return r.status_code


def test_restart_is_a_new_attested_keep_and_the_service_answers(
        rust_service: Service, restart_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, _ = restart_host
    secret = tmp_path / "db-password"
    secret.write_text("s3cret-value-never-stored")
    d = deploy_detached(rust_service, host, tmp_path, "--secret", f"DB_PASSWORD=file:{secret}")
    old = json.loads(d.state.read_text())
    assert "s3cret-value-never-stored" not in d.state.read_text()  # the source, never the value
    assert "@sha256:" in old["recipe"]["reference"]  # pinned by the digest deploy resolved
    code, new, err = restart(d, host)
    assert code == 0, err
    assert new["keep_id"] != d.keep_id and new["replaced"] == d.keep_id
    state = Path(str(new["state_file"]))
    record = json.loads(state.read_text())
    assert record["keep_id"] == new["keep_id"] and stat.S_IMODE(state.stat().st_mode) == 0o600
    assert not d.state.exists()  # the old keep's record is gone with it
    assert record["attestation"]["nonce"] != old["attestation"]["nonce"]
    assert record["attestation"]["evidence_sha256"] != old["attestation"]["evidence_sha256"]
    assert record["recipe"]["reference"] == old["recipe"]["reference"]  # same package, by digest
    assert keep_answers(host, d.keep_id, old["capability"]) == 404  # the old keep was stopped
    assert httpx.get(f"http://{record['endpoints'][0]['address']}/", timeout=30).text == GREETING
    for secret_text in (record["capability"], record["session_key"]):
        assert secret_text not in err
    cli("keep", "stop", str(new["keep_id"]), "--host", host.url, env=d.env)


def test_a_policy_that_no_longer_accepts_the_host_fails_closed(
        rust_service: Service, restart_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, _ = restart_host
    d = deploy_detached(rust_service, host, tmp_path)
    before = d.state.read_bytes()
    capability = json.loads(before)["capability"]
    (tmp_path / "policy.toml").write_text(host.policy(measurements=["00" * 48]))  # the host's runtime changed
    code, _, err = restart(d, host)
    assert code == 78, err  # attestation refused
    assert "measurement" in err and "creating keep" in err and "stopping the old keep" not in err
    assert d.state.read_bytes() == before  # the record is untouched ...
    assert keep_answers(host, d.keep_id, capability) == 200  # ... and so is the keep, which still serves
    assert httpx.get(d.url, timeout=30).text == GREETING
    active = httpx.get(host.url + "/v1/platform", headers={"Authorization": f"Bearer {host.token}"}, timeout=30)
    assert active.json()["keeps"]["active"] == 1  # the refused new keep was destroyed
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_a_mapped_port_is_kept_across_restart_with_state_file(
        rust_service: Service, restart_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    """``--publish`` ports stay the same: the old keep is stopped first (the documented downtime), and the
    same ``--state`` file then names the new keep."""
    host, low = restart_host
    state = tmp_path / "web.keep"
    d = deploy_detached(rust_service, host, tmp_path, "--publish", f"{low + 3}:web", "--state", str(state))
    assert d.url == f"http://127.0.0.1:{low + 3}"
    code, new, err = restart(d, host, "--state", str(state))
    assert code == 0, err
    assert "stopping the old keep" in err and "first: it holds a port the new keep binds" in err
    assert new["endpoints"] == [{"name": "web", "port": 8080, "address": f"127.0.0.1:{low + 3}"}]
    assert Path(str(new["state_file"])) == state and json.loads(state.read_text())["keep_id"] == new["keep_id"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600 and not state.with_name("web.keep.new").exists()
    assert httpx.get(d.url, timeout=30).text == GREETING
    cli("keep", "stop", "--state", str(state), "--host", host.url, env=d.env)


def test_secrets_are_read_again_from_their_source(
        rust_service: Service, restart_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    """The state holds the secret's source; a source that is gone at restart refuses, before anything
    is sealed, and the old keep runs on."""
    host, _ = restart_host
    secret = tmp_path / "token"
    secret.write_text("value")
    d = deploy_detached(rust_service, host, tmp_path, "--secret", f"API_TOKEN=file:{secret}")
    before = d.state.read_bytes()
    os.unlink(secret)
    code, _, err = restart(d, host)
    assert code == 65, err
    assert f"secret API_TOKEN: cannot read {secret}" in err
    assert d.state.read_bytes() == before and httpx.get(d.url, timeout=30).text == GREETING
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_restart_of_a_keep_that_is_already_gone_starts_a_new_one(
        rust_service: Service, restart_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, _ = restart_host
    d = deploy_detached(rust_service, host, tmp_path)
    capability = json.loads(d.state.read_text())["capability"]
    httpx.delete(f"{host.url}/v1/keeps/{d.keep_id}", headers={"Authorization": f"Bearer {capability}"}, timeout=30)
    code, new, err = restart(d, host)
    assert code == 0, err
    assert "was already gone" in err
    assert httpx.get(f"http://{new['endpoints'][0]['address']}/", timeout=30).text == GREETING  # type: ignore[index]
    cli("keep", "stop", str(new["keep_id"]), "--host", host.url, env=d.env)
