"""The package's own `[keep] backends` are honoured: a package for SNP/TDX never runs in another TEE."""

from __future__ import annotations

import shutil
from pathlib import Path

from enarx_pkg import deploy as d
from enarx_pkg import keys, verify
from enarx_pkg.build import build
from enarx_pkg.errors import AttestationError
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.sign import sign_layout
from tests.deploy.conftest import MARKER, SECRET, WORKLOAD


def test_package_backends_exclude_the_hosts_tee(tmp_path: Path, docker_registry, sim_host, policy_for,
                                                 monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    project = tmp_path / "project"
    shutil.copytree(WORKLOAD, project, ignore=shutil.ignore_patterns("target"))
    toml = project / "Enarx.toml"
    toml.write_text(toml.read_text().replace('backends = ["sim"]', 'backends = ["snp", "tdx"]'))
    built = build(project, tmp_path / "oci")
    pair = keys.generate(tmp_path / "signer", password_env=None)
    sign_layout(Layout.open(built.layout), built.tag, key=keys.load_private(pair.private_path, password_env=None))
    reg = parse_registry(docker_registry.host)
    publish(Layout.open(built.layout), Target(reg, "backends/snp-only", built.tag), source_ref=built.tag)
    [r] = d.deploy(d.DeploySettings(
        ref=f"{reg.host}/backends/snp-only:{built.tag}", hosts=(sim_host.url,),
        signer=verify.KeyPolicy(pair.public_path.read_bytes()), policy_path=policy_for(sim_host),
        host_token=sim_host.token, insecure_sim=True))
    assert isinstance(r.error, AttestationError), r.error
    assert "backends allow snp, tdx" in r.error.message
    assert r.status is None and MARKER not in r.stdout
