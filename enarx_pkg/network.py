"""Enarx ``listen``/``connect`` files: what a run may declare, and the host sockets behind them.

Enarx semantics (both Enarx.toml dialects load into the same :class:`File` entries): each
``[[files]]`` entry is the fd of its position; ``listen`` is a TCP socket listening on
``addr``:``port`` (all addresses when ``addr`` is absent), ``connect`` a TCP stream connected to
``host``:``port`` before the workload starts. The workload can reach nothing else: WASI preview 1
has no call that opens a socket, so every connection it makes was declared.

Refused, with a message, rather than run differently from what was declared:

* ``prot = "tls"`` (Enarx's default) without a TLS identity to serve it with (``RunSpec.tls``: the
  keep's attested one, or the self-signed one ``run`` makes): serving it as plain TCP would silently
  drop the encryption.
* sockets in a WASI 0.2 component: wasmtime-py can only give a component the whole host network
  (``inherit_network``), not the declared addresses.
* sockets at fds 0-2, or together with ``[[keep.dirs]]`` (preview 1 libraries stop looking for
  preopened directories at the first fd that is not one).
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from enarx_pkg._internal.socktable import Limits
from enarx_pkg.errors import InputError, TransportError, UsageError
from enarx_pkg.manifest.model import SOCKET_KINDS, Dir, File

__all__ = ["Limits", "NetworkError", "Publish", "check_buildable", "check_mapping", "check_runnable", "open_sockets",
           "parse_mapping"]

TLS_CAPABILITY = "attested TLS (issue 13: TLS terminated inside the keep)"
BACKLOG = 128
MAX_MAPPINGS = 64
_LISTEN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class NetworkError(TransportError):
    """A declared socket could not be set up (port in use, host unreachable)."""


@dataclass(frozen=True)
class Publish:
    """How a keep binds its ``listen`` files: on ``host`` (loopback), each on the first free port of
    ``low``-``high`` (any free port when ``low`` is 0), whatever ``addr``/``port`` they declare; the
    bindings go to ``report`` before the workload starts. Only declared files are ever bound.

    ``fixed`` is the deployer's explicit mapping, ``(LISTEN, host port)`` pairs where LISTEN is a
    listen file's name or declared port: that file binds exactly that port of the range, or fails."""

    host: str = "127.0.0.1"
    low: int = 0
    high: int = 0
    report: Callable[[list[dict[str, object]]], None] | None = None
    fixed: tuple[tuple[str, int], ...] = ()

    def ports(self) -> range:
        return range(self.low, self.high + 1) if self.low else range(0, 1)

    def free_choice(self) -> list[int]:
        """The range's ports in order, less those the explicit mapping reserves for other files."""
        taken = {port for _, port in self.fixed}
        return [p for p in self.ports() if p not in taken]


def parse_mapping(items: Sequence[str], what: str = "--publish") -> tuple[tuple[str, int], ...]:
    """``HOSTPORT:LISTEN`` items (docker's ``-p`` order; LISTEN is a listen file's name or declared port)."""
    out: list[tuple[str, int]] = []
    for item in items:
        host_port, sep, listen = item.partition(":")
        if not sep or not host_port.isdigit() or not 0 < int(host_port) <= 65535 or not _LISTEN_KEY.fullmatch(listen):
            raise UsageError(f"{what} {item[:80]!r}: expected HOSTPORT:LISTEN, LISTEN a listen file's name or port",
                             hint="for example --publish 20080:web or --publish 20080:8080")
        out.append((listen, int(host_port)))
    if len(out) > MAX_MAPPINGS:
        raise UsageError(f"{what}: at most {MAX_MAPPINGS} mappings")
    for label, values in (("host port", [str(p) for _, p in out]), ("listen file", [k for k, _ in out])):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise UsageError(f"{what}: {label} {twice[0]} is mapped twice")
    return tuple(out)


def check_mapping(files: Sequence[File], fixed: Sequence[tuple[str, int]], where: str) -> None:
    """Every LISTEN of the mapping names exactly one declared listen file; nothing undeclared is bound."""
    listen = [f for _, f in sockets_of(files) if f.kind == "listen"]
    for key, port in fixed:
        matches = [f for f in listen if _key_matches(key, f)]
        if len(matches) != 1:
            declared = ", ".join(f"{f.name} ({f.port or 443})" for f in listen) or "none"
            problem = "is no listen file" if not matches else "matches several listen files (name one)"
            raise InputError(f"{where}: the port mapping {port}:{key} {problem} of this workload "
                             f"(declared: {declared})", hint="map a declared listen file, by name or port")


def _key_matches(key: str, f: File) -> bool:
    return key == f.name if not key.isdigit() else int(key) == (f.port or 443)


def sockets_of(files: Sequence[File]) -> list[tuple[int, File]]:
    return [(fd, f) for fd, f in enumerate(files) if f.kind in SOCKET_KINDS]


def check_buildable(files: Sequence[File], dirs: Sequence[Dir], kind: str, where: Path | str) -> None:
    """Refuse what no runtime of ours can honour, whatever the keep: raised by ``build`` and ``run``."""
    found = sockets_of(files)
    if not found:
        return
    names = ", ".join(f"{f.name} ({f.kind})" for _, f in found)
    if kind == "component":
        raise InputError(f"{where} declares socket files {names} for a WASI 0.2 component: wasmtime-py can "
                         "only give a component the whole host network, not just the declared addresses",
                         hint="build a WASI preview 1 module (wasm32-wasi / wasip1) for network workloads")
    low = [f"{f.name} (fd {fd})" for fd, f in found if fd < 3]
    if low:
        raise InputError(f"{where}: socket file {low[0]} is at fds 0-2, which are stdin, stdout and stderr "
                         "here", hint="list the stdio files first, then the listen/connect files")
    if dirs:
        raise InputError(f"{where} declares socket files {names} and [[keep.dirs]]: preview 1 libraries "
                         "stop looking for preopened directories at the first socket fd",
                         hint="drop [[keep.dirs]] from a network workload, or the sockets")


def check_runnable(files: Sequence[File], dirs: Sequence[Dir], kind: str, where: Path | str, *,
                   tls: bool = False) -> None:
    """:func:`check_buildable`, and refuse ``prot = "tls"`` unless the keep terminates TLS (``tls``)."""
    check_buildable(files, dirs, kind, where)
    declared = [f.name for _, f in sockets_of(files) if f.prot == "tls"]
    if declared and not tls:
        tls_name = declared[0]
        raise InputError(f"{where}: socket file {tls_name!r} has prot = \"tls\" (Enarx's default), which needs "
                         f"{TLS_CAPABILITY}; it is refused rather than served as plain TCP",
                         hint='set prot = "tcp" for a plain TCP socket (TLS then is the workload\'s own job)')


@contextlib.contextmanager
def open_sockets(files: Sequence[File], limits: Limits,
                 publish: Publish | None = None) -> Iterator[list[tuple[int, str, socket.socket]]]:
    """Bind every ``listen`` and connect every ``connect`` file; all are closed on exit or failure.

    With ``publish`` (a keep), listen files are bound where it says and the bindings reported."""
    opened: list[tuple[int, str, socket.socket]] = []
    endpoints: list[dict[str, object]] = []
    if publish is not None:
        check_mapping(files, publish.fixed, "the deploy request")
    try:
        for fd, f in sockets_of(files):
            if f.kind == "listen" and publish is not None:
                sock = _published(f, limits, publish)
                endpoints.append({"name": f.name, "port": f.port or 443, "address": _where(*sock.getsockname()[:2])})
            else:
                sock = _listen(f, limits) if f.kind == "listen" else _connect(f, limits)
            opened.append((fd, f.kind, sock))
        if publish is not None and publish.report is not None:
            publish.report(endpoints)
        yield opened
    finally:
        for _, _, sock in opened:
            sock.close()


def _published(f: File, limits: Limits, publish: Publish) -> socket.socket:
    """The declared listen file bound on the keep host's loopback address, on a port of its range
    (the one the explicit mapping names, if it names this file)."""
    fixed = [port for key, port in publish.fixed if _key_matches(key, f)]
    if fixed:
        if fixed[0] not in publish.ports():
            raise NetworkError(f"listen file {f.name!r}: port {fixed[0]} is outside this host's publish range "
                               f"{publish.low}-{publish.high}")
        return _listen(f, limits, publish.host, fixed[0])
    for port in publish.free_choice():
        try:
            return _listen(f, limits, publish.host, port)
        except NetworkError:
            continue
    raise NetworkError(f"listen file {f.name!r}: no free port in this host's publish range "
                       f"{publish.low}-{publish.high}", hint="stop keeps you no longer need, or use another host")


def _listen(f: File, limits: Limits, host: str | None = None, port: int | None = None) -> socket.socket:
    addr = host or f.addr or "::"
    port = (f.port or 443) if port is None else port
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and addr == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # all addresses, v4 too
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # accepted connections inherit both
            sock.setsockopt(socket.SOL_SOCKET, opt, limits.buffer_bytes)
        sock.bind((addr, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
        raise NetworkError(f"listen file {f.name!r}: {_where(addr, port)} {reason}",
                           hint="stop what holds the port, or declare another port in Enarx.toml") from None
    return sock


def _connect(f: File, limits: Limits) -> socket.socket:
    where = _where(f.host or "", f.port)
    try:
        sock = socket.create_connection((f.host, f.port or 443), timeout=limits.connect_timeout_s)
    except OSError as exc:
        raise NetworkError(f"connect file {f.name!r}: cannot connect to {where}: "
                           f"{exc.strerror or type(exc).__name__}") from None
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, limits.buffer_bytes)
    return sock


def _where(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
