"""``deploy --detach --publish HOSTPORT:LISTEN``: the deployer chooses the host port of a listen file, inside
the agent's publish range; a port outside the range, in use, or a mapping of no listen file fails the deploy
with a clear error (never a hang) and leaves nothing running and no state."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.hosts import HostAgent
from tests.network.detached import Service, active, cli, deploy_detached, range_host


@pytest.fixture(scope="module")
def publish_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostAgent, int]]:
    yield from range_host(tmp_path_factory.mktemp("publish-host"), 3)


def failed_deploy(service: Service, host: HostAgent, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    policy = tmp / "policy.toml"
    policy.write_text(host.policy())
    env = os.environ | {"XDG_STATE_HOME": str(tmp / "state")}
    r = cli("deploy", service.ref, "--host", host.url, "--host-token-file", str(host.token_file), "--policy",
            str(policy), "--key", str(service.signer_pub), "--insecure-sim", "--detach", *extra, env=env, timeout=240)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert not (tmp / "state").exists() or not any((tmp / "state").rglob("*.json"))  # nothing to manage
    return r


def test_the_mapping_is_honoured_by_name_and_by_port(rust_service: Service, publish_host: tuple[HostAgent, int],
                                                     tmp_path: Path) -> None:
    host, low = publish_host
    for i, listen in enumerate(("web", "8080")):
        port = low + 2 - i  # not the range's first free port, which the keep would pick by itself
        (tmp_path / listen).mkdir()
        d = deploy_detached(rust_service, host, tmp_path / listen, "--publish", f"{port}:{listen}")
        try:
            assert d.endpoints == [{"name": "web", "port": 8080, "address": f"127.0.0.1:{port}"}]
            assert httpx.get(d.url, timeout=30).text.endswith("hello from rust\n")
        finally:
            cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_a_host_port_outside_the_publish_range_is_refused(rust_service: Service, publish_host: tuple[HostAgent, int],
                                                          tmp_path: Path) -> None:
    host, low = publish_host
    r = failed_deploy(rust_service, host, tmp_path, "--publish", f"{low + 3}:web")
    assert r.returncode == 69, r.stderr
    assert f"host port {low + 3} is outside this host's publish range {low}-{low + 2}" in r.stderr
    assert active(host) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", low + 3), timeout=5)


def test_a_mapped_port_in_use_fails_the_deploy_not_a_hang(rust_service: Service, publish_host: tuple[HostAgent, int],
                                                          tmp_path: Path) -> None:
    host, low = publish_host
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # an earlier test's TIME_WAIT is no owner
        squatter.bind(("127.0.0.1", low + 1))
        squatter.listen(1)
        r = failed_deploy(rust_service, host, tmp_path, "--publish", f"{low + 1}:web")
    assert r.returncode == 69, r.stderr
    assert f"listen file 'web': 127.0.0.1:{low + 1} is already in use" in r.stderr
    assert active(host) == 0
    with pytest.raises(ConnectionRefusedError):  # the keep did not fall back to another port of the range
        socket.create_connection(("127.0.0.1", low), timeout=5)


def test_a_mapping_of_no_listen_file_is_refused_before_any_host(
        rust_service: Service, publish_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, low = publish_host
    r = failed_deploy(rust_service, host, tmp_path, "--publish", f"{low}:admin")
    assert r.returncode == 65, r.stderr
    assert f"the port mapping {low}:admin is no listen file of this workload (declared: web (8080))" in r.stderr
    assert "creating keep" not in r.stderr and active(host) == 0


def test_a_malformed_or_hostless_mapping_is_a_usage_error(rust_service: Service, publish_host: tuple[HostAgent, int],
                                                          tmp_path: Path) -> None:
    host, _ = publish_host
    r = failed_deploy(rust_service, host, tmp_path, "--publish", "web:8080")
    assert r.returncode == 2 and "expected HOSTPORT:LISTEN" in r.stderr


def test_an_agent_without_a_publish_range_maps_no_port(rust_service: Service, sim_host: HostAgent,
                                                       tmp_path: Path) -> None:
    """Without ``--publish-range`` the agent chooses every port itself: a chosen one is refused, not bound."""
    before = active(sim_host)  # a shared agent: other tests' keeps may be there
    r = failed_deploy(rust_service, sim_host, tmp_path, "--publish", "20080:web")
    assert r.returncode == 69, r.stderr
    assert "this host has no publish range (host serve --publish-range): it maps no chosen ports" in r.stderr
    assert active(sim_host) <= before
