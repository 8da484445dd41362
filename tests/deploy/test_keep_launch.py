"""A modified agent starts the keep its own way: the keep refuses any launch the measurement does not cover.

The honest agent starts keeps as ``KeepCommand.argv()`` in ``KEEP_ENV`` and ``/``; a hostile host runs
its own agent. Each test is one change such an agent makes to a real keep process (its interpreter
flags, one environment variable, its working directory) and checks that the keep refuses before it
reports READY (so before any key or secret exists), says why without echoing the host's values, and,
for the planted bytecode, that the host's code never ran.
"""

from __future__ import annotations

import importlib.util
import py_compile
import subprocess
from pathlib import Path

import pytest

from enarx_pkg._internal import seal
from enarx_pkg.host.pool import KEEP_CWD, KEEP_ENV, KeepCommand
from enarx_pkg.keep.launch import FLAGS
from tests.deploy.test_keep_measurement import BOOT, copy_code

HOST_VALUE = "host-chosen-value-7d1c"  # what a hostile agent puts in a variable; never echoed back


def launch(argv: list[str], env: dict[str, str], cwd: str = KEEP_CWD) -> tuple[int, list[tuple[int, bytes]]]:
    """Start a real keep as a modified agent would; its exit status and the records it sent."""
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd=cwd, timeout=300)
    return proc.returncode, seal.RecordReader().feed(proc.stdout)


def refused(result: tuple[int, list[tuple[int, bytes]]], why: str) -> str:
    code, records = result
    assert code == 2, records
    assert [kind for kind, _ in records] == [seal.R_FAIL]  # no READY: no measurement, no key, no evidence
    message = records[0][1].decode()
    assert "refuses to run" in message and why in message, message
    assert HOST_VALUE not in message
    return message


def keep_argv(tmp_path: Path) -> list[str]:
    return KeepCommand("sim", str(tmp_path / "data")).argv()


def without(argv: list[str], *flags: str) -> list[str]:
    return [a for a in argv if a not in flags]


def test_the_honest_launch_is_accepted(tmp_path: Path) -> None:
    """The control: the agent's own command, environment and directory give a READY keep."""
    proc = subprocess.Popen(keep_argv(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=KEEP_ENV, cwd=KEEP_CWD)
    assert proc.stdout is not None and proc.stdin is not None
    reader, records = seal.RecordReader(), []
    while not records:
        chunk = proc.stdout.read1(65536)
        assert chunk, f"keep exited with {proc.wait()} before READY"
        records = reader.feed(chunk)
    proc.stdin.close()  # the agent went away: the idle keep ends
    assert records[0][0] == seal.R_READY and proc.wait(timeout=120) == 0


def test_planted_bytecode_without_the_pycache_flags_is_never_run(tmp_path: Path) -> None:
    """The host plants a __pycache__/*.pyc whose header matches the source and starts the keep without
    -B -X pycache_prefix: an ordinary interpreter would run it while measuring the genuine source."""
    trapped, mark = copy_code(tmp_path / "trapped"), tmp_path / "pyc-ran"
    source = trapped / "enarx_pkg" / "_internal" / "b64.py"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(mark)!r}, 'w').close()\nexec(open({str(source)!r}).read())\n")
    pyc = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(evil), cfile=str(pyc), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    argv = without(keep_argv(tmp_path), *FLAGS[1:])  # -B -X pycache_prefix=...
    at = argv.index("-m")
    argv[at:at + 2] = ["-c", BOOT, str(trapped)]
    refused(launch(argv, KEEP_ENV), "bytecode caches are not off")
    assert not mark.exists()


@pytest.mark.parametrize("flag, why", [
    ("-I", "not an isolated interpreter"),
    ("-O", "flags change how its code runs: optimize"),  # strips the asserts of the keep's checks
    ("-i", "flags change how its code runs: inspect"),   # a prompt on the record pipe after the keep ends
    ("-Werror", "flags change how its code runs: -W"),
    ("-Ximporttime", "other -X options: importtime"),
])
def test_a_changed_interpreter_flag_is_refused(tmp_path: Path, flag: str, why: str) -> None:
    argv = keep_argv(tmp_path)
    argv = without(argv, "-I") if flag == "-I" else [argv[0], flag, *argv[1:]]
    refused(launch(argv, KEEP_ENV), why)


@pytest.mark.parametrize("name", [
    "SSL_CERT_FILE",   # the CA the keep trusts when it sends the sealed registry credential
    "SSL_CERT_DIR",
    "OPENSSL_CONF",    # OpenSSL's protocol and cipher settings for that connection
    "TMPDIR",          # where the keep decrypts the package and writes mounted secrets
    "HTTPS_PROXY",
    "LD_LIBRARY_PATH",
    "GLIBC_TUNABLES",
    "PYTHONPATH",
    "HOME",
])
def test_a_host_environment_variable_is_refused(tmp_path: Path, name: str) -> None:
    message = refused(launch(keep_argv(tmp_path), {**KEEP_ENV, name: HOST_VALUE}), "environment is not the keep's own")
    assert name in message


def test_a_changed_locale_is_refused(tmp_path: Path) -> None:
    message = refused(launch(keep_argv(tmp_path), {**KEEP_ENV, "LC_ALL": "C"}), "environment is not the keep's own")
    assert "LC_ALL" in message


def test_another_working_directory_is_refused(tmp_path: Path) -> None:
    refused(launch(keep_argv(tmp_path), KEEP_ENV, cwd=str(tmp_path)), "working directory is not /")
