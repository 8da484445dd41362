"""deploy end to end: real registry, real sim host agent, real keep processes, real wasmtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enarx_pkg import deploy as d
from enarx_pkg import verify
from enarx_pkg._cli.main import main
from enarx_pkg.errors import UsageError
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.fixtures.hosts import HostAgent


def settings(pub: Published, host: HostAgent, policy: Path, **kw: object) -> d.DeploySettings:
    base: dict[str, object] = dict(ref=pub.plain, hosts=(host.url,), policy_path=policy, host_token=host.token,
                                   signer=verify.KeyPolicy(pub.signer_pub.read_bytes()), insecure_sim=True)
    return d.DeploySettings(**(base | kw))  # type: ignore[arg-type]


def test_plain_package_runs_in_sim_keep(published: Published, sim_host: HostAgent, policy_for, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    [r] = d.deploy(settings(published, sim_host, policy_for(sim_host), args=("a", "b")))
    assert r.error is None, r.error and r.error.message
    out = bytes(r.stdout)
    assert MARKER in out and b"arg=a\narg=b\n" in out
    assert f"env=PROBE_SECRET={SECRET}".encode() in out  # the secret reached the workload as an env var
    assert b"env=FD_NAMES=stdin:stdout:stderr" in out
    assert r.status == 2  # argc - 1: the workload's own exit status comes back sealed
    assert r.tee == "sim" and r.measurement == sim_host.measurement


def test_encrypted_package_with_stdin(published: Published, sim_host: HostAgent, policy_for, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    s = settings(published, sim_host, policy_for(sim_host), ref=published.encrypted,
                 decryption_key=published.recipient_key.read_bytes(), stdin=b"sealed stdin\n" * 3)
    [r] = d.deploy(s)
    assert r.error is None, r.error and r.error.message
    assert MARKER in r.stdout and r.stdout.endswith(b"sealed stdin\n" * 3)
    assert r.status == 1


def test_encrypted_package_without_decryption_key_is_refused(published, sim_host, policy_for, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    with pytest.raises(UsageError, match="--decryption-key"):  # before any host: see test_checks_first.py
        d.deploy(settings(published, sim_host, policy_for(sim_host), ref=published.encrypted))


def test_cli_deploy_exits_with_workload_status(published, sim_host, policy_for, monkeypatch, capfdbinary) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    code = main(["deploy", published.plain, "--host", sim_host.url, "--host-token-file", str(sim_host.token_file),
                 "--policy", str(policy_for(sim_host)), "--key", str(published.signer_pub), "--insecure-sim",
                 "--", "x", "y", "z"])
    out, err = capfdbinary.readouterr()
    assert code == 3
    assert MARKER in out and b"arg=z" in out
    assert b"--insecure-sim" in err and SECRET.encode() not in err


def test_cli_json_with_two_hosts(published, sim_host, policy_for, monkeypatch, capfdbinary) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    policy = policy_for(sim_host)
    code = main(["deploy", published.plain, "--host", sim_host.url, "--host", sim_host.url, "--host-token-file",
                 str(sim_host.token_file), "--policy", str(policy), "--key", str(published.signer_pub),
                 "--insecure-sim", "--json"])
    out, _ = capfdbinary.readouterr()
    report = json.loads(out)
    assert code == 1  # the package's own args ["one"]: argc - 1
    assert [h["status"] for h in report["hosts"]] == [1, 1]
    assert len({h["keep_id"] for h in report["hosts"]}) == 2  # each host attested its own keep
    assert all("create_keep" in h["timings_ms"] for h in report["hosts"])


@pytest.mark.parametrize("secret_opt", ["PROBE_SECRET=env:OTHER_VAR", "PROBE_SECRET=file:{file}"])
def test_secret_option_overrides_source(published, sim_host, policy_for, monkeypatch, tmp_path, secret_opt) -> None:
    f = tmp_path / "secret.txt"
    f.write_text("from-a-file")
    monkeypatch.setenv("OTHER_VAR", "from-a-file")
    from enarx_pkg.deploy_plan import parse_secret_option

    s = settings(published, sim_host, policy_for(sim_host),
                 secrets=(parse_secret_option(secret_opt.format(file=f)),))
    [r] = d.deploy(s)
    assert r.error is None, r.error and r.error.message
    assert b"env=PROBE_SECRET=from-a-file" in r.stdout


def test_encrypted_package_from_our_registry(published, sim_host, policy_for, registry_server, tmp_path,
                                             monkeypatch) -> None:
    """The embedded default: our registry (SQLite + files, no anonymous pull) holds the encrypted, signed
    package; the deployer's credential is sealed to the keep, which pulls with it."""
    from enarx_pkg.oci.auth import Credential, static
    from enarx_pkg.oci.reference import parse_registry
    from enarx_pkg.publish import Target, publish
    from enarx_pkg.pull import pull

    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    pulled = pull(published.encrypted, tmp_path / "enc")
    creds = static(registry_server.host, Credential("admin", registry_server.admin_token))
    target = publish(pulled.layout, Target(parse_registry(registry_server.host), "deploy/probe", "0.1.0"),
                     credentials=creds)
    s = settings(published, sim_host, policy_for(sim_host), ref=f"{registry_server.host}/deploy/probe:0.1.0",
                 decryption_key=published.recipient_key.read_bytes())
    monkeypatch.setenv("ENARX_PKG_REGISTRY_HOST", registry_server.host)
    monkeypatch.setenv("ENARX_PKG_REGISTRY_USERNAME", "admin")
    monkeypatch.setenv("ENARX_PKG_REGISTRY_PASSWORD", registry_server.admin_token)
    [r] = d.deploy(s)
    assert r.error is None, r.error and r.error.message
    assert MARKER in r.stdout and r.status == 1
    assert target.reference.digest == published.encrypted_digest  # same bytes, another registry
