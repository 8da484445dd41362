"""Is this a workload the keep can run? WASI preview 1 commands and WASI 0.2 command components only.

A core module may import only from ``wasi_snapshot_preview1``/``wasi_unstable`` (read from its
import section) and must pass wasmtime's validator. A component must export ``wasi:cli/run@0.2.x``
and import nothing but the WASI 0.2 packages wasmtime provides; it is compiled once to find that
out, and the compiled form goes into the run cache so the first ``run`` is already warm.
"""

from __future__ import annotations

import ctypes
import mmap
from dataclasses import dataclass, field
from pathlib import Path

from enarx_pkg._internal import wasmbin
from enarx_pkg.errors import BuildError

WASI_P1_MODULES = frozenset({"wasi_snapshot_preview1", "wasi_unstable"})
WASI_P2_PACKAGES = frozenset({"io", "clocks", "random", "cli", "filesystem", "sockets"})
CLI_RUN_PREFIX = "wasi:cli/run@0.2."
MAX_LISTED = 20


@dataclass(frozen=True)
class ModuleInfo:
    kind: wasmbin.Kind
    os: str  # "wasip1" or "wasip2", as the CNCF wasm config names them
    imports: tuple[str, ...] = ()
    exports: tuple[str, ...] = field(default=())
    initial_memory: int = 0  # bytes a core module's memory starts with (0: unknown or none)


def check(path: Path, digest: str, fuel: bool) -> ModuleInfo:
    """Check ``path`` and describe it, or raise :class:`BuildError` saying what is wrong."""
    kind = wasmbin.kind_of(path)
    if kind == "module":
        return _check_module(path)
    return _check_component(path, digest, fuel)


def _check_module(path: Path) -> ModuleInfo:
    core = wasmbin.core_info(path)
    imports = core.imports
    foreign = [str(i) for i in imports if i.module not in WASI_P1_MODULES]
    if foreign:
        raise BuildError(f"{path} imports {len(foreign)} function(s) that are not WASI preview 1: "
                         + _listing(foreign),
                         hint="a keep provides only wasi_snapshot_preview1; link or stub these imports")
    _validate(path)
    return ModuleInfo("module", "wasip1", tuple(str(i) for i in imports), initial_memory=core.initial_memory)


def _validate(path: Path) -> None:
    """wasmtime's full validation, reading the file through a private mapping (no extra copy)."""
    import wasmtime
    from wasmtime import _ffi as ffi

    from enarx_pkg._internal import compiled

    engine = wasmtime.Engine(compiled.engine_config(False))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as m:
        size = len(m)
        buf = (ctypes.c_uint8 * size).from_buffer(m)
        try:
            error = ffi.wasmtime_module_validate(engine.ptr(), buf, size)
        finally:
            del buf  # the mapping cannot close while a ctypes view of it is alive
        if error:
            exc = wasmtime.WasmtimeError._from_ptr(error)
            raise BuildError(f"{path} is not a valid WebAssembly module: {_first_line(exc)}")


def _check_component(path: Path, digest: str, fuel: bool) -> ModuleInfo:
    import wasmtime

    from enarx_pkg._internal import compiled
    from enarx_pkg._internal.cachedir import user_cache_dir

    engine = wasmtime.Engine(compiled.engine_config(fuel))
    cache = compiled.CompiledCache(user_cache_dir("compiled"))
    try:
        component = cache.load(engine, path, digest, "component", compiled.engine_fingerprint(fuel))
    except wasmtime.WasmtimeError as exc:
        raise BuildError(f"{path} is not a valid WebAssembly component: {_first_line(exc)}") from None
    imports = tuple(sorted(component.type.imports(engine)))
    exports = tuple(sorted(component.type.exports(engine)))
    if not any(e.startswith(CLI_RUN_PREFIX) for e in exports):
        raise BuildError(f"{path} is a component of the wrong world: it exports {_listing(list(exports))}, "
                         "not wasi:cli/run@0.2.x",
                         hint="build it for the wasi:cli/command world (a command component)")
    foreign = [i for i in imports if not _is_wasi_p2(i)]
    if foreign:
        raise BuildError(f"{path} imports {len(foreign)} interface(s) that are not WASI 0.2: "
                         + _listing(foreign), hint="a keep provides only the wasi:cli/command imports")
    return ModuleInfo("component", "wasip2", imports, exports)


def _is_wasi_p2(name: str) -> bool:
    package, _, rest = name.partition("/")
    namespace, _, pkg = package.partition(":")
    return namespace == "wasi" and pkg in WASI_P2_PACKAGES and "@0.2." in rest


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (and {len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
