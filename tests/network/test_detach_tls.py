"""``prot = "tls"`` in detached sim keeps (issue 13): the example servers, unchanged but for their
Enarx.toml, serve HTTPS with TLS terminated inside the keep, to real clients (curl, openssl s_client,
httpx) through a relay that records what the host sees; certificates from the deployer
(``deploy --tls-ca``) or self-contained (checked with ``attest tls``); and the refusals of the new paths.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from enarx_pkg.tls import ca as ca_mod
from tests.conftest import REPO
from tests.fixtures.examples import copy_example
from tests.fixtures.hosts import HostAgent, start_host, stop_host
from tests.network.conftest import tls_version
from tests.network.detached import Detached, Service, cli, deploy_detached, signed_and_published
from tests.tls.peers import Relay, steward_serving

LANGS = ("rust", "c", "go")
MARKER = "PLAINTEXT-MARKER-5c1e"


@pytest.fixture(scope="module")
def tls_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostAgent]:
    host = start_host(tmp_path_factory.mktemp("tls-host"), pool=1)
    yield host
    stop_host(host)


@pytest.fixture(scope="module")
def https_service(tmp_path_factory: pytest.TempPathFactory, docker_registry: object) -> Callable[[str], Service]:
    """``https_service(lang)``: the ``<lang>-http`` example with ``prot = "tls"``, built, signed, published."""
    from enarx_pkg.build import build

    made: dict[str, Service] = {}

    def get(lang: str) -> Service:
        if lang not in made:
            root = tmp_path_factory.mktemp(f"https-{lang}")
            project = copy_example(f"{lang}-http", root / f"{lang}-https")
            toml = project / "Enarx.toml"
            toml.write_text(toml.read_text().replace('prot = "tcp"', 'prot = "tls"'))
            made[lang] = signed_and_published(build(project).layout, f"net/{lang}-https", root, docker_registry)
        return made[lang]

    return get


@pytest.fixture(scope="module")
def deploy_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("deploy-ca")
    ca_mod.init_ca(d / "ca.crt", d / "ca.key", name="test deploy CA")
    return d / "ca.crt", d / "ca.key"


def _port(d: Detached) -> int:
    return int(str(d.endpoints[0]["address"]).rsplit(":", 1)[1])


def _curl(port: int, cafile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "60", "--cacert", str(cafile), "-H", f"X-Marker: {MARKER}",
                           "--resolve", f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/"],
                          capture_output=True, text=True, timeout=90)


def _s_client(port: int, cafile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                           "-verify_hostname", "localhost", "-verify_return_error", "-CAfile", str(cafile),
                           "-quiet", "-ign_eof"],
                          input=f"GET / HTTP/1.1\r\nHost: localhost\r\nX-Marker: {MARKER}\r\nConnection: close\r\n\r\n",
                          capture_output=True, text=True, timeout=90)


def _stop(d: Detached, host: HostAgent) -> None:
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


@pytest.mark.parametrize("lang", LANGS)
def test_https_from_a_detached_keep_certified_by_the_deployer(
        lang: str, https_service: Callable[[str], Service], tls_host: HostAgent, deploy_ca: tuple[Path, Path],
        tmp_path: Path) -> None:
    """curl --cacert, openssl s_client -verify_return_error and httpx get the page through the host's
    relay, which sees no plaintext byte; the certificate records what the deployer appraised."""
    cert, key = deploy_ca
    service = https_service(lang)
    d = deploy_detached(service, tls_host, tmp_path, "--tls-ca", str(cert), "--tls-ca-key", str(key),
                        "--tls-name", "localhost")
    relay: Relay | None = None
    try:
        body = f"hello from {lang}"
        row = _report(d)["hosts"][0]
        assert set(row["tls"]) == {"sha256", "not_after"}
        relay = Relay(_port(d))
        out = _curl(relay.port, cert)
        assert out.returncode == 0 and out.stdout.startswith(body), out.stderr
        out = _s_client(relay.port, cert)
        assert out.returncode == 0 and body in out.stdout, out.stderr
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=60) as http:
            for _ in range(2):
                r = http.get(f"https://localhost:{relay.port}/", headers={"X-Marker": MARKER},
                             extensions={"sni_hostname": "localhost"})
                assert r.status_code == 200 and r.text.startswith(body)
        assert len(relay.captured) > 2000
        assert MARKER.encode() not in relay.captured and body.encode() not in relay.captured
        # the issuer's record: this package, appraised under exactly this policy (attest tls --cacert)
        digest = _digest(service, d)
        check = subprocess.run([*_cli(), "attest", "tls", f"localhost:{_port(d)}", "--cacert", str(cert),
                                "--policy", str(tmp_path / "policy.toml"), "--package", digest],
                               cwd=REPO, capture_output=True, text=True, timeout=120)
        assert check.returncode == 0 and "accepted" in check.stdout, check.stderr
        assert key.read_text().strip().splitlines()[1] not in d.out  # the CA key is never printed
    finally:
        _stop(d, tls_host)
        if relay is not None:
            relay.sock.close()


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "enarx_pkg"]


def _report(d: Detached) -> dict[str, Any]:
    """The deploy's --json report (stdout comes first in ``out``)."""
    obj, _ = json.JSONDecoder().raw_decode(d.out)
    return dict(obj)


def _digest(service: Service, d: Detached) -> str:
    return str(_report(d)["package"]["digest"])


def test_self_contained_certificate_of_a_detached_keep_passes_attest_tls(
        https_service: Callable[[str], Service], tls_host: HostAgent, tmp_path: Path) -> None:
    """Without --tls-ca the keep certifies its own key with its evidence; `attest tls` accepts it under
    the deployer's policy and package digest, and refuses another package digest or name (77) and a
    policy its measurement does not pass (78)."""
    service = https_service("rust")
    d = deploy_detached(service, tls_host, tmp_path)
    try:
        assert "tls" not in _report(d)["hosts"][0]
        assert tls_version(_port(d), tls12_only=True) is None  # TLS 1.3 only without deploy --tls12
        digest, policy = _digest(service, d), str(tmp_path / "policy.toml")
        ok = subprocess.run([*_cli(), "attest", "tls", f"127.0.0.1:{_port(d)}", "--policy", policy, "--package",
                             digest], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0 and "accepted" in ok.stdout, ok.stderr
        assert f"package: {digest}" in ok.stdout
        other = "sha256:" + "0" * 64
        bad = subprocess.run([*_cli(), "attest", "tls", f"127.0.0.1:{_port(d)}", "--policy", policy, "--package",
                              other], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 77 and "tls.package" in bad.stderr
        name = subprocess.run([*_cli(), "attest", "tls", f"127.0.0.1:{_port(d)}", "--policy", policy, "--name",
                               "bank.example"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert name.returncode == 77 and "tls.name" in name.stderr
        other_policy = tmp_path / "other-policy.toml"
        other_policy.write_text(tls_host.policy(measurements=["00" * 48]))
        pol = subprocess.run([*_cli(), "attest", "tls", f"127.0.0.1:{_port(d)}", "--policy", str(other_policy)],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
        assert pol.returncode == 78 and "sim.measurements" in pol.stdout + pol.stderr
    finally:
        _stop(d, tls_host)


def test_deploy_tls12_lets_tls_1_2_clients_into_a_detached_keep(
        https_service: Callable[[str], Service], tls_host: HostAgent, deploy_ca: tuple[Path, Path],
        tmp_path: Path) -> None:
    """``deploy --tls12`` travels sealed to the keep: its listener then accepts a TLS 1.2 client (which a
    keep deployed without it refuses, above), still serving the deployer's certificate."""
    cert, key = deploy_ca
    d = deploy_detached(https_service("rust"), tls_host, tmp_path, "--tls-ca", str(cert), "--tls-ca-key", str(key),
                        "--tls-name", "localhost", "--tls12")
    try:
        assert tls_version(_port(d), tls12_only=True) == "TLSv1.2"
        assert tls_version(_port(d), tls12_only=False) == "TLSv1.3"
        recipe = json.loads(d.state.read_text())["recipe"]
        assert recipe["tls12"] == "1"  # keep restart deploys it alike
    finally:
        _stop(d, tls_host)


def test_tls12_for_a_package_without_a_tls_file_is_refused_before_any_host(
        rust_service: Service, tls_host: HostAgent, tmp_path: Path) -> None:
    r = _deploy(rust_service, tls_host, tmp_path, "--detach", "--tls12")
    assert r.returncode == 2 and "--tls12: the package declares no prot = \"tls\" socket file" in r.stderr
    _no_keep_left(tls_host, tmp_path)


def _deploy(service: Service, host: HostAgent, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    policy = tmp / "policy.toml"
    policy.write_text(host.policy())
    env = os.environ | {"XDG_STATE_HOME": str(tmp / "state")}
    return cli("deploy", service.ref, "--host", host.url, "--host-token-file", str(host.token_file), "--policy",
               str(policy), "--key", str(service.signer_pub), "--insecure-sim", *extra, env=env)


def _no_keep_left(host: HostAgent, tmp: Path) -> None:
    r = httpx.get(host.url + "/v1/platform", headers={"Authorization": f"Bearer {host.token}"}, timeout=30)
    assert r.json()["keeps"]["active"] == 0 and not (tmp / "state").exists()


def test_a_ca_key_readable_by_others_is_refused_before_any_host_is_contacted(
        https_service: Callable[[str], Service], tls_host: HostAgent, deploy_ca: tuple[Path, Path],
        tmp_path: Path) -> None:
    cert, key = deploy_ca
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    loose.chmod(0o644)
    r = _deploy(https_service("rust"), tls_host, tmp_path, "--detach", "--tls-ca", str(cert), "--tls-ca-key",
                str(loose))
    assert r.returncode == 65, r.stderr
    assert "CA key is readable by group or others" in r.stderr and f"chmod 600 {loose}" in r.stderr
    secret_line = key.read_text().strip().splitlines()[1]
    assert secret_line not in r.stdout + r.stderr and "Traceback" not in r.stderr
    _no_keep_left(tls_host, tmp_path)


def test_a_ca_key_of_another_ca_is_refused(
        https_service: Callable[[str], Service], tls_host: HostAgent, deploy_ca: tuple[Path, Path],
        tmp_path: Path) -> None:
    cert, _ = deploy_ca
    other = ca_mod.init_ca(tmp_path / "other.crt", tmp_path / "other.key")
    assert other is not None
    r = _deploy(https_service("rust"), tls_host, tmp_path, "--detach", "--tls-ca", str(cert), "--tls-ca-key",
                str(tmp_path / "other.key"))
    assert r.returncode == 65 and f"{tmp_path / 'other.key'} is not the key of {cert}" in r.stderr, r.stderr
    _no_keep_left(tls_host, tmp_path)


def test_tls_ca_without_detach_is_a_usage_error(
        https_service: Callable[[str], Service], tls_host: HostAgent, deploy_ca: tuple[Path, Path],
        tmp_path: Path) -> None:
    cert, key = deploy_ca
    r = _deploy(https_service("rust"), tls_host, tmp_path, "--tls-ca", str(cert), "--tls-ca-key", str(key))
    assert r.returncode == 2 and "--tls-ca goes with --detach" in r.stderr, r.stderr
    _no_keep_left(tls_host, tmp_path)


def test_tls_ca_for_a_package_without_a_tls_file_is_refused_and_its_keep_destroyed(
        tls_host: HostAgent, deploy_ca: tuple[Path, Path], tmp_path: Path, built_example: Callable[[str], Path],
        docker_registry: object) -> None:
    """The plain-TCP Rust example has nothing to certify: refused after attestation, before anything is sealed."""
    cert, key = deploy_ca
    service = signed_and_published(built_example("rust-http"), "net/rust-http-plain", tmp_path, docker_registry)
    r = _deploy(service, tls_host, tmp_path, "--detach", "--tls-ca", str(cert), "--tls-ca-key", str(key))
    assert r.returncode == 2 and 'declares no prot = "tls" listen file' in r.stderr, r.stderr
    _no_keep_left(tls_host, tmp_path)


def test_a_certificate_not_sealed_by_the_deployer_stops_the_keep(
        https_service: Callable[[str], Service], tls_host: HostAgent, tmp_path: Path) -> None:
    """The host (which holds the keep's pipe) injects a 'certificate' record: it does not open under the
    session key, so the keep refuses it and stops, its sealed last word saying why."""
    from enarx_pkg._internal import seal

    d = deploy_detached(https_service("rust"), tls_host, tmp_path)
    state = json.loads(d.state.read_text())
    forged = bytes([seal.TLS_CERT]) + (0).to_bytes(8, "big") + b"-----BEGIN CERTIFICATE-----" + bytes(16)
    r = httpx.post(f"{tls_host.url}/v1/keeps/{d.keep_id}/stdin", content=seal.record(seal.R_INPUT, forged),
                   headers={"Authorization": f"Bearer {state['capability']}"}, timeout=30)
    assert r.status_code in (204, 410), r.text
    logs = _logs_until_exit(d, tls_host)
    assert logs.returncode == 134, logs.stderr  # the keep failed (WorkloadError): its sealed error says why
    assert "the keep failed" in logs.stderr and "failed authentication" in logs.stderr
    assert _refused_within(_port(d), 60), "the keep still serves after refusing the forged certificate"
    _stop(d, tls_host)


def _refused_within(port: int, seconds: float) -> bool:
    """True once nothing listens on ``port`` (the keep process has exited), waiting at most ``seconds``."""
    import socket
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.2)
    return False


def _logs_until_exit(d: Detached, host: HostAgent) -> subprocess.CompletedProcess[str]:
    import time

    deadline = time.monotonic() + 60
    while True:
        logs = cli("keep", "logs", d.keep_id, "--host", host.url, env=d.env)
        if logs.returncode != 0 or time.monotonic() > deadline:
            return logs
        time.sleep(0.3)


@pytest.fixture(scope="module")
def steward_for(tls_host: HostAgent, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`enarx-pkg steward serve` trusting ``tls_host``'s keeps, issuing 1-minute certificates (URL, CA cert)."""
    d = tmp_path_factory.mktemp("steward")
    ca_mod.init_ca(d / "ca.crt", d / "ca.key", name="test steward CA")
    (d / "policy.toml").write_text(tls_host.policy())
    with steward_serving(d, d / "policy.toml", "--name", "localhost", "--name", "127.0.0.1", "--lifetime", "1m") as url:
        yield url, d / "ca.crt"


def _served_serial(port: int, cafile: Path) -> int:
    import socket

    from cryptography import x509

    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_a_detached_keep_enrols_with_its_steward_and_renews_before_expiry(
        steward_for: tuple[str, Path], tls_host: HostAgent, tmp_path: Path, docker_registry: object) -> None:
    """`steward = "URL"` in Enarx.toml: the keep gets its certificate from that Steward, and renews it
    (same key, new certificate) at 2/3 of its 1-minute lifetime, with no deployer around."""
    import time

    from enarx_pkg.build import build

    url, steward_ca = steward_for
    project = copy_example("rust-http", tmp_path / "rust-steward")
    toml = project / "Enarx.toml"
    toml.write_text(f'steward = "{url}"\n' + toml.read_text().replace('prot = "tcp"', 'prot = "tls"'))
    service = signed_and_published(build(project).layout, "net/rust-steward", tmp_path, docker_registry)
    d = deploy_detached(service, tls_host, tmp_path)
    try:
        out = _curl(_port(d), steward_ca)
        assert out.returncode == 0 and out.stdout.startswith("hello from rust"), out.stderr
        first = _served_serial(_port(d), steward_ca)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            logs = cli("keep", "logs", d.keep_id, "--host", tls_host.url, env=d.env)
            if "TLS certificate renewed" in logs.stderr:
                break
            time.sleep(1)
        assert "enarx-pkg keep: TLS certificate renewed, valid until" in logs.stderr, logs.stderr
        assert _served_serial(_port(d), steward_ca) != first
        assert _curl(_port(d), steward_ca).stdout.startswith("hello from rust")
    finally:
        _stop(d, tls_host)


def test_keep_restart_certifies_the_new_keep_with_the_same_deploy_ca(
        https_service: Callable[[str], Service], tls_host: HostAgent, deploy_ca: tuple[Path, Path],
        tmp_path: Path) -> None:
    """`keep restart` deploys again as the first deploy did, --tls-ca included (the CA key read again,
    never stored): the new keep answers `curl --cacert` with a certificate of its own."""
    cert, key = deploy_ca
    d = deploy_detached(https_service("rust"), tls_host, tmp_path, "--tls-ca", str(cert), "--tls-ca-key", str(key))
    recipe = json.loads(d.state.read_text())["recipe"]
    assert recipe["tls_ca"] == str(cert.resolve()) and recipe["tls_ca_key"] == str(key.resolve())
    assert key.read_text().strip().splitlines()[1] not in d.state.read_text()  # a path, never the key
    r = cli("keep", "restart", d.keep_id, "--host", tls_host.url, "--insecure-sim", "--json", env=d.env)
    assert r.returncode == 0, r.stderr + r.stdout
    row = json.loads(r.stdout)
    try:
        assert row["keep_id"] != d.keep_id and set(row["tls"]) == {"sha256", "not_after"}
        assert row["tls"]["sha256"] != _report(d)["hosts"][0]["tls"]["sha256"]  # a new key, a new certificate
        port = int(row["endpoints"][0]["address"].rsplit(":", 1)[1])
        out = _curl(port, cert)
        assert out.returncode == 0 and out.stdout.startswith("hello from rust"), out.stderr
    finally:
        cli("keep", "stop", row["keep_id"], "--host", tls_host.url, env=d.env)
