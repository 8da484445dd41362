"""The workload's sockets, by WASI fd: accept, receive, send, shut down, close, and readiness.

Pure host-side socket logic with WASI errno semantics (:class:`Errno`); ``wasip1_net`` decodes the
guest's memory and calls this. Every host socket is non-blocking; a guest call that would block
waits here in short slices, so the run's time limit (``check_stop``) is noticed within
:data:`SLICE_S` even while the workload sleeps in ``accept`` or ``recv``.

Abuse is bounded here, not in the workload:

* **Deferred accept** (like Linux ``TCP_DEFER_ACCEPT``): an incoming connection reaches the
  workload only once its client has sent a byte. Until then it waits in a pool of at most
  ``max_pending`` (the oldest is dropped when a new one arrives) and is dropped after
  ``idle_timeout_s``, so idle connections never occupy a single-threaded server.
* At most ``max_connections`` accepted connections are open in the workload at once; beyond that
  ``sock_accept`` fails with ``EMFILE``, as a kernel would.
* While the workload waits on an accepted connection: nothing either way for ``idle_timeout_s``,
  or bytes received and nothing sent back for ``request_timeout_s`` (slowloris), resets it.
* Kernel buffers are ``buffer_bytes`` per direction per socket; nothing is buffered in Python.

Declared sockets report ``O_NONBLOCK`` (Go's ``os.NewFile`` polls only a descriptor that says so;
its wasip1 runtime is single-threaded, so a blocking accept would stall every goroutine), but
behave as blocking until the workload has looked at their flags (``fd_fdstat_get``): Rust's std and
C programs that never ask get the blocking calls they assume.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SLICE_S = 0.2
# WASI preview 1 errno values (wasi_snapshot_preview1.witx)
AGAIN, BADF, CONNRESET, INVAL, MFILE, NOTCONN, NOTSOCK, NOTSUP, PIPE, TIMEDOUT = 6, 8, 15, 28, 33, 53, 57, 58, 64, 73
NONBLOCK = 4  # fdflags
SHUT_RD, SHUT_WR = 1, 2  # sdflags


CLOCK, FD_READ, FD_WRITE = 0, 1, 2  # eventtype
_MASK = {FD_READ: select.POLLIN | select.POLLRDHUP, FD_WRITE: select.POLLOUT}
_HANGUP = select.POLLHUP | select.POLLRDHUP | select.POLLERR


class Stopped(Exception):
    """The run must end (its time limit passed) while the workload waited on a socket."""


class Errno(Exception):
    """A WASI error number for the guest (not an error of the run)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    max_pending: int = 128
    buffer_bytes: int = 1 << 20
    idle_timeout_s: float = 30.0
    request_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class Sub:
    """One poll_oneoff subscription: a clock (``due`` on time.monotonic) or an fd read/write."""

    userdata: int
    kind: int
    fd: int = -1
    due: float = 0.0


@dataclass(frozen=True)
class Event:
    sub: Sub
    error: int = 0
    hangup: bool = False


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    policed: bool  # accepted from a client (timeouts apply); False for the workload's own connect
    nonblocking: bool | None = None  # None: declared, flags not looked at yet (reports NONBLOCK, blocks)
    last_io: float = field(default_factory=time.monotonic)
    unanswered_since: float | None = None  # first byte received since the workload last sent
    dead: int = 0  # errno once the host reset it
    idle_s: float = 30.0
    request_s: float = 60.0

    def deadline(self) -> float:
        if not self.policed:
            return float("inf")
        limit = self.last_io + self.idle_s
        if self.unanswered_since is not None:
            limit = min(limit, self.unanswered_since + self.request_s)
        return limit


@dataclass(eq=False)
class Listener:
    sock: socket.socket
    nonblocking: bool | None = None  # as for Conn
    pending: dict[int, tuple[socket.socket, float]] = field(default_factory=dict)  # silent so far, oldest first
    ready: collections.deque[socket.socket] = field(default_factory=collections.deque)  # client has spoken
    ep: select.epoll = field(default_factory=select.epoll)


class SocketTable:
    """fd → host socket for one run. ``check_stop`` raises when the run must end."""

    def __init__(self, entries: Sequence[tuple[int, str, socket.socket]], limits: Limits,
                 check_stop: Callable[[], None]) -> None:
        self.limits = limits
        self.check_stop = check_stop
        self.items: dict[int, Listener | Conn] = {}
        for fd, kind, sock in entries:
            sock.setblocking(False)
            if kind == "listen":
                lst = Listener(sock)
                lst.ep.register(sock.fileno(), select.EPOLLIN)
                self.items[fd] = lst
            else:
                self.items[fd] = self._conn(sock, policed=False)
        self.next_fd = max(self.items, default=2) + 1
        self.held = 0  # accepted connections open in the workload

    def owns(self, fd: int) -> bool:
        return fd in self.items

    def _conn(self, sock: socket.socket, policed: bool) -> Conn:
        return Conn(sock, policed, idle_s=self.limits.idle_timeout_s, request_s=self.limits.request_timeout_s)

    def get(self, fd: int) -> Listener | Conn:
        item = self.items.get(fd)
        if item is None:
            raise Errno(BADF)
        return item

    def conn(self, fd: int) -> Conn:
        item = self.get(fd)
        if not isinstance(item, Conn):
            raise Errno(NOTCONN)
        return item

    def listener(self, fd: int) -> Listener:
        item = self.get(fd)
        if not isinstance(item, Listener):
            raise Errno(NOTSOCK if not isinstance(item, Conn) else INVAL)
        return item

    # -- accept ---------------------------------------------------------------------------------

    def accept(self, fd: int, flags: int) -> int:
        """A new fd for a connection whose client has spoken; blocks unless the listener is non-blocking."""
        lst = self.listener(fd)
        if flags & ~NONBLOCK:
            raise Errno(INVAL)
        if self.held >= self.limits.max_connections:
            raise Errno(MFILE)
        while True:
            sock = self._take_ready(lst)
            if sock is not None:
                return self._install(sock, bool(flags & NONBLOCK))
            if lst.nonblocking:
                raise Errno(AGAIN)
            self.check_stop()
            lst.ep.poll(SLICE_S)

    def _install(self, sock: socket.socket, nonblocking: bool) -> int:
        while self.next_fd in self.items:
            self.next_fd += 1
        fd = self.next_fd
        conn = self._conn(sock, policed=True)
        conn.nonblocking = nonblocking
        self.items[fd] = conn
        self.held += 1
        self.next_fd += 1
        return fd

    def _admit(self, lst: Listener) -> None:
        """Move connections from the kernel's queue into the pool: ``ready`` if the client has spoken,
        else ``pending`` (watched by the listener's epoll). The pool holds at most ``max_pending``."""
        while True:
            try:
                sock, _ = lst.sock.accept()
            except OSError:  # EAGAIN: nothing queued; ECONNABORTED, EMFILE: try again on the next call
                break
            sock.setblocking(False)
            if len(lst.pending) + len(lst.ready) >= self.limits.max_pending:
                self._drop_oldest(lst)
            state = _peek(sock)
            if state is None:
                lst.pending[sock.fileno()] = (sock, time.monotonic())
                lst.ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
            elif state:
                lst.ready.append(sock)
            else:  # connected and left without a word
                _abort(sock)
        if lst.pending:
            limit = time.monotonic() - self.limits.idle_timeout_s
            while lst.pending and next(iter(lst.pending.values()))[1] < limit:
                self._drop(lst, next(iter(lst.pending)))

    def _drop_oldest(self, lst: Listener) -> None:
        if lst.pending:
            self._drop(lst, next(iter(lst.pending)))
        else:
            _abort(lst.ready.popleft())

    def _drop(self, lst: Listener, key: int) -> None:
        sock, _ = lst.pending.pop(key)
        lst.ep.unregister(key)
        _abort(sock)

    def _take_ready(self, lst: Listener) -> socket.socket | None:
        """A connection whose client has sent something (removed from the pool), or None."""
        self._admit(lst)
        if not lst.ready and lst.pending:
            for key, _ in lst.ep.poll(0):
                if key in lst.pending:
                    sock = lst.pending.pop(key)[0]
                    lst.ep.unregister(key)
                    if _peek(sock):
                        lst.ready.append(sock)
                    else:  # the client left without a word
                        _abort(sock)
        return lst.ready.popleft() if lst.ready else None

    def listener_ready(self, lst: Listener) -> bool:
        self._admit(lst)
        return bool(lst.ready) or any(key in lst.pending for key, _ in lst.ep.poll(0))

    # -- readiness (poll_oneoff) -----------------------------------------------------------------

    def poll(self, subs: Sequence[Sub]) -> list[Event]:
        """Block until at least one subscription is ready; the ready ones, in subscription order."""
        while True:
            ready = self._ready(subs)
            if ready:
                return ready
            self.check_stop()
            self._block(subs)

    def _ready(self, subs: Sequence[Sub]) -> list[Event]:
        now = time.monotonic()
        out: list[Event] = []
        watched: dict[int, list[Sub]] = {}
        for sub in subs:
            item = self.items.get(sub.fd) if sub.kind != CLOCK else None
            if sub.kind == CLOCK:
                if now >= sub.due:
                    out.append(Event(sub))
            elif item is None:  # stdio, served by wasmtime: report it ready, the call itself may wait
                out.append(Event(sub, 0 if 0 <= sub.fd < 3 else BADF))
            elif isinstance(item, Listener):
                if sub.kind == FD_READ and self.listener_ready(item):
                    out.append(Event(sub))
            else:
                self.police(item)
                if item.dead:
                    out.append(Event(sub, hangup=True))
                else:
                    watched.setdefault(item.sock.fileno(), []).append(sub)
        if watched:
            out += _poll_now(watched)
        return out

    def _block(self, subs: Sequence[Sub]) -> None:
        now = time.monotonic()
        timeout = SLICE_S
        poller = select.poll()
        for sub in subs:
            item = self.items.get(sub.fd) if sub.kind != CLOCK else None
            if sub.kind == CLOCK:
                timeout = min(timeout, sub.due - now)
            elif isinstance(item, Listener):
                poller.register(item.ep.fileno(), select.POLLIN)
            elif isinstance(item, Conn) and not item.dead:
                timeout = min(timeout, item.deadline() - now)
                poller.register(item.sock.fileno(), _MASK[sub.kind])
        poller.poll(max(0.0, timeout) * 1000)

    # -- data -----------------------------------------------------------------------------------

    def recv(self, fd: int, buffers: list[memoryview], peek: bool) -> int:
        conn = self.conn(fd)
        flags = socket.MSG_PEEK if peek else 0
        while True:
            if conn.dead:
                raise Errno(conn.dead)
            try:
                n = conn.sock.recvmsg_into(buffers, 0, flags)[0]
            except (BlockingIOError, InterruptedError):
                self._wait(conn, select.POLLIN)
                continue
            except OSError as exc:
                raise Errno(_errno_of(exc)) from None
            now = time.monotonic()
            if n and not peek:
                conn.last_io = now
                conn.unanswered_since = conn.unanswered_since or now
            return n

    def send(self, fd: int, buffers: list[memoryview]) -> int:
        conn = self.conn(fd)
        while True:
            if conn.dead:
                raise Errno(conn.dead)
            try:
                n = conn.sock.sendmsg(buffers)
            except (BlockingIOError, InterruptedError):
                self._wait(conn, select.POLLOUT)
                continue
            except OSError as exc:
                raise Errno(_errno_of(exc)) from None
            conn.last_io = time.monotonic()
            conn.unanswered_since = None
            return n

    def _wait(self, conn: Conn, events: int) -> None:
        """Wait until ``conn`` is ready (or raise AGAIN for a non-blocking fd), policing its deadline."""
        self.police(conn)
        if conn.dead:
            return  # the caller's loop reports it
        if conn.nonblocking:
            raise Errno(AGAIN)
        self.check_stop()
        timeout = max(0.0, min(SLICE_S, conn.deadline() - time.monotonic()))
        poller = select.poll()
        poller.register(conn.sock.fileno(), events)
        poller.poll(timeout * 1000)

    def police(self, conn: Conn) -> None:
        """Reset a client connection past its idle or request deadline."""
        if not conn.dead and time.monotonic() >= conn.deadline():
            conn.dead = TIMEDOUT if conn.unanswered_since is None else CONNRESET
            _abort(conn.sock)

    def shutdown(self, fd: int, how: int) -> None:
        conn = self.conn(fd)
        modes = {SHUT_RD: socket.SHUT_RD, SHUT_WR: socket.SHUT_WR, SHUT_RD | SHUT_WR: socket.SHUT_RDWR}
        if how not in modes:
            raise Errno(INVAL)
        try:
            conn.sock.shutdown(modes[how])
        except OSError as exc:
            raise Errno(_errno_of(exc)) from None

    def set_nonblocking(self, fd: int, on: bool) -> None:
        self.get(fd).nonblocking = on

    def flags_seen(self, fd: int) -> bool:
        """``O_NONBLOCK`` as reported to the workload; a declared socket becomes non-blocking once seen."""
        item = self.get(fd)
        if item.nonblocking is None:
            item.nonblocking = True
        return item.nonblocking

    def close(self, fd: int) -> None:
        item = self.items.pop(fd, None)
        if item is None:
            raise Errno(BADF)
        if isinstance(item, Conn) and item.policed:
            self.held -= 1
        _close_item(item)

    def close_all(self) -> None:
        for item in self.items.values():
            _close_item(item)
        self.items.clear()


def _poll_now(watched: dict[int, list[Sub]]) -> list[Event]:
    poller = select.poll()
    for fd, subs in watched.items():
        poller.register(fd, _mask(subs))
    out: list[Event] = []
    for fd, revents in poller.poll(0):
        hangup = bool(revents & _HANGUP)
        out += [Event(sub, hangup=hangup) for sub in watched[fd] if hangup or revents & _MASK[sub.kind]]
    return out


def _mask(subs: list[Sub]) -> int:
    mask = 0
    for sub in subs:
        mask |= _MASK[sub.kind]
    return mask


def _peek(sock: socket.socket) -> bool | None:
    """True if the client has sent data, False if it closed without any, None if it is silent so far."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return False


def _close_item(item: Listener | Conn) -> None:
    if isinstance(item, Listener):
        for sock in [s for s, _ in item.pending.values()] + list(item.ready):
            _abort(sock)
        item.pending.clear()
        item.ready.clear()
        item.ep.close()
    item.sock.close()


def _abort(sock: socket.socket) -> None:
    """Close at once with a reset (SO_LINGER 0): the peer learns now, no TIME_WAIT is left behind."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def _errno_of(exc: OSError) -> int:
    import errno

    return {errno.EPIPE: PIPE, errno.ENOTCONN: NOTCONN, errno.EINVAL: INVAL}.get(exc.errno or 0, CONNRESET)
