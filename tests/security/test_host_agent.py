"""The host agent's own HTTP input: authentication on every route, bounded bodies, limits under load,
and schemathesis (fixed seed) finding no server error in the OpenAPI document's operations."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import REPO
from tests.fixtures.hosts import HostAgent, start_host, stop_host
from tests.security.hostile import sent_before_answer

pytestmark = pytest.mark.timeout(180)
ROUTES = [("GET", "/v1/platform"), ("POST", "/v1/keeps"), ("GET", "/nope")]
KEEP_ROUTES = [("POST", "/v1/keeps/{keep}/provision"), ("POST", "/v1/keeps/{keep}/stdin"),
               ("DELETE", "/v1/keeps/{keep}")]
AUTHS = [None, "Bearer wrong", "Basic {token}", "Bearer {token}x", "bearer"]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostAgent]:
    """A small agent of our own: two keeps at most, unprovisioned keeps reaped after 3 s."""
    host = start_host(tmp_path_factory.mktemp("sec-host"), "--max-keeps", "2", "--provision-deadline", "3", pool=1)
    yield host
    stop_host(host)


def _nonce() -> dict[str, str]:
    return {"nonce": base64.b64encode(os.urandom(32)).decode()}


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("auth", AUTHS)
def test_every_route_needs_the_token(agent: HostAgent, method: str, path: str, auth: str | None) -> None:
    headers = {"Authorization": auth.format(token=agent.token)} if auth else {}
    r = httpx.request(method, agent.url + path, headers=headers, json=_nonce())
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert agent.token not in r.text


@pytest.mark.parametrize(("method", "path"), KEEP_ROUTES)
@pytest.mark.parametrize("auth", [*AUTHS, "Bearer {token}"])
def test_every_keep_route_needs_that_keeps_capability(agent: HostAgent, method: str, path: str,
                                                      auth: str | None) -> None:
    """The shared token (last case) is no more use on a keep's routes than a wrong one: 404, like no keep."""
    keep = httpx.post(agent.url + "/v1/keeps", headers={"Authorization": f"Bearer {agent.token}"}, json=_nonce(),
                      timeout=120).json()
    headers = {"Authorization": auth.format(token=agent.token)} if auth else {}
    try:
        r = httpx.request(method, agent.url + path.format(keep=keep["keep_id"]), headers=headers, content=b"x" * 64)
        assert r.status_code == 404 and agent.token not in r.text and keep["capability"] not in r.text
    finally:
        httpx.delete(f"{agent.url}/v1/keeps/{keep['keep_id']}",
                     headers={"Authorization": f"Bearer {keep['capability']}"})


def test_token_file_is_private(agent: HostAgent) -> None:
    assert agent.token_file.stat().st_mode & 0o777 == 0o600


def test_create_keep_body_is_bounded(agent: HostAgent) -> None:
    sent, answer = sent_before_answer(agent.url, "/v1/keeps", {"Authorization": f"Bearer {agent.token}",
                                                               "Content-Type": "application/json"})
    assert answer.startswith(b"HTTP/1.1 400") and sent < 8 << 20


def test_max_keeps_holds_under_concurrent_creates(agent: HostAgent) -> None:
    headers = {"Authorization": f"Bearer {agent.token}"}

    def create(_: int) -> int:
        return httpx.post(agent.url + "/v1/keeps", headers=headers, json=_nonce(), timeout=120).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(8)))
    assert statuses.count(201) <= 2 and statuses.count(503) >= 6, statuses
    time.sleep(4.5)  # the reaper removes the unprovisioned keeps before the next test


def test_concurrent_provisions_of_one_keep_admit_only_the_first(agent: HostAgent) -> None:
    """Provisioning is one-shot: while one request's envelope is still arriving, others get 409.

    Before, the check came before the body was awaited and the flag was set after it, so two requests
    for the same keep could both pass and both hand the keep an envelope.
    """
    import socket

    keep = httpx.post(agent.url + "/v1/keeps", headers={"Authorization": f"Bearer {agent.token}"}, json=_nonce(),
                      timeout=120).json()
    headers = {"Authorization": f"Bearer {keep['capability']}"}  # the keep's own capability
    path, envelope = f"/v1/keeps/{keep['keep_id']}/provision", os.urandom(4096)
    host, port = agent.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as first:
        first.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {keep['capability']}\r\n"
                      f"Content-Length: {len(envelope)}\r\n\r\n".encode() + envelope[:100])
        time.sleep(0.3)  # the first request is now inside the agent, waiting for the rest of its envelope

        def provision(_: int) -> int:
            return httpx.post(agent.url + path, headers=headers, content=envelope, timeout=60).status_code

        with ThreadPoolExecutor(4) as pool:
            others = list(pool.map(provision, range(4)))
        first.sendall(envelope[100:])
        answer = first.recv(4096)
    assert others == [409] * 4, others
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]


def test_schemathesis_finds_no_server_errors(agent: HostAgent) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, seed, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_path(REPO / "schemas" / "host-agent.openapi.json")
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()
        creates = op.method.upper() == "POST" and op.path == "/v1/keeps"  # each valid one starts a keep

        @seed(20261126)
        @settings(max_examples=4 if creates else 25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):  # type: ignore[no-untyped-def]
            response = case.call(base_url=agent.url, headers={"Authorization": f"Bearer {agent.token}"})
            if response.status_code == 503:  # documented: the host runs its maximum of keeps
                return
            try:
                case.validate_response(response, checks=(not_a_server_error,))
            except Exception as exc:
                failures.append((case.method, case.path, case.path_parameters, str(exc)[:300]))

        check()
    assert failures == []


