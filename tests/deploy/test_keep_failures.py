"""A keep that its host makes fail after it was provisioned tells its deployer, sealed, and its host nothing.

Each test is one way a modified agent makes a real, provisioned keep fail: a read-only file system
mounted over its ``/tmp`` (in the keep's own mount namespace), so it cannot make its private
directory; or SIGINT while it pulls. The deployer gets a sealed, typed error where the keep can send
one (not a stream that just ends), and the host, which reads the keep's stderr, no traceback and no
secret.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

from enarx_pkg._internal import seal
from enarx_pkg.host.pool import KEEP_CWD, KEEP_ENV, KeepCommand
from tests.deploy.rawkeep import NSENTER, UNSHARE, Keep, attested, needs_private_mounts

SECRET = b"failing-keep-secret-77b2c0"


@needs_private_mounts
def test_a_host_that_takes_the_keeps_disk_away_gets_no_traceback(tmp_path: Path) -> None:
    data, session_key = tmp_path / "data", os.urandom(32)
    proc = subprocess.Popen([str(UNSHARE), "--mount", "--propagation", "private",
                             *KeepCommand("sim", str(data)).argv()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=KEEP_ENV, cwd=KEEP_CWD)
    keep = Keep(proc)
    try:
        measurement = keep.measurement()
        subprocess.run([str(NSENTER), "--target", str(proc.pid), "--mount", "mount", "-t", "tmpfs", "-o", "ro",
                        "tmpfs", "/tmp"], check=True)
        envelope = seal.Envelope("http://127.0.0.1:1", "probe", "sha256:" + "a" * 64, session_key,
                                 secrets={"API_KEY": seal.SecretValue(SECRET)})
        keep.send(seal.R_PROVISION, seal.seal_envelope(envelope, attested(keep, data, measurement)))
        kind, frame = keep.receive()
        assert proc.wait(timeout=120) == 1
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    finally:
        keep.stop()
    assert kind == seal.R_FRAME
    frame_type, payload = seal.Channel(session_key, keep_side=False).open(frame)
    error = json.loads(payload)
    assert frame_type == seal.ERROR and error == {
        "kind": "TransportError", "message": "the keep's host failed it: Read-only file system", "exit_code": 69}
    assert b"Traceback" not in stderr and SECRET not in stderr and b"/tmp" not in stderr, stderr


def test_a_host_interrupting_the_keep_gets_no_traceback(tmp_path: Path) -> None:
    """SIGINT to a provisioned keep (pulling from a registry that never answers): it ends, silently."""
    data = tmp_path / "data"
    stall = socket.create_server(("127.0.0.1", 0))
    pulling = threading.Event()
    threading.Thread(target=lambda: (stall.accept(), pulling.set()), daemon=True).start()
    proc = subprocess.Popen(KeepCommand("sim", str(data)).argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=KEEP_ENV, cwd=KEEP_CWD)
    keep = Keep(proc)
    try:
        envelope = seal.Envelope(f"http://127.0.0.1:{stall.getsockname()[1]}", "probe", "sha256:" + "a" * 64,
                                 os.urandom(32), secrets={"API_KEY": seal.SecretValue(SECRET)})
        keep.send(seal.R_PROVISION, seal.seal_envelope(envelope, attested(keep, data, keep.measurement())))
        assert pulling.wait(120), "the keep never started its pull"
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == -signal.SIGINT
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    finally:
        keep.stop()
        stall.close()
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr and SECRET not in stderr, stderr
