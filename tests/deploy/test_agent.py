"""The host agent's own duties: authentication, limits, reaping. Real agent, real keep processes."""

from __future__ import annotations

import base64
import os
import time
import tomllib

import httpx
import pytest

from enarx_pkg import trust
from enarx_pkg._internal import seal
from enarx_pkg.attestation.policy import Policy
from tests.fixtures.hosts import HostAgent, start_host, stop_host


def client(host: HostAgent) -> httpx.Client:
    return httpx.Client(base_url=host.url, headers={"Authorization": f"Bearer {host.token}"}, timeout=30)


def create(c: httpx.Client) -> httpx.Response:
    return c.post("/v1/keeps", json={"nonce": base64.b64encode(os.urandom(32)).decode()})


def cap(keep: dict[str, str]) -> dict[str, str]:
    """The keep's own capability, which alone provisions, feeds and deletes it."""
    return {"Authorization": f"Bearer {keep['capability']}"}


def active(c: httpx.Client) -> int:
    return int(c.get("/v1/platform").json()["keeps"]["active"])


def wait_until(pred, seconds: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def strict_host(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    host = start_host(tmp_path_factory.mktemp("strict-host"), "--max-keeps", "1", "--provision-deadline", "1",
                      pool=1)
    yield host
    stop_host(host)


def test_platform_reports_pins(sim_host: HostAgent) -> None:
    p = client(sim_host).get("/v1/platform").json()
    assert p["backend"] == "sim" and p["sim_key_fingerprint"].startswith("sha256:") and len(p["measurement"]) == 96


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", "Basic Zm9vOmJhcg=="])
def test_platform_and_create_need_the_token(sim_host: HostAgent, header: str | None) -> None:
    h = {"Authorization": header} if header else {}
    for method, path in [("GET", "/v1/platform"), ("POST", "/v1/keeps")]:
        assert httpx.request(method, sim_host.url + path, headers=h).status_code == 401


def test_a_keep_answers_only_to_its_own_capability(sim_host: HostAgent) -> None:
    """Tenants: the shared token creates keeps, nothing more. Another keep's capability, the shared
    token, or no capability at all get the same 404 on provision, stdin and delete; the keep lives on."""
    c = client(sim_host)
    victim, other = create(c).json(), create(c).json()
    assert len(victim["capability"]) >= 43 and victim["capability"] != other["capability"]
    base = f"{sim_host.url}/v1/keeps/{victim['keep_id']}"
    near = victim["capability"][:-1] + ("B" if victim["capability"].endswith("A") else "A")
    for bearer in (sim_host.token, other["capability"], near, "x"):
        h = {"Authorization": f"Bearer {bearer}"}
        assert httpx.post(base + "/provision", content=b"x" * 64, headers=h).status_code == 404
        assert httpx.post(base + "/stdin", content=seal.record(seal.R_INPUT, b"x"), headers=h).status_code == 404
        assert httpx.delete(base, headers=h).status_code == 404
    assert httpx.delete(base, headers=cap(victim)).status_code == 204  # it was alive all along
    httpx.delete(f"{sim_host.url}/v1/keeps/{other['keep_id']}", headers=cap(other))


def test_bad_nonce_is_refused(sim_host: HostAgent) -> None:
    c = client(sim_host)
    assert c.post("/v1/keeps", json={"nonce": base64.b64encode(b"short").decode()}).status_code == 400
    assert c.post("/v1/keeps", content=b"not json").status_code == 400


def test_oversized_envelope_is_refused_and_keep_is_fresh_per_request(sim_host: HostAgent) -> None:
    c = client(sim_host)
    a, b = create(c).json(), create(c).json()
    assert a["keep_public_key"] != b["keep_public_key"]  # a fresh key pair per keep, not per pool slot
    r = c.post(f"/v1/keeps/{a['keep_id']}/provision", content=b"x" * (seal.MAX_ENVELOPE_BYTES + 2048),
               headers=cap(a))
    assert r.status_code == 413
    for k in (a, b):
        c.delete(f"/v1/keeps/{k['keep_id']}", headers=cap(k))


def test_concurrent_keep_limit_and_reaping_unprovisioned_keeps(strict_host: HostAgent) -> None:
    c = client(strict_host)
    assert create(c).status_code == 201
    assert create(c).status_code == 503  # the limit
    assert wait_until(lambda: active(c) == 0)  # reaped after the provisioning deadline
    assert create(c).status_code == 201


def test_keep_dies_when_its_deployer_disconnects(sim_host: HostAgent) -> None:
    c = client(sim_host)
    nonce = os.urandom(32)
    k = c.post("/v1/keeps", json={"nonce": base64.b64encode(nonce).decode()}).json()
    policy = Policy.from_mapping(tomllib.loads(sim_host.policy()), "host policy")
    keep = trust.attest(trust.Offer.parse(k, sim_host.url), nonce, policy, insecure_sim=True)
    env = seal.Envelope("http://127.0.0.1:9", "none", "sha256:" + "0" * 64, os.urandom(32), stdin=True)
    sealed = seal.seal_envelope(env, keep)
    with c.stream("POST", f"/v1/keeps/{k['keep_id']}/provision", content=sealed, headers=cap(k)) as r:
        assert r.status_code == 200  # the keep now waits for sealed stdin that never comes
        assert active(c) >= 1
    c.close()  # the deployer goes away
    c2 = client(sim_host)
    assert wait_until(lambda: c2.delete(f"/v1/keeps/{k['keep_id']}", headers=cap(k)).status_code == 404)


def test_openapi_document_matches_the_agent(sim_host: HostAgent) -> None:
    """The OpenAPI document lists exactly the routes the app serves, and real answers fit its schemas."""
    import json

    import jsonschema

    from enarx_pkg.host.app import HostSettings, create_app
    from enarx_pkg.host.pool import KeepCommand
    from tests.conftest import REPO

    doc = json.loads((REPO / "schemas" / "host-agent.openapi.json").read_text())
    app = create_app(HostSettings(KeepCommand("sim", "/nonexistent"), "t" * 16))
    served = {(m.lower(), r.path.replace(":str", "")) for r in app.routes for m in r.methods - {"HEAD"}}  # type: ignore[attr-defined]
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert served == documented
    schemas = doc["components"]["schemas"]
    c = client(sim_host)
    jsonschema.validate(c.get("/v1/platform").json(), schemas["Platform"])
    k = create(c).json()
    jsonschema.validate(k, schemas["Keep"])
    c.delete(f"/v1/keeps/{k['keep_id']}", headers=cap(k))
