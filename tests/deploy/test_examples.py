"""Every example of the build issue, built by `enarx-pkg build`, signed, published and deployed
through a sim keep: the greeting, the deployer's arguments and Enarx's FD_NAMES come back sealed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from enarx_pkg import deploy as d
from enarx_pkg import keys, verify
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.sign import sign_layout
from tests.build.test_run import HELLO


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> keys.KeyPair:
    return keys.generate(tmp_path_factory.mktemp("examples-signer") / "signer", password_env=None)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HELLO))
def test_example_runs_in_a_sim_keep(name: str, built_example: Callable[[str], Path], signer: keys.KeyPair,
                                    docker_registry, sim_host, policy_for) -> None:
    layout = Layout.open(built_example(name))
    desc = layout.resolve()
    sign_layout(layout, desc.digest, key=keys.load_private(signer.private_path, password_env=None))
    reg = parse_registry(docker_registry.host)
    publish(layout, Target(reg, f"examples/{name}", "0.1.0"), source_ref=desc.digest)
    [r] = d.deploy(d.DeploySettings(
        ref=f"{reg.host}/examples/{name}:0.1.0", hosts=(sim_host.url,), args=("one", "two words"),
        signer=verify.KeyPolicy(signer.public_path.read_bytes()), policy_path=policy_for(sim_host),
        host_token=sim_host.token, insecure_sim=True))
    assert r.error is None, r.error and r.error.message
    out = bytes(r.stdout).decode()
    assert r.status == 0
    assert HELLO[name] in out
    assert "arg: one" in out and "arg: two words" in out
    assert "FD_NAMES=stdin:stdout:stderr" in out
