"""Services in keeps: ``deploy --detach`` to a real sim host agent, then ``keep status|logs|stop`` from
other processes, real clients on the published loopback ports, and the attacks of issue 12."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.fixtures.hosts import HostAgent, start_host, stop_host
from tests.network.detached import (
    Service,
    active,
    cli,
    deploy_detached,
    free_range,
    keep_pids,
    range_host,
    signed_and_published,
)

PROVISION_DEADLINE_S = 10  # the range host's: a created keep waits this long for its envelope, a detached one for
# its deployer's confirmation


@pytest.fixture(scope="module")
def detach_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostAgent, int]]:
    """A sim agent whose keeps publish on a 3-port range (the first port free, the others too)."""
    yield from range_host(tmp_path_factory.mktemp("detach-host"), 3, "--provision-deadline", str(PROVISION_DEADLINE_S))


def test_rust_server_answers_through_a_detached_keep_after_the_deployer_exited(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, low = detach_host
    d = deploy_detached(rust_service, host, tmp_path)
    # the deployer process has exited; the keep serves on the first port of the agent's range
    assert d.endpoints == [{"name": "web", "port": 8080, "address": f"127.0.0.1:{low}"}]
    for _ in range(3):
        r = httpx.get(d.url, timeout=30)
        assert r.status_code == 200 and r.text.endswith("hello from rust\n")
    curl = subprocess.run(["curl", "-sS", "--max-time", "30", d.url], capture_output=True, text=True, timeout=60)
    assert curl.stdout.endswith("hello from rust\n"), curl.stderr
    # the state file holds the keep's secrets: 0600, and none of them was printed
    record = json.loads(d.state.read_text())
    assert d.state.stat().st_mode & 0o777 == 0o600
    assert record["capability"] not in d.out and record["session_key"] not in d.out
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_keep_status_logs_and_stop_from_a_second_process(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, _ = detach_host
    d = deploy_detached(rust_service, host, tmp_path)
    status = cli("keep", "status", d.keep_id, "--host", host.url, "--json", env=d.env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "running"
    listed = cli("keep", "list", "--host", host.url, env=d.env)
    assert d.keep_id in listed.stdout and "running" in listed.stdout
    logs = cli("keep", "logs", d.keep_id, "--host", host.url, env=d.env)
    assert logs.returncode == 0, logs.stderr  # running: nothing written yet, no exit status
    stop = cli("keep", "stop", d.keep_id, "--host", host.url, "--json", env=d.env)
    assert stop.returncode == 0, stop.stderr
    assert json.loads(stop.stdout) == {"keep_id": d.keep_id, "host": host.url, "stopped": True}
    assert not d.state.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(d.url, timeout=10)
    again = cli("keep", "status", d.keep_id, "--host", host.url, env=d.env)
    assert again.returncode != 0 and "no state for keep" in again.stderr


def test_keep_commands_without_host_use_the_host_the_state_file_records(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    """`keep logs ID` like `docker logs ID`: the state file knows the host; a --host that disagrees is refused."""
    host, _ = detach_host
    d = deploy_detached(rust_service, host, tmp_path)
    listed = cli("keep", "list", env=d.env)
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(d.keep_id)]
    assert row.split()[1:3] == ["running", host.url]
    rows = json.loads(cli("keep", "list", "--json", env=d.env).stdout)
    assert {"keep_id": d.keep_id, "host": host.url} == {k: v for k, v in rows[0].items() if k in ("keep_id", "host")}
    status = cli("keep", "status", d.keep_id, env=d.env)
    assert status.returncode == 0 and f"keep {d.keep_id}: running" in status.stdout, status.stderr
    assert cli("keep", "logs", d.keep_id, env=d.env).returncode == 0
    wrong = cli("keep", "stop", d.keep_id, "--host", "http://127.0.0.1:9", env=d.env)
    assert wrong.returncode == 2 and f"keep {d.keep_id} runs on {host.url}, not http://127.0.0.1:9" in wrong.stderr
    stop = cli("keep", "stop", d.keep_id, env=d.env)
    assert stop.returncode == 0 and f"keep {d.keep_id} stopped" in stop.stdout, stop.stderr
    assert not d.state.exists()


def test_undeclared_ports_of_the_range_are_never_bound(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    """The workload declares one listen port: the keep binds exactly one port; the rest refuse anyone."""
    host, low = detach_host
    d = deploy_detached(rust_service, host, tmp_path)
    assert len(d.endpoints) == 1
    bound = int(str(d.endpoints[0]["address"]).rsplit(":", 1)[1])
    for port in {low, low + 1, low + 2} - {bound}:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    with pytest.raises(ConnectionRefusedError):  # nor the declared port itself, nor another address
        socket.create_connection(("127.0.0.2", bound), timeout=5)
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_keep_logs_by_another_token_holder_is_refused(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, _ = detach_host
    d = deploy_detached(rust_service, host, tmp_path)
    secret = json.loads(d.state.read_text())
    # the agent's shared token is not the keep's capability: same 404 as an unknown keep
    for path in (f"/v1/keeps/{d.keep_id}/logs", f"/v1/keeps/{d.keep_id}"):
        r = httpx.get(host.url + path, headers={"Authorization": f"Bearer {host.token}"}, timeout=30)
        assert r.status_code == 404 and r.json() == {"error": "no keep with this id and capability"}
    # another tenant's state file for this keep id, with its own (wrong) capability and key
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(secret | {"capability": "x" * 43, "session_key": "A" * 43 + "="}))
    forged.chmod(0o600)  # its owner's own file (keep commands refuse any other)
    r = cli("keep", "logs", "--state", str(forged), "--host", host.url, env=d.env)
    assert r.returncode == 69, r.stderr  # TRANSPORT: the agent refused
    assert "no keep with this id and capability" in r.stderr
    assert secret["capability"] not in r.stderr + r.stdout and "Traceback" not in r.stderr
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_stopping_or_killing_the_agent_leaves_no_orphan_keep(
        rust_service: Service, tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        host = start_host(tmp_path / f"agent-{sig.name}", pool=1)
        try:
            (tmp_path / sig.name).mkdir()
            d = deploy_detached(rust_service, host, tmp_path / sig.name)
            assert httpx.get(d.url, timeout=30).status_code == 200
            assert keep_pids(host)
            os.kill(host.process.pid, sig)  # the agent only, not its process group
            host.process.wait(30)
            deadline = time.monotonic() + 30
            while keep_pids(host) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert keep_pids(host) == [], f"keeps outlived the agent ({sig.name})"
            with pytest.raises(httpx.ConnectError):
                httpx.get(d.url, timeout=10)
        finally:
            stop_host(host)


def test_a_taken_publish_range_fails_the_deploy_and_leaves_nothing_running(
        rust_service: Service, tmp_path: Path) -> None:
    low = free_range(1)
    host = start_host(tmp_path / "agent", "--publish-range", f"{low}-{low}", pool=1)
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", low))
            squatter.listen(1)
            policy = tmp_path / "policy.toml"
            policy.write_text(host.policy())
            env = os.environ | {"XDG_STATE_HOME": str(tmp_path / "state")}
            r = cli("deploy", rust_service.ref, "--host", host.url, "--host-token-file", str(host.token_file),
                    "--policy", str(policy), "--key", str(rust_service.signer_pub), "--insecure-sim", "--detach",
                    env=env)
        assert r.returncode == 69, r.stderr
        assert f"no free port in this host's publish range {low}-{low}" in r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "state").exists()  # no state: nothing to manage
        platform = httpx.get(host.url + "/v1/platform", headers={"Authorization": f"Bearer {host.token}"}, timeout=30)
        assert platform.json()["keeps"]["active"] == 0
    finally:
        stop_host(host)


GUEST_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "probing undeclared sockets\\n")
  (func (export "_start") (local $e i32)
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 27))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $e (call $sock_accept (i32.const 4) (i32.const 0) (i32.const 64)))
    (if (i32.ne (local.get $e) (i32.const 8)) (then (call $proc_exit (i32.add (i32.const 100) (local.get $e)))))
    (call $proc_exit (call $fd_write (i32.const 9) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""
GUEST_TOML = """[package]
name = "guest-probe"
version = "0.1.0"
[build]
recipe = "wat"
sources = ["probe.wat"]
output = "target/probe.wasm"
[[files]]
kind = "stdin"
[[files]]
kind = "stdout"
[[files]]
kind = "stderr"
[[files]]
kind = "listen"
name = "web"
prot = "tcp"
port = 8080
[keep]
backends = ["sim"]
"""


def test_the_guest_reaches_no_undeclared_socket_and_its_exit_status_is_in_keep_logs(
        detach_host: tuple[HostAgent, int], tmp_path: Path, docker_registry: object) -> None:
    """In the keep, fds past the declared ones are no sockets (EBADF, 8): preview 1 has no call that opens
    one, so the guest can reach no undeclared host. The workload then exits 8; `keep logs` from another
    process shows its output and exits with that status, opened with the saved session key."""
    from enarx_pkg.build import build

    host, _ = detach_host
    project = tmp_path / "guest-probe"
    project.mkdir()
    (project / "probe.wat").write_text(GUEST_WAT)
    (project / "Enarx.toml").write_text(GUEST_TOML)
    service = signed_and_published(build(project).layout, "net/guest-probe", tmp_path, docker_registry)
    d = deploy_detached(service, host, tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = cli("keep", "logs", d.keep_id, "--host", host.url, env=d.env)
        if logs.returncode != 0:
            break
        time.sleep(0.5)
    assert logs.returncode == 8, logs.stderr  # EBADF from both calls: the workload's own status
    assert logs.stdout == "probing undeclared sockets\n"
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)


def test_a_deployer_killed_while_the_keep_starts_leaves_nothing_running(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, low = detach_host
    policy = tmp_path / "policy.toml"
    policy.write_text(host.policy())
    env = os.environ | {"XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "deploy", rust_service.ref, "--host", host.url,
                             "--host-token-file", str(host.token_file), "--policy", str(policy), "--key",
                             str(rust_service.signer_pub), "--insecure-sim", "--detach"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"waiting for the keep to bind" in line:
            proc.kill()  # around the provision request: before it or while the keep starts
            break
    proc.wait(30)

    # Killed before or while the keep starts, or after the agent answered but before the state was saved
    # and confirmed: either way no one holds the keep, and the agent reaps it at its provision deadline.
    deadline = time.monotonic() + 120
    while active(host) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert active(host) == 0 and not (tmp_path / "state").exists()
    time.sleep(3)  # had the keep lived on, it would have bound the range's first port by now
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", low), timeout=5)


def test_a_keep_whose_deployer_never_confirms_is_reaped(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployer dies after the agent answered with the endpoints, before it saved and confirmed the
    keep's state (played in process: the confirmation is never sent). The keep must not run on unheld."""
    from enarx_pkg import deploy as d
    from enarx_pkg import verify
    from enarx_pkg.host.client import HostClient

    host, _ = detach_host
    policy = tmp_path / "policy.toml"
    policy.write_text(host.policy())
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(HostClient, "confirm", lambda self, offer: None)
    [r] = d.deploy(d.DeploySettings(ref=rust_service.ref, hosts=(host.url,), policy_path=policy,
                                    host_token=host.token, insecure_sim=True, detach=True,
                                    signer=verify.KeyPolicy(rust_service.signer_pub.read_bytes())))
    assert r.error is None and r.endpoints, r.error and r.error.message
    assert httpx.get(f"http://{r.endpoints[0]['address']}", timeout=30).status_code == 200  # bound, serving
    gone = time.monotonic() + 120
    while active(host) and time.monotonic() < gone:
        time.sleep(0.3)
    assert active(host) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{r.endpoints[0]['address']}", timeout=10)


def test_a_confirmed_keep_outlives_the_provision_deadline(
        rust_service: Service, detach_host: tuple[HostAgent, int], tmp_path: Path) -> None:
    host, _ = detach_host
    d = deploy_detached(rust_service, host, tmp_path)
    time.sleep(PROVISION_DEADLINE_S + 3)  # past the deadline and a reaper round: a lower bound, never a race
    assert httpx.get(d.url, timeout=30).status_code == 200
    status = cli("keep", "status", d.keep_id, "--host", host.url, "--json", env=d.env)
    assert json.loads(status.stdout)["state"] == "running", status.stderr
    cli("keep", "stop", d.keep_id, "--host", host.url, env=d.env)
