"""What `build` refuses before packaging, and that a refused build leaves no layout behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from enarx_pkg._cli.main import main
from tests.build.helpers import prebuilt_project, wasm, wat_project

START = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32))) (func (export "_start"))'


def test_missing_source_is_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = wat_project(tmp_path / "p", START)
    (root / "m.wat").unlink()
    assert main(["build", str(root)]) == 66
    err = capsys.readouterr().err
    assert "m.wat, which does not exist" in err and "Traceback" not in err
    assert not (root / "target").exists()


def test_missing_prebuilt_module_is_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = prebuilt_project(tmp_path / "p", b"", output="gone.wasm")
    assert main(["build", str(root)]) == 66
    assert "gone.wasm, which does not exist" in capsys.readouterr().err


def test_failed_check_leaves_no_empty_target_oci(tmp_path: Path) -> None:
    root = prebuilt_project(tmp_path / "p", b"not wasm at all")
    assert main(["build", str(root)]) == 70
    assert not (root / "target").exists()


def test_failed_rebuild_keeps_the_earlier_layout(tmp_path: Path) -> None:
    root = prebuilt_project(tmp_path / "p", wasm(f"(module {START} (memory (export \"memory\") 1))"))
    assert main(["build", str(root)]) == 0
    (root / "m.wasm").write_bytes(b"broken")
    assert main(["build", str(root)]) == 70
    assert (root / "target" / "oci" / "index.json").is_file()


def test_initial_memory_over_memory_mb_is_refused_at_build(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # 320 pages of 64 KiB = 20 MiB, over the 16 MiB the keep allows
    root = wat_project(tmp_path / "p", f'{START} (memory (export "memory") 320)', keep="memory_mb = 16")
    assert main(["build", str(root)]) == 70
    err = capsys.readouterr().err
    assert "starts with 20 MiB of linear memory, over [keep] memory_mb = 16" in err
    assert "at least 20" in err and not (root / "target" / "oci").exists()
    ok = wat_project(tmp_path / "q", f'{START} (memory (export "memory") 256)', keep="memory_mb = 16")
    assert main(["build", str(ok)]) == 0  # exactly 16 MiB fits
