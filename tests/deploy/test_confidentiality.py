"""Confidentiality: the host and the registry see only ciphertext.

A deploy of the ENCRYPTED probe, whose workload prints a known secret and whose module holds a known
marker, runs through a recording proxy in front of the agent (everything the agent receives and
sends over HTTP), from a registry that holds only that package. Neither the secret, nor the marker,
nor any layer key may appear in the recording or anywhere in the registry's storage.
"""

from __future__ import annotations

import base64
from pathlib import Path

from enarx_pkg import deploy as d
from enarx_pkg import verify
from enarx_pkg.encrypt import unwrap_layer_key
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from tests.deploy.conftest import MARKER, SECRET
from tests.deploy.proxy import Proxy, running
from tests.fixtures.distribution import _stop, start_registry


def test_host_and_registry_see_no_secret_marker_or_layer_key(published, sim_host, policy_for, tmp_path,
                                                             monkeypatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    registry = start_registry(tmp_path / "registry")
    try:
        pulled = pull(published.encrypted, tmp_path / "enc")
        target = publish(pulled.layout, Target(parse_registry(registry.host), "probe-enc", "0.1.0"))
        manifest = pulled.layout.manifest(pulled.manifest_digest)
        keys = [unwrap_layer_key(layer, published.recipient_key.read_bytes()) for layer in manifest.layers]
        proxy = Proxy(sim_host.url)
        with running(proxy):
            [r] = d.deploy(d.DeploySettings(
                ref=f"{registry.host}/probe-enc@{target.reference.digest}", hosts=(proxy.url,),
                signer=verify.KeyPolicy(published.signer_pub.read_bytes()), policy_path=policy_for(sim_host),
                host_token=sim_host.token, insecure_sim=True,
                decryption_key=published.recipient_key.read_bytes()))
        assert r.error is None, r.error and r.error.message
        # the deploy really carried the secret and the marker, sealed
        assert MARKER in r.stdout and f"PROBE_SECRET={SECRET}".encode() in r.stdout
        wire = proxy.recorded()
        assert any(e.path.endswith("/provision") for e in proxy.log) and len(wire) > 1000
        stored = b"".join(p.read_bytes() for p in Path(registry.root).rglob("*") if p.is_file())
        assert len(stored) > 1000
        forbidden = [SECRET.encode(), MARKER, base64.b64encode(SECRET.encode())]
        for k in keys:
            forbidden += [k.symkey, base64.b64encode(k.symkey), base64.urlsafe_b64encode(k.symkey).rstrip(b"=")]
        for needle in forbidden:
            assert needle not in wire, "host agent traffic leaks a secret, the marker or a layer key"
            assert needle not in stored, "registry storage leaks a secret, the marker or a layer key"
    finally:
        _stop(registry)
