"""The policy's `[collateral] dir` reaches the evidence verifier (relative to the policy file)."""

from __future__ import annotations

from pathlib import Path

from enarx_pkg import deploy as d
from enarx_pkg import verify
from enarx_pkg.errors import InputError
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.fixtures.hosts import HostAgent


def _settings(pub: Published, host: HostAgent, policy: Path) -> d.DeploySettings:
    return d.DeploySettings(ref=pub.plain, hosts=(host.url,), policy_path=policy, host_token=host.token,
                            signer=verify.KeyPolicy(pub.signer_pub.read_bytes()), insecure_sim=True)


def test_missing_collateral_dir_refuses_before_provisioning(published, sim_host, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    policy = tmp_path / "policy.toml"
    policy.write_text(sim_host.policy() + '\n[collateral]\ndir = "no-such-collateral"\n')
    [r] = d.deploy(_settings(published, sim_host, policy))
    assert isinstance(r.error, InputError) and "no-such-collateral" in r.error.message
    assert r.status is None and MARKER not in r.stdout


def test_collateral_dir_relative_to_the_policy_file(published, sim_host, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    (tmp_path / "pol" / "collateral").mkdir(parents=True)
    policy = tmp_path / "pol" / "policy.toml"
    policy.write_text(sim_host.policy() + '\n[collateral]\ndir = "collateral"\n')
    monkeypatch.chdir(tmp_path)  # the directory is found next to the policy, not in the working directory
    [r] = d.deploy(_settings(published, sim_host, policy))
    assert r.error is None, r.error and r.error.message
    assert MARKER in r.stdout


def test_collateral_source_evidence_with_a_dir_is_a_policy_error(published, sim_host, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    policy = tmp_path / "policy.toml"
    policy.write_text(sim_host.policy() + '\n[collateral]\nsource = "evidence"\ndir = "x"\n')
    [r] = d.deploy(_settings(published, sim_host, policy))
    assert isinstance(r.error, InputError) and 'source = "evidence"' in r.error.message
    assert MARKER not in r.stdout


def test_collateral_source_offline_needs_a_dir(published, sim_host, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    policy = tmp_path / "policy.toml"
    policy.write_text(sim_host.policy() + '\n[collateral]\nsource = "offline"\n')
    [r] = d.deploy(_settings(published, sim_host, policy))
    assert isinstance(r.error, InputError) and "needs dir" in r.error.message


def test_collateral_source_fetch_for_a_sim_keep_fetches_nothing(published, sim_host, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    policy = tmp_path / "policy.toml"
    policy.write_text(sim_host.policy() + '\n[collateral]\nsource = "fetch"\n')
    [r] = d.deploy(_settings(published, sim_host, policy))
    assert r.error is None, r.error and r.error.message
    assert not (tmp_path / "cache" / "enarx-pkg" / "collateral").exists()
