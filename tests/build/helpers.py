"""Small projects written on the fly for the build/run tests."""

from __future__ import annotations

from pathlib import Path

import wasmtime

WASI_START = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32))) (memory (export "memory") 1)'


def wat_project(root: Path, body: str, keep: str = "", extra: str = "", name: str = "t") -> Path:
    """A project whose module is ``(module <body>)`` in WAT, built with the wat recipe."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "m.wat").write_text(f"(module {body})")
    (root / "Enarx.toml").write_text(
        f'{extra}\n[package]\nname = "{name}"\nversion = "1.0.0"\n\n'
        '[build]\nrecipe = "wat"\nsources = ["m.wat"]\noutput = "m.wasm"\n\n'
        f'[keep]\nbackends = ["sim"]\n{keep}\n')
    return root


def prebuilt_project(root: Path, wasm: bytes, output: str = "m.wasm", extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "m.wasm").write_bytes(wasm)
    (root / "Enarx.toml").write_text(
        f'{extra}\n[package]\nname = "t"\nversion = "1.0.0"\n\n'
        f'[build]\nrecipe = "prebuilt"\noutput = "{output}"\n')
    return root


def wasm(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))
