"""The same commit gives the same package digest from any checkout directory, for every example.

Each example is built once by the session fixture (in one temp directory) and once more here in
another, with a longer path at a different depth: debug info with absolute paths, or a toolchain
that records its working directory, would show up as a different digest. The Python example
(componentize-py, which snapshots a CPython run) is built on the frozen host; it is also rebuilt in
place on another filesystem with another TMPDIR.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from enarx_pkg.build import build
from enarx_pkg.package import Layout
from tests.fixtures.examples import NAMES, copy_example


def _manifest_and_module(layout_dir: Path) -> tuple[str, str]:
    layout = Layout.open(layout_dir)
    desc = layout.resolve(None)
    return desc.digest, layout.manifest(desc.digest).layers[0].digest


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_example_digest_is_independent_of_the_checkout_path(
        name: str, built_example: Callable[[str], Path], tmp_path: Path) -> None:
    first = _manifest_and_module(built_example(name))
    elsewhere = copy_example(name, tmp_path / "another" / "checkout" / "of-the-repo" / name)
    second = _manifest_and_module(build(elsewhere).layout)
    assert second == first, f"{name}: module {first[1]} in one directory, {second[1]} in another"


@pytest.mark.slow
def test_python_example_is_the_same_rebuilt_in_place_on_another_filesystem(
        built_example: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """componentize-py snapshots a CPython run: on the frozen host its listings, file metadata, clock
    and entropy do not depend on the filesystem or TMPDIR, and the run leaves no bytecode cache for
    the next build to load instead of the source."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev or not os.access(shm, os.W_OK):
        pytest.skip("needs a writable /dev/shm on another filesystem than the temporary directory")
    first = _manifest_and_module(built_example("python"))
    with tempfile.TemporaryDirectory(dir=shm) as other:
        monkeypatch.setenv("TMPDIR", other)
        project = copy_example("python", Path(other) / "python")
        assert _manifest_and_module(build(project).layout) == first
        assert not list(project.rglob("__pycache__")), "the build left a bytecode cache in the project"
        assert _manifest_and_module(build(project).layout) == first


def test_release_c_build_strips_debug_info_and_debug_keeps_it(tmp_path: Path) -> None:
    from enarx_pkg._internal.recipes import recipe_argv
    from enarx_pkg.manifest.model import Build

    release = recipe_argv(Build(output="o.wasm", recipe="c", sources=("a.c",)), tmp_path)
    debug = recipe_argv(Build(output="o.wasm", recipe="c", sources=("a.c",), debug=True), tmp_path)
    assert release is not None and debug is not None
    assert "-s" in release and "-g" not in release and "-g" in debug and "-s" not in debug
    assert f"-ffile-prefix-map={tmp_path}=." in release and f"-ffile-prefix-map={tmp_path}=." in debug


@pytest.mark.slow
def test_debug_build_keeps_dwarf(tmp_path: Path) -> None:
    """``debug = true`` keeps DWARF. Such a build is NOT path-independent (docs/build.md): zig compiles its
    libc with the directory of the first debug build on the machine as the compilation directory and
    caches it, and the DWARF names zig's cache and its installed sources."""
    project = copy_example("c", tmp_path / "c")
    text = (project / "Enarx.toml").read_text().replace('recipe = "c"', 'recipe = "c"\ndebug = true')
    (project / "Enarx.toml").write_text(text)
    layout = Layout.open(build(project).layout)
    wasm = layout.manifest(layout.resolve(None).digest).layers[0]
    assert wasm.size > 200_000  # DWARF kept: hello is ~970 KB with it, ~24 KB without
    assert b".debug_info" in (project / "target" / "hello.wasm").read_bytes()
