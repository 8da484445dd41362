"""Host functions for wasmtime-py without its per-call value conversions (the socket layer's hot path).

``Linker.define_func`` wraps every argument and result in ``Val`` objects, which costs more than the
socket call itself; the socket layer runs on every read and write, so it defines its functions with
wasmtime's *unchecked* C API instead: arguments and results share one raw array of 16-byte slots.
An exception raised by a handler is handed to wasmtime-py the way its own trampoline does, so it is
re-raised from the Python call that entered the guest.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime
import wasmtime._func as _wasmtime_func
from wasmtime import _ffi as ffi

# (context address, raw slots) -> 0, or the address of a trap to raise in the guest
Handler = Callable[[Any, Any], int]
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a NULL function pointer: nothing to free


def _raw(name: str, restype: Any, *argtypes: Any) -> Any:
    """A private prototype of a wasmtime C function taking and returning plain addresses (no wrappers)."""
    fn = ffi.dll[name]  # indexing makes a new function object; wasmtime-py's own stays as it is
    fn.restype, fn.argtypes = restype, argtypes
    return fn


_VOID = ctypes.c_void_p
_caller_context = _raw("wasmtime_caller_context", _VOID, _VOID)
_memory_data = _raw("wasmtime_memory_data", _VOID, _VOID, _VOID)
_memory_data_size = _raw("wasmtime_memory_data_size", ctypes.c_size_t, _VOID, _VOID)
_func_call = _raw("wasmtime_func_call_unchecked", _VOID, _VOID, _VOID, _VOID, ctypes.c_size_t, _VOID)


def define(linker: wasmtime.Linker, module: str, name: str, ty: wasmtime.FuncType, handler: Handler) -> Any:
    """Define ``module.name`` in ``linker``; keep the returned callback alive as long as the linker's instances."""

    @ffi.wasmtime_func_unchecked_callback_t  # type: ignore[untyped-decorator]
    def callback(_env: Any, caller: Any, slots: Any, _count: int) -> int:
        try:
            return handler(_caller_context(caller), slots)
        except BaseException as exc:  # every exception must reach wasmtime-py, never the C stack
            _wasmtime_func.LAST_EXCEPTION = exc  # type: ignore[assignment]
            return int(ctypes.cast(wasmtime.Trap("python exception")._consume(), ctypes.c_void_p).value or 0)

    mod, fn = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(linker.ptr(), ctypes.create_string_buffer(mod), len(mod),
                                                       ctypes.create_string_buffer(fn), len(fn), ty.ptr(),
                                                       callback, None, _NO_FINALIZER)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return callback


def call(context: int, func: wasmtime.Func, slots: Any, count: int) -> int:
    """Call ``func`` with the caller's own slots (same signature); 0, or the address of its trap."""
    trap = ctypes.c_void_p()
    error = _func_call(context, ctypes.byref(func._func), slots, count, ctypes.byref(trap))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))
    return trap.value or 0


class MemoryRef:
    """Where a memory's data is right now, asked of wasmtime on each call (a grow may move it)."""

    def __init__(self, memory: wasmtime.Memory) -> None:
        self._ref = ctypes.byref(memory._memory)

    def span(self, context: int) -> tuple[int, int]:
        """(address, size in bytes)."""
        return _memory_data(context, self._ref) or 0, _memory_data_size(context, self._ref)
