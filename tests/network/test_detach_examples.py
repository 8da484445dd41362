"""The C and Go HTTP examples as detached services: built once, signed, published, ``deploy --detach``ed to a
real sim agent, then driven by curl and httpx on the published loopback port after the deployer exited."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.hosts import HostAgent
from tests.network.detached import Detached, cli, deploy_detached, range_host, signed_and_published

GREETING = {"c": "hello from c\n", "go": "hello from go\n"}


@pytest.fixture(scope="module")
def example_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostAgent, int]]:
    yield from range_host(tmp_path_factory.mktemp("examples-host"), 2)


@pytest.fixture(scope="module", params=["c", "go"])
def detached_example(request: pytest.FixtureRequest, built_example: Callable[[str], Path], docker_registry: object,
                     example_host: tuple[HostAgent, int],
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Detached]]:
    """The example deployed detached (the deployer has exited); stopped after the module's tests."""
    lang = str(request.param)
    root = tmp_path_factory.mktemp(f"detach-{lang}")
    service = signed_and_published(built_example(f"{lang}-http"), f"net/{lang}-http", root, docker_registry)
    host, _ = example_host
    d = deploy_detached(service, host, root)
    yield lang, d
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_curl_gets_the_greeting_from_the_detached_keep(detached_example: tuple[str, Detached],
                                                       example_host: tuple[HostAgent, int]) -> None:
    lang, d = detached_example
    _, low = example_host
    assert d.endpoints == [{"name": "web", "port": 8080, "address": f"127.0.0.1:{low}"}]
    out = subprocess.run(["curl", "-sS", "-i", "--max-time", "30", d.url + "/"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("HTTP/1.1 200 OK") and out.stdout.endswith(GREETING[lang])


def test_httpx_makes_many_requests_to_the_detached_keep(detached_example: tuple[str, Detached]) -> None:
    lang, d = detached_example
    with httpx.Client(timeout=30) as client:
        bodies = [client.get(f"{d.url}/").text for _ in range(30)]
    assert bodies == [GREETING[lang]] * 30


@pytest.mark.parametrize("detached_example", ["c"], indirect=True)
def test_the_c_server_echoes_through_the_detached_keep(detached_example: tuple[str, Detached]) -> None:
    _, d = detached_example
    assert httpx.get(f"{d.url}/echo/this", timeout=30).text == "GET /echo/this HTTP/1.1"

