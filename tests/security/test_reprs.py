"""Objects that carry secrets print without them (a repr ends up in logs, tracebacks, debuggers)."""

from __future__ import annotations

import os

from enarx_pkg._internal import seal
from enarx_pkg.oci.auth import Credential

SECRET = b"repr-secret-0b7d51"


def test_sealed_objects_hide_their_secrets() -> None:
    key = os.urandom(32)
    layer = seal.LayerKey(key, os.urandom(16), "sha256:" + "1" * 64)
    value = seal.SecretValue(SECRET, "/run/secrets/x")
    env = seal.Envelope("http://127.0.0.1:1", "r", "sha256:" + "0" * 64, key, ("u", SECRET.decode()),
                        {"sha256:" + "2" * 64: layer}, {"X": value})
    for obj in (layer, value, env, {"X": value}):
        text = repr(obj)
        assert SECRET.decode() not in text and repr(key) not in text and key.hex() not in text, text


def test_credential_hides_its_password() -> None:
    assert SECRET.decode() not in repr(Credential("u", SECRET.decode(), "test"))
