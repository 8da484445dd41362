"""The package's own `[keep] backends` are honoured: a package for SNP/TDX never runs in another TEE.

When the policy's `tees` and the package's backends share no TEE, deploy says so before it contacts
any host; when they share one but the host's verified evidence shows another, the keep is refused
after attestation, before anything is sealed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tomli_w

from enarx_pkg import deploy as d
from enarx_pkg import keys, verify
from enarx_pkg._cli.main import main
from enarx_pkg.build import build
from enarx_pkg.errors import AttestationError, ExitCode
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.sign import sign_layout
from tests.deploy.conftest import MARKER, SECRET, WORKLOAD
from tests.deploy.proxy import Proxy, running


@pytest.fixture(scope="module")
def snp_only(tmp_path_factory: pytest.TempPathFactory, docker_registry) -> tuple[str, Path]:  # type: ignore[no-untyped-def]
    """The probe built with `[keep] backends = ["snp", "tdx"]`, signed and published: (reference, public key)."""
    tmp = tmp_path_factory.mktemp("snp-only")
    project = tmp / "project"
    shutil.copytree(WORKLOAD, project, ignore=shutil.ignore_patterns("target"))
    toml = project / "Enarx.toml"
    toml.write_text(toml.read_text().replace('backends = ["sim"]', 'backends = ["snp", "tdx"]'))
    built = build(project, tmp / "oci")
    pair = keys.generate(tmp / "signer", password_env=None)
    sign_layout(Layout.open(built.layout), built.tag, key=keys.load_private(pair.private_path, password_env=None))
    reg = parse_registry(docker_registry.host)
    publish(Layout.open(built.layout), Target(reg, "backends/snp-only", built.tag), source_ref=built.tag)
    return f"{reg.host}/backends/snp-only:{built.tag}", pair.public_path


def test_backends_disjoint_from_the_policy_are_refused_before_any_host(snp_only, sim_host, policy_for, monkeypatch,
                                                                       capsys) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    ref, pub = snp_only
    proxy = Proxy(sim_host.url)
    with running(proxy):
        code = main(["deploy", ref, "--host", proxy.url, "--host-token-file", str(sim_host.token_file),
                     "--policy", str(policy_for(sim_host)), "--key", str(pub), "--insecure-sim"])
    err = capsys.readouterr().err
    assert code == ExitCode.ATTESTATION_REFUSED, err
    assert "[keep] backends (snp, tdx) and the policy's tees (sim) have no TEE in common" in err
    assert 'hint: to deploy to a sim keep while developing, add "sim" to [keep] backends in Enarx.toml' in err
    assert "creating keep" not in err and "sealing" not in err
    assert proxy.log == []  # no host was contacted


def test_host_tee_outside_the_package_backends_is_refused_after_attestation(snp_only, sim_host, tmp_path,
                                                                             monkeypatch) -> None:
    """The policy accepts sim or snp, so the pre-check passes; the sim evidence then rules the keep out."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    ref, pub = snp_only
    policy = tmp_path / "sim-or-snp.toml"
    policy.write_text(tomli_w.dumps({"tees": ["sim", "snp"], "sim": {
        "insecure": True, "keys": [sim_host.fingerprint], "measurements": [sim_host.measurement]}}))
    proxy, events = Proxy(sim_host.url), []
    with running(proxy):
        [r] = d.deploy(d.DeploySettings(ref=ref, hosts=(proxy.url,), signer=verify.KeyPolicy(pub.read_bytes()),
                                        policy_path=policy, host_token=sim_host.token, insecure_sim=True),
                       event=lambda h, s: events.append(s))
    assert isinstance(r.error, AttestationError), r.error
    assert "offers a sim keep; the package's [keep] backends allow snp, tdx" in r.error.message
    assert r.status is None and MARKER not in r.stdout
    assert "verifying sim evidence" in events and not any("sealing" in e for e in events)
    assert not any("/provision" in p for p in proxy.paths())  # nothing was sealed or sent


def test_a_hardware_policy_for_a_package_of_other_tees_is_told_to_pick_another_policy() -> None:
    from enarx_pkg.deploy_checks import check_backends

    with pytest.raises(AttestationError) as info:
        check_backends(("sgx",), ("snp", "tdx"))
    assert "have no TEE in common" in str(info.value)
    assert info.value.hint == "deploy with a policy for a TEE the package was built for"
    check_backends(("snp", "sim"), ("sim",))  # sharing one TEE passes
