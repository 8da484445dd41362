"""Replays by a modified agent against real keep processes: an envelope reaches only the keep it was sealed to.

The agent holds every sealed envelope it relayed. Each test is one replay: keep A's envelope given to
keep B (created with its own fresh key), or a keep's envelope replayed to a new keep under the same
keep id. The keep refuses before anything is opened (a plain FAIL record, exit 1), sends no sealed
frame, pulls nothing (the registry in the envelope hears no request), and echoes no secret.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from enarx_pkg._internal import seal
from enarx_pkg.attestation.sim import SimPlatform
from enarx_pkg.host.pool import KEEP_CWD, KEEP_ENV, KeepCommand
from tests.deploy.rawkeep import Keep, attested

SECRET = b"replayed-secret-0c41d9"


def start(data: Path) -> Keep:
    SimPlatform.load_or_create(data)  # before the keeps start: two keeps would race to create it
    return Keep(subprocess.Popen(KeepCommand("sim", str(data)).argv(), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=KEEP_ENV, cwd=KEEP_CWD))


def envelope(registry: socket.socket) -> seal.Envelope:
    return seal.Envelope(f"http://127.0.0.1:{registry.getsockname()[1]}", "probe", "sha256:" + "a" * 64,
                         os.urandom(32), secrets={"API_KEY": seal.SecretValue(SECRET)})


def refuses(keep: Keep, sealed: bytes, registry: socket.socket) -> None:
    keep.send(seal.R_PROVISION, sealed)
    kind, payload = keep.receive()
    assert keep.proc.wait(timeout=120) == 1
    assert kind == seal.R_FAIL and SECRET not in payload, payload
    assert b"envelope" in payload.lower(), payload
    registry.settimeout(0.0)
    try:
        registry.accept()
        raise AssertionError("the keep pulled from the registry named in an envelope not sealed to it")
    except BlockingIOError:
        pass


def test_keep_a_envelope_replayed_to_keep_b_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a, b = start(data), start(data)
    try:
        sealed_to_a = attested(a, data, a.measurement(), keep_id="keep-replay-a001")
        attested(b, data, b.measurement(), keep_id="keep-replay-b001")
        with socket.create_server(("127.0.0.1", 0)) as registry:
            refuses(b, seal.seal_envelope(envelope(registry), sealed_to_a), registry)
    finally:
        a.stop()
        b.stop()


def test_an_envelope_replayed_to_a_new_keep_under_the_same_id_is_refused(tmp_path: Path) -> None:
    """The agent recorded keep A's envelope, and later creates a new keep with A's id to replay it."""
    data = tmp_path / "data"
    a, again = start(data), start(data)
    try:
        sealed_to_a = attested(a, data, a.measurement(), keep_id="keep-replay-a001")
        a.stop()
        attested(again, data, again.measurement(), keep_id="keep-replay-a001")
        with socket.create_server(("127.0.0.1", 0)) as registry:
            refuses(again, seal.seal_envelope(envelope(registry), sealed_to_a), registry)
    finally:
        again.stop()
