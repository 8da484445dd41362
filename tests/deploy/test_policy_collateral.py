"""The policy's `[collateral]` table (source evidence | offline | fetch, dir relative to the policy file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from enarx_pkg import deploy as d
from enarx_pkg import verify
from enarx_pkg.errors import InputError
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.fixtures.hosts import HostAgent


@pytest.fixture
def deploy_with(published: Published, sim_host: HostAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Deploy the probe with the sim host's policy plus a `[collateral]` table, written at ``where``."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)

    def run(collateral: str, where: Path = tmp_path / "policy.toml") -> d.HostResult:
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(sim_host.policy() + "\n[collateral]\n" + collateral)
        [r] = d.deploy(d.DeploySettings(ref=published.plain, hosts=(sim_host.url,), policy_path=where,
                                        host_token=sim_host.token, insecure_sim=True,
                                        signer=verify.KeyPolicy(published.signer_pub.read_bytes())))
        return r

    return run


def test_missing_collateral_dir_refuses_before_provisioning(deploy_with) -> None:
    r = deploy_with('dir = "no-such-collateral"\n')
    assert isinstance(r.error, InputError) and "no-such-collateral" in r.error.message
    assert r.status is None and MARKER not in r.stdout


def test_collateral_dir_relative_to_the_policy_file(deploy_with, tmp_path, monkeypatch) -> None:
    (tmp_path / "pol" / "collateral").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # the directory is found next to the policy, not in the working directory
    r = deploy_with('dir = "collateral"\n', tmp_path / "pol" / "policy.toml")
    assert r.error is None, r.error and r.error.message
    assert MARKER in r.stdout


def test_collateral_source_evidence_with_a_dir_is_a_policy_error(deploy_with) -> None:
    r = deploy_with('source = "evidence"\ndir = "x"\n')
    assert isinstance(r.error, InputError) and 'source = "evidence"' in r.error.message
    assert MARKER not in r.stdout


def test_collateral_source_offline_needs_a_dir(deploy_with) -> None:
    r = deploy_with('source = "offline"\n')
    assert isinstance(r.error, InputError) and "needs dir" in r.error.message


def test_collateral_source_fetch_for_a_sim_keep_fetches_nothing(deploy_with, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    r = deploy_with('source = "fetch"\n')
    assert r.error is None, r.error and r.error.message
    assert not (tmp_path / "cache" / "enarx-pkg" / "collateral").exists()
