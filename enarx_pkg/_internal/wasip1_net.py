"""WASI preview 1 calls on socket fds, served in Python beside wasmtime's own WASI.

wasmtime-py has no socket preopens, so the guest's fd-taking imports (and ``poll_oneoff``) are
shadowed by Python functions: a call on a socket fd is served by a :class:`SocketTable`; a call on
any other fd goes on to wasmtime's real WASI function. wasmtime's functions find memory through the
*calling instance's* ``memory`` export, so they are reached through a small helper instance that
imports the guest's memory, re-exports it, and wraps each real function.

Layouts are those of ``wasi_snapshot_preview1.witx`` (little-endian, wasm32 pointers).
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Callable
from typing import Any

from enarx_pkg._internal import rawhost
from enarx_pkg._internal.socktable import (
    BADF,
    CLOCK,
    FD_READ,
    FD_WRITE,
    INVAL,
    NONBLOCK,
    NOTSUP,
    Conn,
    Errno,
    Event,
    SocketTable,
    Sub,
)

P1 = "wasi_snapshot_preview1"
FAULT, NOTDIR, SPIPE = 21, 54, 70
MAX_IOVS = 1024
MAX_SUBS = 4096
SOCKET_STREAM = 6  # filetype
# rights: read, set flags, write, filestat, poll, shutdown / set flags, filestat, poll, accept
_CONN_RIGHTS = (1 << 1) | (1 << 3) | (1 << 6) | (1 << 21) | (1 << 27) | (1 << 28)
_LISTEN_RIGHTS = (1 << 3) | (1 << 21) | (1 << 27) | (1 << 29)
# which parameters are fds, where it is not only the first
FD_PARAMS = {"fd_renumber": (0, 1), "path_link": (0, 4), "path_rename": (0, 3), "path_symlink": (2,)}
FD_FUNCS = frozenset({
    "fd_advise", "fd_allocate", "fd_close", "fd_datasync", "fd_fdstat_get", "fd_fdstat_set_flags",
    "fd_fdstat_set_rights", "fd_filestat_get", "fd_filestat_set_size", "fd_filestat_set_times", "fd_pread",
    "fd_prestat_get", "fd_prestat_dir_name", "fd_pwrite", "fd_read", "fd_readdir", "fd_renumber", "fd_seek",
    "fd_sync", "fd_tell", "fd_write", "path_create_directory", "path_filestat_get", "path_filestat_set_times",
    "path_link", "path_open", "path_readlink", "path_remove_directory", "path_rename", "path_symlink",
    "path_unlink_file", "sock_accept", "sock_recv", "sock_send", "sock_shutdown",
})
# what other calls on a socket fd answer
_REFUSED = {"fd_seek": SPIPE, "fd_tell": SPIPE, "fd_prestat_get": BADF, "fd_prestat_dir_name": BADF}


class Wasip1Net:
    """Link the shadows into a linker before instantiating, :meth:`attach` after, before ``_start``."""

    def __init__(self, table: SocketTable) -> None:
        self.table = table
        self.real: dict[str, Any] = {}
        self.types: dict[str, Any] = {}
        self.memory: Any = None
        self._callbacks: list[Any] = []  # the C callbacks must outlive every call into the guest
        self._cached: tuple[int, int, memoryview] | None = None

    def link(self, linker: Any, module: Any) -> None:
        """Shadow every fd-taking preview 1 function ``module`` imports (wasmtime's WASI already defined)."""
        linker.allow_shadowing = True
        for imp in module.imports:
            name = imp.name
            if imp.module == P1 and (name in FD_FUNCS or name == "poll_oneoff"):
                self.types[name] = imp.type
                self._callbacks.append(rawhost.define(linker, P1, name, imp.type, self._shadow(name, imp.type)))

    def attach(self, store: Any, engine: Any, instance: Any) -> None:
        """Find the guest's memory and instantiate the helper that reaches wasmtime's real functions."""
        import wasmtime

        memory = instance.exports(store).get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise Errno(FAULT)
        self.memory = memory
        self._span = rawhost.MemoryRef(memory).span
        helper = wasmtime.Linker(engine)
        helper.define_wasi()
        helper.define(store, "env", "memory", memory)
        inst = helper.instantiate(store, wasmtime.Module(engine, _helper_wat(self.types)))
        exports = inst.exports(store)
        self.real = {name: exports[name] for name in self.types}

    def _shadow(self, name: str, ty: Any) -> rawhost.Handler:
        """The raw handler of ``name``: socket fds to the table, every other fd on to wasmtime."""
        fd_params = FD_PARAMS.get(name, (0,))
        wide = tuple(str(p) == "i64" for p in ty.params)
        count = max(len(ty.params), len(ty.results))
        handler = self._poll if name == "poll_oneoff" else getattr(self, "_" + name, None)
        refused = _REFUSED.get(name, NOTDIR if name.startswith("path_") else NOTSUP)
        items = self.table.items  # the hot path: one dict lookup decides socket or wasmtime

        def shadow(context: Any, slots: Any) -> int:
            if name != "poll_oneoff" and slots[0].i32 not in items \
                    and not any(slots[i].i32 in items for i in fd_params[1:]):
                return rawhost.call(context, self.real[name], slots, count)
            args = [slots[i].i64 if w else slots[i].i32 & 0xFFFFFFFF for i, w in enumerate(wide)]
            if handler is None:
                result = refused
            elif self.memory is None:  # called before attach (a start function): nothing is set up yet
                result = NOTSUP
            else:
                result = self._serve(context, handler, args)
            if result < 0:  # poll_oneoff handed the call on to wasmtime
                return rawhost.call(context, self.real[name], slots, count)
            slots[0].i32 = result
            return 0

        return shadow

    def _serve(self, context: Any, handler: Callable[..., int], args: list[int]) -> int:
        try:
            return int(handler(self._view(context), *args))
        except Errno as exc:
            return exc.code
        except struct.error:
            return FAULT

    def _view(self, context: Any) -> memoryview:
        """The guest's whole memory; rebuilt only when a grow has moved or resized it."""
        addr, size = self._span(context)
        cached = self._cached
        if cached is None or cached[0] != addr or cached[1] != size:
            cached = self._cached = (addr, size, memoryview((ctypes.c_ubyte * size).from_address(addr)).cast("B"))
        return cached[2]

    # -- the calls served for socket fds ---------------------------------------------------------

    def _fd_read(self, view: memoryview, fd: int, iovs: int, n: int, out: int) -> int:
        return _put_u32(view, out, self.table.recv(fd, _iovecs(view, iovs, n), peek=False))

    def _fd_write(self, view: memoryview, fd: int, iovs: int, n: int, out: int) -> int:
        return _put_u32(view, out, self.table.send(fd, _iovecs(view, iovs, n)))

    def _sock_recv(self, view: memoryview, fd: int, iovs: int, n: int, flags: int, out: int, out_flags: int) -> int:
        got = self.table.recv(fd, _iovecs(view, iovs, n), peek=bool(flags & 1))
        _put_u32(view, out_flags, 0)
        return _put_u32(view, out, got)

    def _sock_send(self, view: memoryview, fd: int, iovs: int, n: int, _flags: int, out: int) -> int:
        return _put_u32(view, out, self.table.send(fd, _iovecs(view, iovs, n)))

    def _sock_accept(self, view: memoryview, fd: int, flags: int, out: int) -> int:
        return _put_u32(view, out, self.table.accept(fd, flags))

    def _sock_shutdown(self, _view: memoryview, fd: int, how: int) -> int:
        self.table.shutdown(fd, how)
        return 0

    def _fd_close(self, _view: memoryview, fd: int) -> int:
        self.table.close(fd)
        return 0

    def _fd_fdstat_get(self, view: memoryview, fd: int, out: int) -> int:
        item = self.table.get(fd)
        rights = _CONN_RIGHTS if isinstance(item, Conn) else _LISTEN_RIGHTS
        flags = NONBLOCK if self.table.flags_seen(fd) else 0
        struct.pack_into("<BxHxxxxQQ", view, out, SOCKET_STREAM, flags, rights, rights)
        return 0

    def _fd_fdstat_set_flags(self, _view: memoryview, fd: int, flags: int) -> int:
        if flags & ~NONBLOCK:
            raise Errno(NOTSUP)
        self.table.set_nonblocking(fd, bool(flags & NONBLOCK))
        return 0

    def _fd_filestat_get(self, view: memoryview, fd: int, out: int) -> int:
        self.table.get(fd)
        struct.pack_into("<QQBxxxxxxxQQQQQ", view, out, 0, 0, SOCKET_STREAM, 1, 0, 0, 0, 0)
        return 0

    # -- poll_oneoff -------------------------------------------------------------------------------

    def _poll(self, view: memoryview, subs_ptr: int, events_ptr: int, count: int, out: int) -> int:
        """poll_oneoff; -1 hands a poll that names no socket fd on to wasmtime."""
        if not 0 < count <= MAX_SUBS:
            raise Errno(INVAL)
        subs = [_sub(view, subs_ptr + 48 * i) for i in range(count)]
        if not any(s.kind != CLOCK and self.table.owns(s.fd) for s in subs):
            return -1
        events = self.table.poll(subs)
        for i, event in enumerate(events):
            _put_event(view, events_ptr + 32 * i, event)
        return _put_u32(view, out, len(events))


def _iovecs(view: memoryview, ptr: int, count: int) -> list[memoryview]:
    if count > MAX_IOVS:
        raise Errno(INVAL)
    out = []
    for i in range(count):
        buf, length = struct.unpack_from("<II", view, ptr + 8 * i)
        if buf + length > len(view):
            raise Errno(FAULT)
        out.append(view[buf:buf + length])
    return out


def _put_u32(view: memoryview, ptr: int, value: int) -> int:
    struct.pack_into("<I", view, ptr, value)
    return 0


def _sub(view: memoryview, at: int) -> Sub:
    userdata, tag = struct.unpack_from("<QB", view, at)
    if tag in (FD_READ, FD_WRITE):
        return Sub(userdata, tag, fd=struct.unpack_from("<I", view, at + 16)[0])
    if tag != CLOCK:
        raise Errno(INVAL)
    clock_id, timeout, _precision, flags = struct.unpack_from("<IxxxxQQH", view, at + 16)
    if flags & 1:  # absolute: only the realtime clock has an epoch we share with the guest
        if clock_id != 0:
            raise Errno(NOTSUP)
        timeout = max(0, timeout - time.time_ns())
    return Sub(userdata, CLOCK, due=time.monotonic() + timeout / 1e9)


def _put_event(view: memoryview, at: int, event: Event) -> None:
    struct.pack_into("<QHBxxxxxQHxxxxxx", view, at, event.sub.userdata, event.error, event.sub.kind,
                     0 if event.error else 1, 1 if event.hangup else 0)


def _helper_wat(types: dict[str, Any]) -> str:
    """A module exporting the guest's memory and a pass-through for each real WASI function."""
    imports, funcs = ['(module (import "env" "memory" (memory 0)) (export "memory" (memory 0))'], []
    for i, (name, ty) in enumerate(sorted(types.items())):
        params = " ".join(str(p) for p in ty.params)
        results = " ".join(str(r) for r in ty.results)
        sig = (f"(param {params})" if params else "") + (f" (result {results})" if results else "")
        body = " ".join(f"local.get {j}" for j in range(len(ty.params)))
        imports.append(f'(import "{P1}" "{name}" (func $f{i} {sig}))')  # imports come first in a module
        funcs.append(f'(func (export "{name}") {sig} {body} call $f{i})')
    parts = imports + funcs
    return "\n".join(parts) + ")"
