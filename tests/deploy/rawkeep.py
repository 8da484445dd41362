"""The agent's half of a real keep's record pipe, for tests that play a modified host agent."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from enarx_pkg import trust
from enarx_pkg._internal import seal
from enarx_pkg.attestation.policy import Policy
from enarx_pkg.attestation.sim import SimPlatform

UNSHARE, NSENTER = shutil.which("unshare"), shutil.which("nsenter")


def _private_mounts() -> bool:
    store = ssl.get_default_verify_paths().openssl_cafile
    if UNSHARE is None or NSENTER is None or not os.path.isfile(store):
        return False
    probe = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "mount", "--bind", store, store],
                           capture_output=True)
    return probe.returncode == 0


# a host's change seen by one keep alone: its own mount namespace (root, or a user namespace, needed)
needs_private_mounts = pytest.mark.skipif(not _private_mounts(),
                                          reason="needs unshare/nsenter and a private mount namespace (root)")


class Keep:
    """The agent's side of one keep's record pipe."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.reader, self.pending = proc, seal.RecordReader(), []  # type: list[tuple[int, bytes]]

    def receive(self) -> tuple[int, bytes]:
        assert self.proc.stdout is not None
        while not self.pending:
            chunk = self.proc.stdout.read1(65536)
            assert chunk, f"the keep exited with {self.proc.wait()}"
            self.pending += self.reader.feed(chunk)
        return self.pending.pop(0)

    def send(self, kind: int, payload: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(seal.record(kind, payload))
        self.proc.stdin.flush()

    def measurement(self) -> str:
        kind, payload = self.receive()
        assert kind == seal.R_READY, payload
        return str(json.loads(payload)["measurement"])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def attested(keep: Keep, data: Path, measurement: str, keep_id: str = "keep-rawtest-0001") -> trust.AttestedKeep:
    """Create the keep with a fresh nonce and attest its answer, as a deployer does."""
    nonce = os.urandom(32)
    keep.send(seal.R_CREATE, json.dumps({"keep_id": keep_id, "nonce": base64.b64encode(nonce).decode()}).encode())
    kind, payload = keep.receive()
    assert kind == seal.R_CREATED, payload
    offer = trust.Offer.parse(json.loads(payload) | {"keep_id": keep_id, "capability": "c" * 43}, "http://127.0.0.1:1")
    fingerprint = SimPlatform.load_or_create(data).fingerprint
    policy = Policy.from_mapping({"tees": ["sim"], "sim": {"insecure": True, "keys": [fingerprint],
                                                           "measurements": [measurement]}}, "test policy")
    return trust.attest(offer, nonce, policy, insecure_sim=True)
