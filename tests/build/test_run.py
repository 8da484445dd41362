"""`enarx-pkg run` and the runtime: Enarx semantics, limits, exit status, the compiled-module cache."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from enarx_pkg import runtime
from enarx_pkg._cli.main import main
from enarx_pkg.build import build
from enarx_pkg.errors import ExitCode, InputError, WorkloadError, WorkloadTimeout
from enarx_pkg.manifest.model import Dir, File
from tests.build.helpers import WASI_START, wasm, wat_project

HELLO = {"c": "Hello from C", "cpp": "Hello from C++", "rust": "Hello from Rust", "go": "Hello from Go",
         "python": "Hello from Python", "wat": "Hello from WAT"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HELLO))
def test_every_example_builds_and_greets_with_args_and_fd_names(
        name: str, built_example: Callable[[str], Path], capfd: pytest.CaptureFixture[str]) -> None:
    layout = built_example(name)
    assert main(["run", str(layout), "--", "one", "two words"]) == 0
    out, err = capfd.readouterr()
    assert HELLO[name] in out
    assert "arg: one" in out and "arg: two words" in out
    assert "FD_NAMES=stdin:stdout:stderr" in out
    assert err.count("without a TEE") == 1


def test_wat_hello_sees_enarx_args_and_env(wat_layout: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(wat_layout.parent.parent)]) == 0  # the project dir: uses target/oci
    out = capfd.readouterr().out
    assert "arg: --greeting\narg: hello\n" in out
    assert "env: FD_COUNT=3\n" in out and "env: GREETING=hello from Enarx.toml\n" in out


def test_the_no_tee_notice_comes_once_the_package_is_found(wat_layout: Path, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    """A wrong name gets its error alone; a package that runs gets the notice before its output."""
    assert main(["run", str(tmp_path / "nope")]) == ExitCode.NOT_FOUND
    err = capfd.readouterr().err
    assert "no such package directory" in err and "without a TEE" not in err
    assert main(["run", str(wat_layout.parent.parent)]) == 0
    assert capfd.readouterr().err.count("running locally without a TEE") == 1


def test_stale_build_is_refused(tmp_path: Path) -> None:
    project = wat_project(tmp_path, f'{WASI_START} (func (export "_start"))')
    build(project)
    (project / "m.wat").write_text(f'(module {WASI_START} (func (export "_start") (call $exit (i32.const 1))))')
    with pytest.raises(InputError, match="older than its sources"):
        runtime.run_path(project)


def _run(tmp_path: Path, body: str, keep: str = "", **kw: object) -> int:
    project = wat_project(tmp_path, body, keep)
    return runtime.run_path(build(project).layout, **kw)  # type: ignore[arg-type]


def test_workload_exit_code_passes_through(tmp_path: Path) -> None:
    assert main(["build", str(wat_project(tmp_path, f'{WASI_START} (func (export "_start") '
                                          '(call $exit (i32.const 7)))'))]) == 0
    assert main(["run", str(tmp_path)]) == 7


def test_trap_exits_134_with_a_clear_message(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    build(wat_project(tmp_path, '(func (export "_start") unreachable)'))
    assert main(["run", str(tmp_path)]) == ExitCode.WORKLOAD_TRAPPED
    assert "trapped" in capfd.readouterr().err


def test_memory_exhaustion_is_reported_as_such(tmp_path: Path) -> None:
    grow = ('(memory (export "memory") 1) (func (export "_start") '
            '(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable)')
    with pytest.raises(WorkloadError, match="near its memory limit of 8 MiB") as info:
        _run(tmp_path, grow, keep="memory_mb = 8")
    assert info.value.exit_code == ExitCode.WORKLOAD_TRAPPED


def test_infinite_loop_hits_the_time_limit_and_exits_124(tmp_path: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    build(wat_project(tmp_path, '(func (export "_start") (loop $l (br $l)))', keep="time_limit_s = 0.5"))
    assert main(["run", str(tmp_path)]) == ExitCode.WORKLOAD_TIMEOUT
    assert "time limit of 0.5 s" in capfd.readouterr().err


def test_fuel_limit_stops_a_loop(tmp_path: Path) -> None:
    with pytest.raises(WorkloadTimeout, match="ran out of fuel"):
        _run(tmp_path, '(func (export "_start") (loop $l (br $l)))', keep="fuel = 100000")


# -- direct runtime: files, stdin, directories ------------------------------------------------------

ECHO = ('(import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))'
        '(import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))'
        '(memory (export "memory") 1)'
        '(func (export "_start") (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 100))'
        ' (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))'
        ' (i32.store (i32.const 4) (i32.load (i32.const 8)))'
        ' (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))'
        ' (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8))))')


def _module(tmp_path: Path, wat: str) -> Path:
    path = tmp_path / "m.wasm"
    path.write_bytes(wasm(wat))
    return path


def test_stdin_bytes_reach_the_workload_and_outputs_stream_to_callbacks(tmp_path: Path) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    spec = runtime.RunSpec(_module(tmp_path, f"(module {ECHO})"), stdin=b"ping", stdout=out.append,
                           stderr=err.append, cache_dir=tmp_path / "cache")
    assert runtime.run(spec) == 0
    assert b"".join(out) == b"ping" and b"".join(err) == b"ping"


def test_null_files_give_eof_and_discard_output(tmp_path: Path) -> None:
    out: list[bytes] = []
    files = (File("null", "null"), File("null", "quiet"), File("stderr", "stderr"))
    err: list[bytes] = []
    spec = runtime.RunSpec(_module(tmp_path, f"(module {ECHO})"), stdin=b"secret", files=files,
                           stdout=out.append, stderr=err.append, cache_dir=tmp_path / "cache")
    assert runtime.run(spec) == 0
    assert out == [] and b"".join(err) == b""  # stdin was null: nothing read, nothing echoed


def test_socket_files_at_stdio_fds_are_refused_at_run(tmp_path: Path) -> None:
    files = (File("stdin", "stdin"), File("connect", "db", host="127.0.0.1", port=5432, prot="tcp"))
    with pytest.raises(InputError, match="fds 0-2"):
        runtime.run(runtime.RunSpec(_module(tmp_path, "(module)"), files=files))


OPEN = ('(import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) '
        '(result i32)))'
        '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        '(memory (export "memory") 1) (data (i32.const 100) "new.txt")'
        # open fd 3 (the first preopen) / "new.txt" with O_CREAT, rights fd_write; exit with the errno
        '(func (export "_start") (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 100) '
        '(i32.const 7) (i32.const 1) (i64.const 64) (i64.const 64) (i32.const 0) (i32.const 200))))')


@pytest.mark.parametrize("writable", [False, True])
def test_directories_are_read_only_unless_writable(tmp_path: Path, writable: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    spec = runtime.RunSpec(_module(tmp_path, f"(module {OPEN})"), dirs=(Dir("data", "/data", writable),),
                           base_dir=tmp_path, cache_dir=tmp_path / "cache")
    status = runtime.run(spec)
    assert (status == 0) is writable
    assert (data / "new.txt").exists() is writable


def test_no_directory_unless_enarx_toml_asks(tmp_path: Path) -> None:
    spec = runtime.RunSpec(_module(tmp_path, f"(module {OPEN})"), cache_dir=tmp_path / "cache")
    assert runtime.run(spec) == 8  # EBADF: fd 3 does not exist


# -- compiled-module cache --------------------------------------------------------------------------

def test_corrupted_cache_entry_is_detected_removed_and_rebuilt(tmp_path: Path) -> None:
    module = _module(tmp_path, f'(module {WASI_START} (func (export "_start") (call $exit (i32.const 5))))')
    cache = tmp_path / "cache"
    spec = runtime.RunSpec(module, cache_dir=cache)
    assert runtime.run(spec) == 5
    [entry] = cache.glob("*.cwasm")
    good = entry.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped bit in the native code
    entry.write_bytes(bytes(damaged))
    from enarx_pkg._internal import compiled

    assert compiled.read_entry(entry, entry.name.encode()) is None and not entry.exists()
    entry.write_bytes(bytes(damaged))
    assert runtime.run(spec) == 5
    assert entry.read_bytes() == good  # rebuilt, identical to the original


def test_cache_entry_renamed_to_another_module_is_refused(tmp_path: Path) -> None:
    from enarx_pkg._internal import compiled

    a = _module(tmp_path, f'(module {WASI_START} (func (export "_start") (call $exit (i32.const 1))))')
    cache = tmp_path / "cache"
    runtime.run(runtime.RunSpec(a, cache_dir=cache))
    [entry] = cache.glob("*.cwasm")
    other = entry.with_name("0" * 64 + entry.name[64:])
    entry.rename(other)
    assert compiled.read_entry(other, other.name.encode()) is None  # the checksum binds the key


def test_no_cache_compiles_without_writing(tmp_path: Path) -> None:
    module = _module(tmp_path, f'(module {WASI_START} (func (export "_start") (call $exit (i32.const 3))))')
    assert runtime.run(runtime.RunSpec(module, cache=False, cache_dir=tmp_path / "cache")) == 3
    assert not (tmp_path / "cache").exists()


# -- resvg: a real third-party workload ------------------------------------------------------------

SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">'
       '<rect width="64" height="48" fill="#0000ff"/><rect x="8" y="8" width="24" height="16" fill="#ff0000"/>'
       '</svg>')


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGBA/RGB PNG (what resvg writes) with zlib: width, height, rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, rows, prev = zlib.decompress(idat), [], bytearray(width * bpp)
    stride = width * bpp + 1
    for y in range(height):
        ftype, line = raw[y * stride], bytearray(raw[y * stride + 1:(y + 1) * stride])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
            line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, len(r), bpp)]


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def test_resvg_renders_an_svg_into_a_png(built_example: Callable[[str], Path]) -> None:
    layout = built_example("resvg")
    data = layout.parent.parent / "data"
    (data / "in.svg").write_text(SVG)
    assert runtime.run_path(layout.parent.parent) == 0
    width, height, pixels = _png_pixels((data / "out.png").read_bytes())
    assert (width, height) == (64, 48)
    assert pixels[0] == b"\x00\x00\xff"  # blue background, top-left
    assert pixels[12 * 64 + 16] == b"\xff\x00\x00"  # inside the red rectangle
    assert pixels[30 * 64 + 50] == b"\x00\x00\xff"  # outside it
