"""The frozen host (``[build] deterministic``): what a snapshotting build command sees of the machine.

Each property is checked in a real child process (this interpreter) with the compiled library
preloaded, against the same probe run unfrozen where the difference is the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg._internal import frozen_host

pytestmark = pytest.mark.skipif(frozen_host.unsupported() is not None,
                                reason=f"the frozen host {frozen_host.unsupported()}")

EPOCH = 1700000000


@pytest.fixture(scope="module")
def library() -> Path:
    return frozen_host.library()


def probe(library: Path | None, code: str, root: Path, cwd: Path | None = None) -> object:
    """Run ``code`` (which prints one JSON value) in a child, frozen unless ``library`` is None."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    if library is not None:
        env.update({"LD_PRELOAD": str(library), "ENARX_FREEZE_ROOT": str(root)})
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd or root, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "sub" / "data.bin").write_bytes(b"\0" * 1000)
    return root


STAT = """
import json, os
out = {}
for p in ["pkg", "pkg/mod.py", "pkg/sub", "pkg/sub/data.bin"]:
    s = os.stat(p)
    out[p] = [s.st_ino, s.st_dev, s.st_mtime_ns, s.st_ctime_ns, s.st_atime_ns, s.st_size, s.st_blocks]
    fd = os.open(p, os.O_RDONLY)
    f = os.fstat(fd)
    os.close(fd)
    out[p + " fstat"] = [f.st_ino, f.st_mtime_ns]
print(json.dumps(out))
"""


def test_wall_clock_reads_source_date_epoch_and_monotonic_time_stands_still(library: Path, tmp_path: Path) -> None:
    code = ("import json, time, datetime; a = time.monotonic(); "
            "print(json.dumps([time.time(), time.time_ns(), datetime.datetime.now(datetime.UTC).year, a, "
            "time.monotonic()]))")
    wall, ns, year, m1, m2 = probe(library, code, tmp_path)  # type: ignore[misc]
    assert (wall, ns, year) == (EPOCH, EPOCH * 10**9, 2023)
    assert m1 == m2
    assert probe(None, code, tmp_path)[0] > EPOCH + 10**7  # type: ignore[index]  # unfrozen: today


def test_entropy_is_the_same_in_every_run(library: Path, tmp_path: Path) -> None:
    code = "import json, os, random; print(json.dumps([os.urandom(32).hex(), random.random(), hash('abc')]))"
    assert probe(library, code, tmp_path) == probe(library, code, tmp_path)
    assert probe(None, code, tmp_path) != probe(None, code, tmp_path)


def test_file_metadata_does_not_depend_on_where_or_when_the_tree_was_made(library: Path, tmp_path: Path) -> None:
    here, there = tree(tmp_path / "here"), tree(tmp_path / "elsewhere" / "deeper" / "there")
    frozen_here, frozen_there = probe(library, STAT, here), probe(library, STAT, there)
    assert frozen_here == frozen_there
    stats: dict[str, list[int]] = frozen_here  # type: ignore[assignment]
    assert stats["pkg/mod.py"][2:5] == [EPOCH * 10**9] * 3 and stats["pkg/mod.py"][1] == 1
    assert stats["pkg/mod.py"][0] == stats["pkg/mod.py fstat"][0]  # one file, one inode, by path or by descriptor
    assert len({v[0] for k, v in stats.items() if "fstat" not in k}) == 4  # four files, four inodes
    assert stats["pkg/sub"][5] == 4096  # a directory's size as ext4 gives it
    assert probe(None, STAT, here) != probe(None, STAT, there)  # unfrozen: other inodes and times


def test_the_random_name_of_a_temporary_directory_does_not_count(library: Path, tmp_path: Path) -> None:
    one, two = tree(tmp_path / "a" / ".tmpAb12Cd"), tree(tmp_path / "b" / "c" / ".tmpZz9Yx8")
    assert probe(library, STAT, tmp_path, cwd=one) == probe(library, STAT, tmp_path, cwd=two)


@pytest.mark.parametrize("where", ["tmp", "shm"])
def test_listings_come_sorted_whatever_the_filesystem_keeps(library: Path, tmp_path: Path, where: str) -> None:
    if where == "shm" and not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm (tmpfs lists in reverse creation order)")
    with tempfile.TemporaryDirectory(dir="/dev/shm" if where == "shm" else tmp_path) as listed:
        names = [f"f{(i * 7919) % 3001:05d}-{'x' * (i % 40)}" for i in range(3000)]  # ~150 KB of entries
        for name in names:
            Path(listed, name).touch()
        code = ("import json, os; a = os.listdir('.'); b = [e.name for e in os.scandir('.')]; "
                "print(json.dumps([a, b, os.listdir('.')]))")
        first, scanned, again = probe(library, code, tmp_path, cwd=Path(listed))  # type: ignore[misc]
        assert first == sorted(names) and scanned == first and again == first
        assert probe(None, code, tmp_path, cwd=Path(listed))[0] != sorted(names)  # type: ignore[index]


def test_bytecode_caches_are_refused_and_other_files_are_written(library: Path, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "imported.py").write_text("VALUE = 42\n")
    code = """
import json, os, sys
sys.dont_write_bytecode = False
sys.path.insert(0, "lib")
refused = []
for attempt in [lambda: os.mkdir("__pycache__"), lambda: open("x.pyc", "wb"), lambda: open("x.pyc.1234", "xb"),
                lambda: os.mkdir("lib/__pycache__")]:
    try:
        attempt()
    except PermissionError:
        refused.append(True)
with open("data.txt", "w") as f:
    f.write("kept")
import imported
print(json.dumps([refused, imported.VALUE, os.path.exists("lib/__pycache__"), open("data.txt").read()]))
"""
    assert probe(library, code, tmp_path) == [[True] * 4, 42, False, "kept"]
    assert not list(tmp_path.rglob("*.pyc"))


def test_a_program_started_from_a_frozen_command_is_stopped_and_the_build_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "Enarx.toml").write_text(
        '[package]\nname = "t"\nversion = "1.0.0"\n\n'
        '[build]\ncommand = ["sh", "-c", "/bin/true"]\noutput = "m.wasm"\ndeterministic = true\n')
    assert main(["build", str(root)]) == 70
    err = capsys.readouterr().err
    assert "killed by SIGSYS on the frozen host" in err and "deterministic = false" in err
    assert "Traceback" not in err and not (root / "target" / "oci").exists()


def test_a_command_that_never_loads_the_library_is_not_taken_for_frozen(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ldconfig = Path("/sbin/ldconfig")  # statically linked on Debian: LD_PRELOAD does not reach it
    if not ldconfig.is_file() or b"/ld-linux" in ldconfig.read_bytes()[:4096]:  # no PT_INTERP: static
        pytest.skip("needs a statically linked /sbin/ldconfig")
    root = tmp_path / "p"
    root.mkdir()
    (root / "Enarx.toml").write_text(
        '[package]\nname = "t"\nversion = "1.0.0"\n\n'
        f'[build]\ncommand = ["{ldconfig}", "-p"]\noutput = "m.wasm"\ndeterministic = true\n')
    assert main(["build", str(root)]) == 70
    err = capsys.readouterr().err
    assert "ran without the frozen host" in err and "Traceback" not in err


def test_deterministic_needs_an_argv_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Enarx.toml").write_text(
        '[package]\nname = "t"\nversion = "1.0.0"\n\n'
        '[build]\ncommand = "make"\nshell = true\noutput = "m.wasm"\ndeterministic = true\n')
    assert main(["validate", str(tmp_path)]) == 65
    assert "build.deterministic" in capsys.readouterr().err


def test_componentize_py_is_frozen_unless_the_project_says_no() -> None:
    componentize = ("componentize-py", "-d", "wit", "componentize", "app")
    assert frozen_host.wanted(None, componentize)
    assert frozen_host.wanted(None, ("/venv/bin/componentize-py", "componentize", "app"))
    assert not frozen_host.wanted(False, componentize)
    assert not frozen_host.wanted(None, ("cargo", "build"))
    assert frozen_host.wanted(True, ("make",))


def test_a_cached_library_others_can_write_is_compiled_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, library: Path) -> None:
    monkeypatch.setenv("ZIG_GLOBAL_CACHE_DIR", str(frozen_host.user_cache_dir("zig")))
    monkeypatch.setenv("ENARX_PKG_CACHE_DIR", str(tmp_path / "cache"))
    first = frozen_host.library()
    first.chmod(0o777)
    planted = first.stat().st_ino
    second = frozen_host.library()
    assert second == first and second.stat().st_ino != planted
    assert second.stat().st_mode & 0o777 == 0o700
    assert frozen_host.library().stat().st_ino == second.stat().st_ino  # a private entry is reused
