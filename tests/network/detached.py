"""Detached-keep test helpers: a signed package published to a real registry, a sim agent with a
publish range, and ``deploy --detach`` / ``keep ...`` run as the user runs them (a separate process)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from enarx_pkg import keys
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.sign import sign_layout
from tests.conftest import REPO
from tests.fixtures.hosts import HostAgent, start_host, stop_host


@dataclass(frozen=True)
class Service:
    ref: str
    signer_pub: Path


@dataclass(frozen=True)
class Detached:
    keep_id: str
    endpoints: list[dict[str, object]]
    state: Path
    env: dict[str, str]
    out: str

    @property
    def url(self) -> str:
        return f"http://{self.endpoints[0]['address']}"


def signed_and_published(layout_dir: Path, repository: str, root: Path, registry: object) -> Service:
    from enarx_pkg.oci.reference import parse_registry

    signer = keys.generate(root / "signer", password_env=None)
    layout = Layout.open(layout_dir)
    sign_layout(layout, "0.1.0", key=keys.load_private(signer.private_path, password_env=None))
    reg = parse_registry(registry.host)  # type: ignore[attr-defined]
    publish(layout, Target(reg, repository, "0.1.0"), source_ref="0.1.0")
    return Service(f"{reg.host}/{repository}:0.1.0", signer.public_path)


def range_host(root: Path, ports: int, *extra: str) -> Iterator[tuple[HostAgent, int]]:
    """A sim agent (one pooled keep) whose keeps publish on ``ports`` free ports in a row from the one yielded."""
    low = free_range(ports)
    host = start_host(root, "--publish-range", f"{low}-{low + ports - 1}", *extra, pool=1)
    yield host, low
    stop_host(host)


def free_range(n: int) -> int:
    """``n`` free ports in a row, below the kernel's ephemeral range (which client sockets churn through)."""
    for _ in range(200):
        low = random.randrange(20000, 32000)
        if all(_free(p) for p in range(low, low + n)):
            return low
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the keep binds: TIME_WAIT does not count
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enarx_pkg", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def deploy_detached(service: Service, host: HostAgent, tmp: Path, *extra: str) -> Detached:
    policy = tmp / "policy.toml"
    policy.write_text(host.policy())
    env = os.environ | {"XDG_STATE_HOME": str(tmp / "state")}
    r = cli("deploy", service.ref, "--host", host.url, "--host-token-file", str(host.token_file), "--policy",
            str(policy), "--key", str(service.signer_pub), "--insecure-sim", "--detach", "--json", *extra, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    [row] = json.loads(r.stdout)["hosts"]
    return Detached(row["keep_id"], row["endpoints"], Path(row["state_file"]), env, r.stdout + r.stderr)


def keep_pids(host: HostAgent) -> list[int]:
    """Keep processes started by ``host`` (their argv names its data directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"enarx_pkg.keep" in argv and str(host.data_dir.resolve()).encode() in argv:
                pids.append(int(entry.name))
    return pids


def active(host: HostAgent) -> int:
    r = httpx.get(host.url + "/v1/platform", headers={"Authorization": f"Bearer {host.token}"}, timeout=30)
    return int(r.json()["keeps"]["active"])
