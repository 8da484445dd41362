"""The keep process: talks to its host agent in length-prefixed records over stdin/stdout.

Life of a keep::

    start, import wasmtime & co, compute measurement  ── READY {backend, measurement} ──▶ agent
    ◀── CREATE {keep_id, nonce}   fresh X25519 key, evidence over report_data ── CREATED ──▶
    ◀── PROVISION (HPKE envelope) open it; pull by digest, decrypt, check, run
    ◀── INPUT ... sealed stdin frames, fed to the workload as they come (a pipe is its stdin)
                                             ── FRAME (sealed stdout/stderr/exit/error) ──▶

The agent pre-starts keeps so the slow imports happen before a deployer asks; the key pair is made
only after the nonce arrives, so evidence is always fresh. Before provisioning, failures are reported
in plain text (FAIL); after it, only sealed frames leave the keep.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from enarx_pkg._internal import canonical, seal
from enarx_pkg.errors import Error, InputError, TransportError, VerificationError
from enarx_pkg.keep import measure
from enarx_pkg.keep.memory import keep_private
from enarx_pkg.keep.tls import KeepTls
from enarx_pkg.keep.workload import execute, prewarm


@dataclass(frozen=True)
class KeepOptions:
    backend: str
    data_dir: str
    # sim-only knobs a test host uses to produce evidence a policy must refuse (they can only weaken
    # the evidence; the measurement is always the keep's own, see keep/measure.py)
    sim_debug: bool = False
    sim_svn: int = 1
    publish: tuple[int, int] = (0, 0)  # the host's port range for listen files ((0, 0): any free port)


def parse_args(argv: list[str]) -> KeepOptions:
    p = argparse.ArgumentParser(prog="python -m enarx_pkg.keep")
    p.add_argument("--backend", required=True, choices=["sim", "snp", "tdx", "sgx"])
    p.add_argument("--data", required=True)
    p.add_argument("--sim-debug", action="store_true")
    p.add_argument("--sim-svn", type=int, default=1)
    p.add_argument("--publish-range", default="0-0")
    a = p.parse_args(argv)
    low, _, high = a.publish_range.partition("-")
    return KeepOptions(a.backend, a.data, a.sim_debug, a.sim_svn, (int(low), int(high)))


class Pipe:
    """The record channel to the agent; writes are serialised (stdout and stderr callbacks race)."""

    def __init__(self, rx: BinaryIO, tx: BinaryIO) -> None:
        self._rx, self._tx = rx, tx
        self._reader = seal.RecordReader()
        self._queue: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    def send(self, kind: int, payload: bytes) -> None:
        with self._lock:
            self._tx.write(seal.record(kind, payload))
            self._tx.flush()

    def receive(self, expected: int) -> bytes:
        return self.receive_any(expected)[1]

    def receive_any(self, *expected: int) -> tuple[int, bytes]:
        """The next record, which must be of one of the ``expected`` kinds."""
        while not self._queue:
            chunk = self._rx.read(65536)
            if not chunk:
                raise EOFError
            self._queue += self._reader.feed(chunk)
        kind, payload = self._queue.pop(0)
        if kind not in expected:
            raise InputError(f"keep protocol: expected record {expected[0]:#x}, got {kind:#x}")
        return kind, payload


class Evidence:
    """Produces evidence for report_data on this keep's backend."""

    def __init__(self, opts: KeepOptions) -> None:
        self.opts = opts
        if opts.backend == "sim":
            from enarx_pkg.attestation.sim import SimPlatform

            self._sim = SimPlatform.load_or_create(Path(opts.data_dir))
        else:  # loaded now, so that it is measured (collect's /dev/sev-guest path imports these lazily)
            import ctypes  # noqa: F401
            import fcntl  # noqa: F401

            from enarx_pkg.attestation import collect  # noqa: F401
        self.measurement = measure.measurement()  # after every import: the keep measures what it loaded
        measure.seal_imports()

    def issue(self, report_data: bytes) -> tuple[bytes, bytes]:
        """(evidence, aux): aux carries what the verifier needs beside it (the SNP certificate table)."""
        if self.opts.backend == "sim":
            sim = self._sim.issue(report_data, self.measurement, debug=self.opts.sim_debug, svn=self.opts.sim_svn)
            return sim, b""
        from enarx_pkg.attestation.collect import collect

        got = collect(report_data)
        if got.tee != self.opts.backend:
            raise InputError(f"this keep collected {got.tee} evidence, not {self.opts.backend}")
        return got.evidence, got.aux


def serve(opts: KeepOptions, pipe: Pipe) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    prewarm()
    evidence = Evidence(opts)
    pipe.send(seal.R_READY, canonical.dumps({"backend": opts.backend, "measurement": evidence.measurement.hex()}))
    create = json.loads(pipe.receive(seal.R_CREATE))
    keep_id, nonce = str(create["keep_id"]), base64.b64decode(create["nonce"])
    keep_private()  # before the key: no core dump, no ptrace (keep/memory.py)
    key = X25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    report, aux = evidence.issue(seal.report_data(nonce, public))
    pipe.send(seal.R_CREATED, canonical.dumps({
        "keep_public_key": base64.b64encode(public).decode(), "tee": opts.backend,
        "evidence": base64.b64encode(report).decode(), "aux": base64.b64encode(aux).decode()}))
    kind, payload = pipe.receive_any(seal.R_PUBLISH, seal.R_PROVISION)
    fixed: tuple[tuple[str, int], ...] = ()
    if kind == seal.R_PUBLISH:  # the deployer's explicit port mapping, checked by the agent and again here
        from enarx_pkg.network import parse_mapping

        fixed = parse_mapping([str(i) for i in json.loads(payload)["publish"]], "the host's port mapping")
        payload = pipe.receive(seal.R_PROVISION)
    envelope = seal.open_envelope(payload, key, keep_id)
    return _provisioned(envelope, pipe, opts.publish, evidence, fixed)


def _provisioned(envelope: seal.Envelope, pipe: Pipe, ports: tuple[int, int], evidence: Evidence,
                 fixed: tuple[tuple[str, int], ...] = ()) -> int:
    outbox = Outbox(seal.Channel(envelope.session_key, keep_side=True), pipe)
    stderr = outbox.writer(seal.STDERR)
    tls = KeepTls(envelope, evidence.opts.backend, evidence.issue, outbox.send,
                  lambda line: stderr(line.encode("utf-8", "replace")))
    timings: dict[str, float] = {}
    # everything the workload leaves on disk (blobs, mounted secrets, its dirs) lives under one private
    # root, so an abort can remove it before the process ends
    root: Path | None = None
    try:
        root = Path(tempfile.mkdtemp(prefix="enarx-keep-"))
        tempfile.tempdir = str(root)
        # the workload's stdin is an anonymous pipe, never a path on the host's disk (where the host could
        # put its own input, or read the deployer's): the runtime opens it by its /proc/self/fd name
        read_end, write_end = os.pipe()
        stdin = Path(f"/proc/self/fd/{read_end}")
        if envelope.stdin:
            threading.Thread(target=_feed_stdin, args=(outbox, write_end, root), daemon=True).start()
        else:
            os.close(write_end)  # no input: end of file at once
            threading.Thread(target=_watch_agent, args=(outbox, root, tls), daemon=True).start()
        status = execute(envelope, stdin, outbox.writer(seal.STDOUT), stderr, timings, _publish(pipe, ports, fixed),
                         tls.setup)
    except Error as exc:
        outbox.close(seal.ERROR, _error_payload(exc))
        return 1
    except Exception as exc:  # the host's disk or memory, or a library, failed: sealed and typed, no traceback
        outbox.close(seal.ERROR, _error_payload(_unexpected(exc)))
        return 1
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    outbox.close(seal.EXIT, canonical.dumps({"status": status,
                                             "timings": {k: round(v, 6) for k, v in timings.items()}}))
    return 0


def _publish(pipe: Pipe, ports: tuple[int, int], fixed: tuple[tuple[str, int], ...] = ()) -> Any:
    """Listen files bound on loopback in the agent's port range (where ``fixed`` says, for the files it
    names), the bindings reported to the agent."""
    from enarx_pkg.network import Publish

    def report(endpoints: list[dict[str, object]]) -> None:
        pipe.send(seal.R_LISTENING, canonical.dumps({"endpoints": endpoints}))

    return Publish("127.0.0.1", ports[0], ports[1], report, fixed)


def _watch_agent(outbox: Outbox, root: Path, tls: KeepTls) -> None:
    """Without stdin nothing else reads the agent's pipe: its end (the agent stopped or died) ends the
    keep, so a long-running service never outlives its agent. What comes on it must be a sealed frame
    from the deployer the keep waits for (its TLS certificate); anything else ends the keep."""
    try:
        while True:
            tls.deliver(*outbox.channel.open(outbox.pipe.receive(seal.R_INPUT)))
    except EOFError:
        outbox.abort(None, root)
    except Error as exc:
        outbox.abort(VerificationError(f"the keep's agent sent a record it has no business sending ({exc.message})"),
                     root)


def _unexpected(exc: Exception) -> Error:
    """What the deployer is told of a failure that is not one of ours: its kind, and the OS's reason for an
    OS error; never the exception's text, which may quote a path or the data it choked on."""
    if isinstance(exc, OSError):
        return TransportError(f"the keep's host failed it: {exc.strerror or type(exc).__name__}")
    return Error(f"the keep failed unexpectedly ({type(exc).__name__})")


def _error_payload(exc: Error) -> bytes:
    return canonical.dumps({"kind": type(exc).__name__, "message": exc.message, "exit_code": int(exc.exit_code)})


class Outbox:
    """Sealed frames to the deployer, in sequence; the exit or error frame is always the last one."""

    def __init__(self, channel: seal.Channel, pipe: Pipe) -> None:
        self.channel, self.pipe = channel, pipe
        self.lock = threading.Lock()  # sequence numbers must leave in the order they were assigned
        self.closed = False

    def _send(self, frame_type: int, data: bytes) -> None:
        if self.closed:
            return
        for frame in self.channel.seal_all(frame_type, data):
            self.pipe.send(seal.R_FRAME, frame)

    def send(self, frame_type: int, data: bytes) -> None:
        with self.lock:
            self._send(frame_type, data)

    def writer(self, frame_type: int) -> Callable[[bytes], None]:
        return lambda data: self.send(frame_type, data)

    def close(self, frame_type: int, payload: bytes) -> None:
        with self.lock:
            self._send(frame_type, payload)
            self.closed = True

    def abort(self, exc: Error | None, root: Path) -> NoReturn:
        """Stop the keep now (the workload may be mid-read): last sealed word, wipe the disk, exit."""
        with self.lock:
            if exc is not None:
                self._send(seal.ERROR, _error_payload(exc))
            self.closed = True
            shutil.rmtree(root, ignore_errors=True)
            os._exit(1 if exc is not None else 0)


def _feed_stdin(outbox: Outbox, fd: int, root: Path) -> None:
    """Stream sealed stdin frames into the workload's stdin pipe (its write end, ``fd``) as they arrive.

    Each frame is authenticated, in sequence, before a byte of it reaches the workload; a dropped,
    replayed, reordered or altered frame ends the keep with a sealed error (the workload cannot be
    allowed to carry on as if its input had ended). The pipe's 64 KiB buffer is the back-pressure:
    while the workload does not read, this thread does not read the agent's pipe either.
    """
    try:
        while True:
            frame_type, payload = outbox.channel.open(outbox.pipe.receive(seal.R_INPUT))
            if frame_type != seal.STDIN:
                raise VerificationError("keep received a non-stdin frame from the deployer")
            if not payload:
                return
            _write_all(fd, payload)
    except BrokenPipeError:
        return  # no reader is left: the rest of the input is not wanted
    except EOFError:
        outbox.abort(None, root)  # the agent went away
    except Error as exc:
        outbox.abort(exc, root)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(argv: list[str]) -> int:
    """Entry point: keep the real stdout for records; anything printed by accident goes to stderr."""
    # SIGINT is the host's too: it ends the keep like SIGTERM does, not with a traceback on the host's stderr
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    opts = parse_args(argv)
    tx = os.fdopen(os.dup(1), "wb", buffering=0)
    rx = os.fdopen(os.dup(0), "rb", buffering=0)
    os.dup2(2, 1)
    pipe = Pipe(rx, tx)
    try:
        return serve(opts, pipe)
    except EOFError:
        return 0  # the agent went away or reaped us
    except Error as exc:  # before provisioning: nothing secret can be in the message
        pipe.send(seal.R_FAIL, exc.message.encode())
        return 1
    except (KeyError, ValueError, TypeError) as exc:
        pipe.send(seal.R_FAIL, f"keep protocol error: {type(exc).__name__}".encode())
        print(f"keep: {type(exc).__name__}", file=sys.stderr)
        return 1
