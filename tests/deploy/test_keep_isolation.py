"""The host owns the keep's disk and environment: nothing it plants there may run in the keep.

Issue 11, hole 1. Each test starts a real host agent whose environment, working directory and cache
directories a hostile host has prepared, deploys the probe through it with the CLI, and checks that
the signed probe ran (its marker, the secret reached it) and the planted code did not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from enarx_pkg._cli.main import main
from enarx_pkg._internal import compiled
from enarx_pkg.oci.client import Client
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import MEDIA_WASM, ImageManifest
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.fixtures.hosts import HostAgent, start_host, stop_host

PLANTED = b"PLANTED-NATIVE-CODE-5be1"
EVIL_WAT = f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{PLANTED.decode()}\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const {len(PLANTED) + 1}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
SITECUSTOMIZE = """import os, sys
role = "keep" if "enarx_pkg.keep" in sys.orig_argv else "agent"
open(os.path.join({marks!r}, f"{{role}}-{{os.getpid()}}"), "w").close()
"""


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)


def deploy_cli(pub: Published, host: HostAgent, policy: Path,
               capfdbinary: pytest.CaptureFixture[bytes]) -> tuple[int, bytes]:
    code = main(["deploy", pub.plain, "--host", host.url, "--host-token-file", str(host.token_file),
                 "--policy", str(policy), "--key", str(pub.signer_pub), "--insecure-sim"])
    out, _ = capfdbinary.readouterr()
    return code, out


def wasm_digest(pub: Published) -> str:
    with Client(parse_registry(pub.registry_host), None) as client:
        fetched = client.fetch_manifest("probe", pub.plain_digest)
    manifest = ImageManifest.from_bytes(fetched.data, "probe manifest")
    return next(d.digest for d in manifest.layers if d.media_type == MEDIA_WASM)


def plant_compiled(root: Path, module_digest: str) -> list[Path]:
    """Valid cache entries (right name, checksum, mode 0600) holding native code of another module."""
    planted = []
    for fuel in (False, True):
        engine = wasmtime.Engine(compiled.engine_config(fuel))
        payload = wasmtime.Module(engine, EVIL_WAT).serialize()
        entry = compiled.CompiledCache(root).entry(module_digest, "module", compiled.engine_fingerprint(fuel))
        compiled.write_entry(entry, entry.name.encode(), payload)
        planted.append(entry)
    return planted


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def hostile_host(tmp_path: Path, published: Published) -> Iterator[tuple[HostAgent, Path, Path]]:
    """An agent whose HOME, XDG_CACHE_HOME, ENARX_PKG_CACHE_DIR, PYTHONPATH and cwd are the host's traps."""
    traps, marks = tmp_path / "traps", tmp_path / "marks"
    (traps / "pythonpath").mkdir(parents=True)
    marks.mkdir()
    for name in ("sitecustomize.py", "usercustomize.py"):
        (traps / "pythonpath" / name).write_text(SITECUSTOMIZE.format(marks=str(marks)))
    # a module the keep imports and the agent does not: found first if cwd or PYTHONPATH were on sys.path
    (traps / "pythonpath" / "wasmtime.py").write_text(SITECUSTOMIZE.format(marks=str(marks)))
    (traps / "cwd").mkdir()
    (traps / "cwd" / "wasmtime.py").write_text(SITECUSTOMIZE.format(marks=str(marks)))
    env = {**os.environ, "HOME": str(traps / "home"), "XDG_CACHE_HOME": str(traps / "xdg"),
           "ENARX_PKG_CACHE_DIR": str(traps / "cache"), "PYTHONPATH": str(traps / "pythonpath")}
    digest = wasm_digest(published)
    for root in (traps / "cache" / "compiled", traps / "xdg" / "enarx-pkg" / "compiled",
                 traps / "home" / ".cache" / "enarx-pkg" / "compiled"):
        plant_compiled(root, digest)
    host = start_host(tmp_path / "host", pool=1, env=env, cwd=traps / "cwd")
    try:
        yield host, traps, marks
    finally:
        stop_host(host)


def test_planted_compiled_module_is_not_run(hostile_host, published, policy_for, capfdbinary) -> None:
    """A host-written *.cwasm for the signed module's digest: the keep compiles the verified module itself."""
    host, traps, _ = hostile_host
    before = snapshot(traps)
    code, out = deploy_cli(published, host, policy_for(host), capfdbinary)
    assert PLANTED not in out
    assert code == 1 and MARKER in out and f"env=PROBE_SECRET={SECRET}".encode() in out  # the signed probe ran
    assert snapshot(traps) == before  # and the keep wrote nothing into the host's cache directories


def test_host_environment_and_cwd_are_not_imported(hostile_host, published, policy_for, capfdbinary) -> None:
    """PYTHONPATH, a sitecustomize and a module shadowing wasmtime in the cwd: the keep loads none of them."""
    host, _, marks = hostile_host
    code, out = deploy_cli(published, host, policy_for(host), capfdbinary)
    assert code == 1 and MARKER in out
    ran = sorted(p.name.split("-")[0] for p in marks.iterdir())
    assert "agent" in ran  # the traps work: a normal interpreter (the agent itself) fell into them
    assert "keep" not in ran


def keeps_of(agent_pid: int) -> list[Path]:
    """/proc entries of the keep processes an agent has started."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == agent_pid and b"enarx_pkg.keep" in (proc / "cmdline").read_bytes():
                found.append(proc)
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_keep_starts_isolated_in_an_environment_of_its_own(hostile_host) -> None:
    """What a hostile host's agent really runs: an isolated interpreter without bytecode caches, in /,
    with an environment of its own (none of the host's variables)."""
    host, traps, _ = hostile_host
    keeps = keeps_of(host.process.pid)
    assert keeps, "the agent has no pre-started keep"
    for proc in keeps:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        flags = [b"-I", b"-B", b"-X", b"pycache_prefix=/dev/null/enarx-keep-pycache"]
        assert argv[:5] == [sys.executable.encode(), *flags]
        env = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if v)
        assert env == {b"PATH": b"/usr/bin:/bin", b"LC_ALL": b"C.UTF-8", b"LANG": b"C.UTF-8"}
        assert os.readlink(proc / "cwd") == "/" and str(traps).encode() not in b"".join(argv)
