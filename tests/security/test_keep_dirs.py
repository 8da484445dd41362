"""A package's ``[[keep.dirs]]`` must not preopen files of the machine that runs it.

The Enarx.toml inside a package is written by its author; the keep (and ``enarx-pkg run`` of a pulled
layout) must not let it preopen ``/`` or ``..`` — in a keep that would expose the host agent's token,
the sim platform key and other keeps' secret files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enarx_pkg._internal import seal
from enarx_pkg.build import build
from enarx_pkg.errors import InputError
from enarx_pkg.keep import workload
from enarx_pkg.runtime import run_path
from tests.build.helpers import WASI_START, wasm, wat_project

EXIT_0 = f"(module {WASI_START} (func (export \"_start\")))"
TOML = '[package]\nname = "t"\nversion = "1.0.0"\n\n[keep]\nbackends = ["sim"]\n'


def _envelope() -> seal.Envelope:
    return seal.Envelope("http://127.0.0.1:1", "t", "sha256:" + "0" * 64, os.urandom(32))


def _run_in_keep(tmp_path: Path, dirs: str) -> int:
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").mkdir()
    module = work / "module.wasm"
    module.write_bytes(wasm(EXIT_0))
    return workload.run(_envelope(), module, TOML + dirs, b"", work, lambda b: None, lambda b: None)


@pytest.mark.parametrize("host", ["/", "/etc", "..", "data/../../x", "../work-sibling"])
def test_keep_refuses_host_dir_outside_its_work_dir(tmp_path: Path, host: str) -> None:
    with pytest.raises(InputError, match=r"keep.dirs.*outside the keep's work directory"):
        _run_in_keep(tmp_path, f'\n[[keep.dirs]]\nhost = "{host}"\nguest = "/host"\nwritable = true\n')


def test_keep_still_preopens_a_dir_inside_its_work_dir(tmp_path: Path) -> None:
    assert _run_in_keep(tmp_path, '\n[[keep.dirs]]\nhost = "data"\nguest = "/data"\n') == 0


def _layout(tmp_path: Path, host: str) -> Path:
    project = wat_project(tmp_path / "p", f"{WASI_START} (func (export \"_start\"))",
                          keep=f'\n[[keep.dirs]]\nhost = "{host}"\nguest = "/host"\n')
    return build(project, tmp_path / "oci").layout


def test_run_of_a_layout_refuses_host_dir_outside_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = _layout(tmp_path, "/")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="outside the current directory"):
        run_path(layout)


def test_run_of_a_layout_allows_a_dir_below_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = _layout(tmp_path, "data")
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert run_path(layout) == 0
