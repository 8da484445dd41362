"""The keep pulls through ``enarx_pkg.pull`` under its own, tighter ``Limits`` (keep/workload.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enarx_pkg import verify
from enarx_pkg._internal import digest, seal
from enarx_pkg.errors import InputError
from enarx_pkg.keep import workload
from enarx_pkg.oci.client import Client
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import MEDIA_MANIFEST
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.deploy.proxy import Proxy, running


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)


def test_the_keep_pulls_by_digest_and_asks_for_no_signatures(published: Published, sim_host, policy_for) -> None:
    from enarx_pkg import deploy as d

    registry = Proxy(published.registry_url)
    with running(registry):
        [result] = d.deploy(d.DeploySettings(
            ref=published.plain, hosts=(sim_host.url,), signer=verify.KeyPolicy(published.signer_pub.read_bytes()),
            policy_path=policy_for(sim_host), host_token=sim_host.token, insecure_sim=True,
            keep_registry=registry.url))
    assert result.error is None and result.status == 1 and MARKER in result.stdout  # argc - 1
    asked = [p for p in registry.paths() if not p.endswith("/v2/")]
    assert asked and all(" /v2/probe/manifests/sha256:" in p or " /v2/probe/blobs/sha256:" in p for p in asked), asked
    assert f"GET /v2/probe/manifests/{published.plain_digest}" in asked
    assert not [p for p in asked if "referrers" in p or "sha256-" in p]  # the deployer checked the signatures


def test_the_keep_refuses_a_manifest_over_its_limits(published: Published, tmp_path: Path) -> None:
    """A package is two layers; a manifest listing three is refused before any blob is written."""
    registry = parse_registry(published.registry_host)
    with Client(registry) as client:
        manifest = json.loads(client.fetch_manifest("probe", published.plain_digest).data)
        manifest["layers"].append(manifest["layers"][1])
        data = json.dumps(manifest).encode()
        client.put_manifest("probe", digest.of_bytes(data), data, MEDIA_MANIFEST)
    envelope = seal.Envelope(published.registry_url, "probe", digest.of_bytes(data), bytes(32))
    work = tmp_path / "keep"
    work.mkdir()
    with pytest.raises(InputError, match="has 3 layers, over the limit of 2"):
        workload.fetch(envelope, work, {})
    assert list(work.iterdir()) == []  # pull's staging directory is gone, nothing half-written
    assert workload.LIMITS.max_layers == 2 and workload.LIMITS.max_referrers == 0
