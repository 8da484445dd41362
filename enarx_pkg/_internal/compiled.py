"""Compiled-module cache: wasmtime's ``serialize()`` output, keyed and checksummed.

Loading a serialized module is 200-650x faster than compiling it, but ``deserialize`` trusts its
input completely (it is native code). So an entry is only used if its trailer checksum, which binds
the cache key to the bytes, matches; a damaged or mismatched entry is deleted and rebuilt, never
handed to wasmtime. The checksum is not a secret, so an entry is also refused unless the file and
its directory are ours and writable by nobody else.

Entry layout: ``payload || MAGIC || SHA-256(key || payload)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from enarx_pkg._internal import atomic, canonical
from enarx_pkg._internal.digest import parse as parse_digest

if TYPE_CHECKING:
    import wasmtime

MAGIC = b"enarx-pkg/cwasm1"
TRAILER = len(MAGIC) + 32
Kind = Literal["module", "component"]


def engine_fingerprint(fuel: bool) -> str:
    """What the compiled code depends on: wasmtime's build, the engine settings, the CPU family.

    The library file's size and mtime stand in for wasmtime's version (reading package metadata
    costs ~30 ms on every run); wasmtime also refuses artifacts from another version itself.
    """
    import wasmtime

    here = Path(wasmtime.__file__).parent
    lib = next(here.glob("*/_libwasmtime.*"), here / "__init__.py")
    st = lib.stat()
    settings = {"format": 1, "epoch": True, "fuel": fuel, "machine": platform.machine(),
                "wasmtime": f"{lib.name}:{st.st_size}:{st.st_mtime_ns}"}
    return hashlib.sha256(canonical.dumps(settings)).hexdigest()[:24]


def engine_config(fuel: bool) -> wasmtime.Config:
    """The one engine configuration used to compile and run workloads (cache entries depend on it)."""
    import wasmtime

    config = wasmtime.Config()
    config.epoch_interruption = True  # wall-time limits
    config.consume_fuel = fuel
    config.wasm_component_model = True
    return config


class CompiledCache:
    """A directory of serialized modules; :meth:`load` compiles on a miss and stores the result."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry(self, module_digest: str, kind: Kind, fingerprint: str) -> Path:
        _, hexpart = parse_digest(module_digest)
        return self.root / f"{hexpart}-{kind}-{fingerprint}.cwasm"

    def load(self, engine: wasmtime.Engine, path: Path, module_digest: str, kind: Kind,
             fingerprint: str) -> Any:
        """The compiled module (or component) for ``path``, from the cache when it is intact."""
        entry = self.entry(module_digest, kind, fingerprint)
        key = entry.name.encode()
        payload = read_entry(entry, key)
        if payload is not None:
            try:
                return _deserialize(engine, kind, payload)
            except Exception:  # wasmtime refused it (other version/settings): rebuild below
                _remove(entry)
        compiled = compile_module(engine, kind, path)
        write_entry(entry, key, compiled.serialize())
        return compiled


def read_entry(entry: Path, key: bytes) -> bytearray | None:
    """The payload of an intact entry; a missing entry gives None, a damaged one is deleted."""
    try:
        with open(entry, "rb") as f:
            if not _private(os.fstat(f.fileno())) or not _private(os.stat(entry.parent)):
                return None  # someone else could have written it: never hand it to deserialize
            data = bytearray(f.read())
    except FileNotFoundError:
        return None
    body = memoryview(data)[:-TRAILER] if len(data) > TRAILER else memoryview(b"")
    expected = bytes(data[-32:]) if len(data) > TRAILER else b""
    ok = bytes(data[-TRAILER:-32]) == MAGIC and hashlib.sha256(key + body).digest() == expected
    body.release()
    if not ok:
        _remove(entry)
        return None
    del data[-TRAILER:]  # in place: no second copy of a large artifact
    return data


def write_entry(entry: Path, key: bytes, payload: bytes | bytearray) -> None:
    entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    check = hashlib.sha256(key + payload).digest()
    with contextlib.suppress(OSError), atomic.open_atomic(entry, 0o600) as f:
        f.write(payload)
        f.write(MAGIC + check)


def compile_module(engine: wasmtime.Engine, kind: Kind, path: Path) -> Any:
    import wasmtime

    if kind == "component":
        from wasmtime.component import Component

        return Component.from_file(engine, str(path))
    return wasmtime.Module.from_file(engine, str(path))


def _deserialize(engine: wasmtime.Engine, kind: Kind, payload: bytearray) -> Any:
    import wasmtime

    if kind == "component":
        from wasmtime.component import Component

        return Component.deserialize(engine, payload)
    return wasmtime.Module.deserialize(engine, payload)


def _private(st: os.stat_result) -> bool:
    """Ours, and writable by nobody else: the checksum is unkeyed, so only the file system protects it."""
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _remove(entry: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(entry)
