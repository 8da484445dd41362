"""Keep processes as the agent sees them: a child process speaking records over its pipes.

The pool pre-starts keeps (Python + wasmtime imported, measurement computed, no key yet) so that
create-keep costs a key generation and a signature, not an interpreter start.

A keep trusts nothing of the agent's environment: it starts with an environment of its own
(:data:`KEEP_ENV`; no ``PYTHON*``, ``HOME``, ``XDG_*``, proxies or ``SSL_CERT_*`` of the host), in
``/``, as an isolated interpreter (``-I``: no ``PYTHONPATH``, user site or script directory on
``sys.path``) that neither reads nor writes ``.pyc`` files (keep/measure.py says why). The keep
checks all of this itself and refuses to start otherwise (keep/launch.py): the agent is the host's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

from enarx_pkg._internal import seal
from enarx_pkg.errors import TransportError
from enarx_pkg.keep.launch import CWD as KEEP_CWD
from enarx_pkg.keep.launch import ENV as KEEP_ENV
from enarx_pkg.keep.launch import FLAGS

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class KeepCommand:
    """How to start one keep process (the agent's backend and data directory)."""

    backend: str
    data_dir: str
    extra: tuple[str, ...] = ()
    publish: tuple[int, int] = (0, 0)  # loopback ports listen files may bind ((0, 0): any free one)

    def argv(self) -> list[str]:
        return [sys.executable, *FLAGS, "-m", "enarx_pkg.keep",
                "--backend", self.backend, "--data", self.data_dir,
                "--publish-range", f"{self.publish[0]}-{self.publish[1]}", *self.extra]


@dataclass
class KeepProcess:
    proc: asyncio.subprocess.Process
    measurement: str = ""
    reader: seal.RecordReader = field(default_factory=seal.RecordReader)
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @classmethod
    async def start(cls, command: KeepCommand) -> KeepProcess:
        debug = bool(os.environ.get("ENARX_PKG_DEBUG"))
        proc = await asyncio.create_subprocess_exec(
            *command.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=None if debug else asyncio.subprocess.DEVNULL, env=KEEP_ENV, cwd=KEEP_CWD)
        keep = cls(proc)
        try:
            kind, payload = await asyncio.wait_for(keep.receive(), READY_TIMEOUT_S)
        except (TimeoutError, EOFError):
            keep.kill()
            raise TransportError("a keep process failed to start") from None
        if kind != seal.R_READY:
            keep.kill()
            raise TransportError(f"a keep process failed to start: {payload[:200].decode(errors='replace')}")
        keep.measurement = json.loads(payload)["measurement"]
        return keep

    async def receive(self) -> tuple[int, bytes]:
        """Next record from the keep; raises EOFError when it has exited."""
        assert self.proc.stdout is not None
        while not self.pending:
            chunk = await self.proc.stdout.read(65536)
            if not chunk:
                raise EOFError
            self.pending += self.reader.feed(chunk)
        return self.pending.pop(0)

    async def send(self, kind: int, payload: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(seal.record(kind, payload))
        await self.proc.stdin.drain()

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


def probe_measurement(command: KeepCommand) -> str:
    """The measurement a keep started by ``command`` reports (what ``host serve`` prints to pin)."""
    async def probe() -> str:
        keep = await KeepProcess.start(command)
        keep.kill()
        await keep.proc.wait()
        return keep.measurement

    return asyncio.run(probe())


class Pool:
    """Keeps that are started and idle, refilled in the background."""

    def __init__(self, command: KeepCommand, size: int) -> None:
        self.command = command
        self.size = max(1, size)
        self._ready: asyncio.Queue[KeepProcess] = asyncio.Queue()
        self._starting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.measurement = ""

    def fill(self) -> None:
        while self._ready.qsize() + self._starting < self.size:
            self._starting += 1
            task = asyncio.create_task(self._start_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        try:
            keep = await KeepProcess.start(self.command)
            self.measurement = keep.measurement
            await self._ready.put(keep)
        except TransportError:
            await asyncio.sleep(1.0)  # do not spin if keeps cannot start; the next take() retries
        finally:
            self._starting -= 1

    async def take(self) -> KeepProcess:
        """An idle pre-started keep (starting one now if the pool is empty)."""
        while True:
            self.fill()
            keep = await self._ready.get()
            self.fill()
            if keep.proc.returncode is None:
                return keep

    async def first_ready(self) -> str:
        """Wait for one keep to be ready; returns the runtime measurement it reported."""
        keep = await self.take()
        await self._ready.put(keep)
        return keep.measurement

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        while not self._ready.empty():
            self._ready.get_nowait().kill()
