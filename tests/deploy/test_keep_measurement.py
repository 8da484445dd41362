"""The sim measurement identifies the keep's code, and only the keep decides it (issue 11, hole 6).

Keeps here are real keep processes started exactly as the agent starts them (same interpreter flags,
environment and cwd), from copies of the code a hostile host changed by one byte; the measurement
is what each reports in its READY record, the value its evidence carries.
"""

from __future__ import annotations

import importlib.util
import py_compile
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from enarx_pkg._cli.main import main
from enarx_pkg._internal import seal
from enarx_pkg.host.pool import KEEP_CWD, KEEP_ENV, KeepCommand
from tests.conftest import REPO, free_port
from tests.fixtures.hosts import stop_host_process

# a keep started from another copy of the code: the copy first on sys.path, then the keep's own main
BOOT = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
        "runpy.run_module('enarx_pkg.keep', run_name='__main__', alter_sys=True)")
SITE = Path(importlib.util.find_spec("wasmtime").origin or "").parent.parent  # type: ignore[union-attr]
CHANGED = ("enarx_pkg/_internal/b64.py", "enarx_pkg/_internal/compiled.py", "enarx_pkg/attestation/sim.py",
           "enarx_pkg/errors.py", "enarx_pkg/manifest/enarx-toml.schema.json",
           "wasmtime/linux-x86_64/_libwasmtime.so", "cryptography/__about__.py")


def start_keep(data: Path, code_root: Path | None = None, *extra: str) -> subprocess.Popen[bytes]:
    argv = KeepCommand("sim", str(data), extra).argv()
    if code_root is not None:
        at = argv.index("-m")
        argv[at:at + 2] = ["-c", BOOT, str(code_root)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=KEEP_ENV, cwd=KEEP_CWD)


def ready(proc: subprocess.Popen[bytes]) -> str:
    """The measurement in the keep's READY record (the keep is stopped afterwards)."""
    import json

    assert proc.stdout is not None
    reader = seal.RecordReader()
    try:
        while not (records := reader.feed(proc.stdout.read1(65536) or b"")):
            assert proc.poll() is None, f"keep exited with {proc.returncode} before READY"
        kind, payload = records[0]
        assert kind == seal.R_READY
        return str(json.loads(payload)["measurement"])
    finally:
        proc.kill()
        proc.wait()


def copy_code(dest: Path, *, change: str | None = None) -> Path:
    """enarx_pkg (and, when one of theirs is changed, wasmtime or cryptography) copied, one byte appended."""
    shutil.copytree(REPO / "enarx_pkg", dest / "enarx_pkg", ignore=shutil.ignore_patterns("__pycache__"))
    if change is not None and not change.startswith("enarx_pkg/"):
        top = change.split("/")[0]
        shutil.copytree(SITE / top, dest / top, ignore=shutil.ignore_patterns("__pycache__"))
    if change is not None:
        with open(dest / change, "ab") as f:
            f.write(b"\n" if change.endswith(".json") else b"#" if change.endswith(".py") else b"\0")
    return dest


def platform(url: str, token: str) -> dict[str, str]:
    for _ in range(300):
        try:
            r = httpx.get(url + "/v1/platform", headers={"Authorization": f"Bearer {token}"}, timeout=60)
            return dict(r.json())
        except httpx.ConnectError:  # printed before it listens
            time.sleep(0.1)
    raise AssertionError("the agent did not start listening")


def test_changing_any_loaded_file_changes_the_measurement(tmp_path: Path) -> None:
    data = tmp_path / "data"
    procs = {"genuine": start_keep(data)}
    procs["copy"] = start_keep(data, copy_code(tmp_path / "copy"))
    procs["copy elsewhere"] = start_keep(data, copy_code(tmp_path / "elsewhere" / "deeper"))
    for i, name in enumerate(CHANGED):
        procs[name] = start_keep(data, copy_code(tmp_path / f"changed{i}", change=name))
    got = {name: ready(p) for name, p in procs.items()}
    # the same code measures the same wherever it is installed, and so does the agent's own keep
    assert got["copy"] == got["copy elsewhere"] == got["genuine"]
    for name in CHANGED:
        assert got[name] != got["copy"], f"{name} is loaded by the keep but not measured"
    assert len(set(got.values())) == 1 + len(CHANGED)


def test_planted_bytecode_is_not_executed(tmp_path: Path) -> None:
    """A host-written __pycache__/*.pyc whose header matches the source: the keep compiles the source."""
    clean, trapped = copy_code(tmp_path / "clean"), copy_code(tmp_path / "trapped")
    mark = tmp_path / "pyc-ran"
    source = trapped / "enarx_pkg" / "_internal" / "b64.py"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(mark)!r}, 'w').close()\nexec(open({str(source)!r}).read())\n")
    pyc = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(evil), cfile=str(pyc), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    st = source.stat()  # make the header claim it was compiled from b64.py as it is now
    header = int(st.st_mtime).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    pyc.write_bytes(pyc.read_bytes()[:8] + header + pyc.read_bytes()[16:])
    subprocess.run([sys.executable, "-c", BOOT.split("; runpy")[0] + "; import enarx_pkg._internal.b64",
                    str(trapped)], check=True, env=KEEP_ENV, cwd=KEEP_CWD)
    assert mark.exists()  # the trap works: an ordinary interpreter runs the planted bytecode
    mark.unlink()

    data = tmp_path / "data"
    got_clean, got_trapped = ready(start_keep(data, clean)), ready(start_keep(data, trapped))
    assert not mark.exists() and got_trapped == got_clean


def test_keep_refuses_a_measurement_from_its_host(tmp_path: Path) -> None:
    proc = start_keep(tmp_path, None, "--sim-measurement", "ab" * 48)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and seal.R_READY not in out[:1]


def test_agent_has_no_measurement_option_and_prints_what_its_keeps_report(tmp_path: Path, capfd) -> None:
    assert main(["host", "serve", "--backend", "sim", "--data", str(tmp_path / "x"),
                 "--sim-measurement", "ab" * 48]) == 2
    assert "--sim-measurement" in capfd.readouterr().err
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "host", "serve", "--backend", "sim", "--pool", "1",
                             "--listen", f"127.0.0.1:{port}", "--data", str(tmp_path / "host")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode() for _ in range(3)]
        printed = next(line.split()[-1] for line in lines if "measurement:" in line)
        token = (tmp_path / "host" / "agent-token").read_text().strip()
        assert platform(f"http://127.0.0.1:{port}", token)["measurement"] == printed and len(printed) == 96
    finally:
        stop_host_process(proc)


def test_after_measuring_the_keep_loads_no_new_module() -> None:
    """An import after the measurement is refused with a typed error (optional imports still degrade)."""
    script = ("import json, sys\nfrom enarx_pkg.errors import Error\nfrom enarx_pkg.keep import measure\n"
              "measure.seal_imports()\nimport json.decoder\n"  # already loaded: fine
              "try:\n    import colorsys\nexcept ImportError as exc:\n"
              "    print(isinstance(exc, Error), exc.name, exc.message)\n"
              "print('colorsys' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True,
                         env=KEEP_ENV, cwd=KEEP_CWD).stdout
    assert out == "True colorsys the keep was measured; it may not load module colorsys afterwards\nFalse\n"
