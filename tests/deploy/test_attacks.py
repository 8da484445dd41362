"""One test per attack on deploy. Each must be refused, and the workload must not run.

"Did not run" is observed on the wire: the probe workload prints its marker first thing, so a keep
that ran it sends at least one sealed output frame before its exit frame. Attestation attacks are
refused before any provisioning request reaches the host at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from enarx_pkg import deploy as d
from enarx_pkg import verify
from enarx_pkg._internal import seal
from enarx_pkg.errors import AttestationError, VerificationError
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.deploy.proxy import Proxy, join_records, running, split_records, tamper_records
from tests.fixtures.hosts import HostAgent, start_host, stop_host


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)


def deploy_via(pub: Published, host: HostAgent, url: str, policy: Path, **kw: object) -> d.HostResult:
    base: dict[str, object] = dict(
        ref=pub.plain, hosts=(url,), signer=verify.KeyPolicy(pub.signer_pub.read_bytes()), policy_path=policy,
        host_token=host.token, insecure_sim=True)
    [result] = d.deploy(d.DeploySettings(**(base | kw)))  # type: ignore[arg-type]
    return result


def provisioned(proxy: Proxy) -> list[str]:
    return [p for p in proxy.paths() if p.endswith("/provision")]


def output_frames(proxy: Proxy) -> int:
    """How many sealed frames the keep sent back (the probe sends >= 2 when it runs: output + exit)."""
    bodies = [e.response for e in proxy.log if e.path.endswith("/provision")]
    return sum(1 for b in bodies for k, _ in split_records(b) if k == seal.R_FRAME)


def refused(result: d.HostResult, kind: type[Exception], *words: str) -> None:
    assert isinstance(result.error, kind), result.error
    for w in words:
        assert w in result.error.message, result.error.message
    assert result.status is None and MARKER not in result.stdout


# -- the host lies about the keep ------------------------------------------------------------------

def test_evidence_from_another_keep_is_refused(published, sim_host, policy_for) -> None:
    """Binding: the host answers with keep A's key but keep B's (genuine, same-nonce) evidence."""
    def swap(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "POST" and path == "/v1/keeps":
            other = httpx.post(sim_host.url + "/v1/keeps", headers={"Authorization": f"Bearer {sim_host.token}"},
                               json={"nonce": json.loads(proxy.log_nonce)["nonce"]},
                               timeout=60).json()  # the pool may have to start this keep cold
            mine = json.loads(body)
            mine["evidence"] = other["evidence"]
            return json.dumps(mine).encode()
        return body

    def note(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if path == "/v1/keeps":
            proxy.log_nonce = body  # type: ignore[attr-defined]
        return path, body

    proxy = Proxy(sim_host.url, note, swap)
    with running(proxy):
        r = deploy_via(published, sim_host, proxy.url, policy_for(sim_host))
    refused(r, AttestationError, "not bound")
    assert not provisioned(proxy)


def test_replayed_evidence_from_earlier_deploy_is_refused(published, sim_host, policy_for) -> None:
    """Nonce: the host replays a whole create-keep answer recorded during an earlier deploy."""
    recorded: list[bytes] = []

    def replay(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "POST" and path == "/v1/keeps":
            if recorded:
                return recorded[0]
            recorded.append(body)
        return body

    proxy = Proxy(sim_host.url, on_response=replay)
    with running(proxy):
        first = deploy_via(published, sim_host, proxy.url, policy_for(sim_host))
        assert first.error is None and MARKER in first.stdout
        proxy.log.clear()
        r = deploy_via(published, sim_host, proxy.url, policy_for(sim_host))
    refused(r, AttestationError, "not bound")
    assert not provisioned(proxy)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_altered_or_truncated_envelope_is_refused(published, sim_host, policy_for, how) -> None:
    """AEAD: the host changes one byte of the sealed envelope, or cuts it short."""
    def tamper(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if path.endswith("/provision"):
            body = body[:40] + bytes([body[40] ^ 1]) + body[41:] if how == "flip" else body[:-17]
        return path, body

    proxy = Proxy(sim_host.url, on_request=tamper)
    with running(proxy):
        r = deploy_via(published, sim_host, proxy.url, policy_for(sim_host))
    refused(r, VerificationError, "failed authentication")
    assert output_frames(proxy) == 0  # the keep could not open it: nothing ran, nothing sealed came back


@pytest.mark.parametrize("how", ["drop", "replay", "reorder", "truncate"])
def test_tampered_output_frames_are_refused(published, sim_host, policy_for, how) -> None:
    """The host drops, replays or reorders the keep's sealed output frames, or cuts the stream."""
    def tamper(method: str, path: str, status: int, body: bytes) -> bytes:
        if not path.endswith("/provision"):
            return body
        recs = split_records(body)
        assert len(recs) >= 2  # at least one output frame + the exit frame
        recs = recs[:-1] if how == "truncate" else tamper_records(recs, how)  # truncate: no sealed exit status
        return join_records(recs)

    proxy = Proxy(sim_host.url, on_response=tamper)
    with running(proxy):
        r = deploy_via(published, sim_host, proxy.url, policy_for(sim_host))
    assert isinstance(r.error, VerificationError), r.error
    assert r.status is None  # no exit status is reported from a tampered stream
    if how != "truncate":
        assert "where" in r.error.message  # "sealed frame N arrived where M was expected"


# -- the registry lies ------------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["blob", "manifest"])
def test_registry_serving_other_content_for_the_digest_is_refused(published, sim_host, policy_for, what) -> None:
    """The keep pulls through a registry that answers the sealed digests with other content."""
    plain_hex = published.plain_digest.split(":")[1]
    wasm_layer: list[str] = []

    def swap(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        if what == "manifest" and path.endswith(f"/manifests/sha256:{plain_hex}"):
            return f"/v2/probe-enc/manifests/{published.encrypted_digest}", body
        if what == "blob" and wasm_layer and path.endswith(f"/blobs/{wasm_layer[0]}"):
            return path.replace(wasm_layer[0], wasm_layer[1]), body  # the Enarx.toml layer's bytes instead
        return path, body

    def learn(method: str, path: str, status: int, body: bytes) -> bytes:
        if "/manifests/" in path and not wasm_layer and status == 200:
            layers = json.loads(body)["layers"]
            wasm_layer.extend([layers[0]["digest"], layers[1]["digest"]])
        return body

    registry = Proxy(published.registry_url, swap, learn)
    agent = Proxy(sim_host.url)
    with running(registry), running(agent):
        r = deploy_via(published, sim_host, agent.url, policy_for(sim_host), keep_registry=registry.url)
    refused(r, VerificationError, "in the keep")
    assert output_frames(agent) == 1  # only the sealed error frame: the workload never ran


def test_registry_serving_a_same_size_blob_for_the_digest_is_refused(published, sim_host, policy_for) -> None:
    """The keep pulls through a registry that answers the module's digest with bytes of the same size,
    one of them changed: neither the size nor the Content-Length gives it away, only the digest."""
    wasm_layer: list[str] = []
    altered: list[str] = []

    def flip(method: str, path: str, status: int, body: bytes) -> bytes:
        if "/manifests/" in path and not wasm_layer and status == 200:
            wasm_layer.append(json.loads(body)["layers"][0]["digest"])
        if wasm_layer and path.endswith(f"/blobs/{wasm_layer[0]}") and status == 200 and body:
            altered.append(path)
            return body[:-1] + bytes([body[-1] ^ 0x01])
        return body

    registry = Proxy(published.registry_url, on_response=flip)
    agent = Proxy(sim_host.url)
    with running(registry), running(agent):
        r = deploy_via(published, sim_host, agent.url, policy_for(sim_host), keep_registry=registry.url)
    assert altered, "the keep never fetched the module through the altered registry"
    refused(r, VerificationError, "in the keep")
    assert output_frames(agent) == 1  # only the sealed error frame: the workload never ran


# -- the package or the keep is not what the policy asks for -----------------------------------------

def test_package_signed_by_another_key_is_refused_before_any_host(published, sim_host, policy_for) -> None:
    proxy = Proxy(sim_host.url)
    with running(proxy), pytest.raises(VerificationError, match=r"satisfies the policy|signature"):
        deploy_via(published, sim_host, proxy.url, policy_for(sim_host),
                   signer=verify.KeyPolicy(published.other_pub.read_bytes()))
    assert proxy.log == []  # no host was contacted


def test_package_signed_by_another_identity_is_refused(published, sim_host, policy_for) -> None:
    proxy = Proxy(sim_host.url)
    signer = verify.IdentityPolicy(identity="release@example.com", issuer="https://token.actions.githubusercontent.com")
    with running(proxy), pytest.raises(VerificationError):
        deploy_via(published, sim_host, proxy.url, policy_for(sim_host), signer=signer)
    assert proxy.log == []


@pytest.mark.parametrize("override, check", [
    ({"min_svn": 2}, "sim.svn"),
    ({"measurements": ["00" * 48]}, "measurement"),
    ({"keys": ["sha256:" + "00" * 32]}, "sim.key"),
])
def test_policy_mismatch_is_refused_with_full_appraisal(published, sim_host, policy_for, override, check) -> None:
    proxy = Proxy(sim_host.url)
    with running(proxy):
        r = deploy_via(published, sim_host, proxy.url, policy_for(sim_host, **override))
    refused(r, AttestationError, check)
    assert not provisioned(proxy)


def test_debug_evidence_is_refused(published, policy_for, tmp_path) -> None:
    host = start_host(tmp_path / "debug-host", "--sim-debug", pool=1)
    try:
        proxy = Proxy(host.url)
        with running(proxy):
            r = deploy_via(published, host, proxy.url, policy_for(host))
        refused(r, AttestationError, "debug")
        assert not provisioned(proxy)
    finally:
        stop_host(host)


def test_sim_keep_without_insecure_sim_is_refused(published, sim_host, policy_for) -> None:
    proxy = Proxy(sim_host.url)
    with running(proxy):
        r = deploy_via(published, sim_host, proxy.url, policy_for(sim_host), insecure_sim=False)
    refused(r, AttestationError, "--insecure-sim")
    assert not provisioned(proxy)


def test_wrong_agent_token_is_refused(published, sim_host, policy_for) -> None:
    r = deploy_via(published, sim_host, sim_host.url, policy_for(sim_host), host_token="not-the-token")
    assert r.error is not None and "401" in r.error.message
