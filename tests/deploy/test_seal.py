"""The envelope and the framed channel on their own (real HPKE, real AES-GCM)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enarx_pkg._internal import seal
from enarx_pkg.errors import InputError, VerificationError
from tests.deploy.offers import attested


def keypair() -> tuple[X25519PrivateKey, bytes]:
    k = X25519PrivateKey.generate()
    return k, k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def envelope() -> seal.Envelope:
    return seal.Envelope("http://127.0.0.1:5000", "probe", "sha256:" + "a" * 64, os.urandom(32), ("u", "p"),
                         {"sha256:" + "b" * 64: seal.LayerKey(os.urandom(32), os.urandom(16), "sha256:" + "c" * 64)},
                         {"TOKEN": seal.SecretValue(b"hunter2", "/run/secrets/token")}, ("x",), True)


def test_envelope_round_trip_and_repr_hides_secrets() -> None:
    keep, key = attested("keep-0k1")
    env = envelope()
    assert seal.open_envelope(seal.seal_envelope(env, keep), key, "keep-0k1") == env
    assert "hunter2" not in repr(env) and "u" not in repr(env).split("(")[0]


@pytest.mark.parametrize("attack", ["other keep id", "other key", "flip", "truncate"])
def test_envelope_refuses(attack: str) -> None:
    keep, key = attested("keep-0k1")
    sealed = seal.seal_envelope(envelope(), keep)
    keep_id = "keep-0k2" if attack == "other keep id" else "keep-0k1"
    if attack == "other key":
        key = X25519PrivateKey.generate()
    if attack == "flip":
        sealed = sealed[:-1] + bytes([sealed[-1] ^ 0x80])
    if attack == "truncate":
        sealed = sealed[:-1]
    with pytest.raises(VerificationError):
        seal.open_envelope(sealed, key, keep_id)


def test_oversized_envelope_is_refused_before_sealing() -> None:
    keep, _ = attested()
    big = seal.Envelope("r", "p", "sha256:" + "a" * 64, os.urandom(32),
                        secrets={"BIG": seal.SecretValue(b"x" * seal.MAX_ENVELOPE_BYTES)})
    with pytest.raises(InputError, match="limit"):
        seal.seal_envelope(big, keep)


def test_channel_directions_and_order() -> None:
    k = os.urandom(32)
    deployer, keep = seal.Channel(k, keep_side=False), seal.Channel(k, keep_side=True)
    frames = [keep.seal(seal.STDOUT, b"one"), keep.seal(seal.STDERR, b"two"), keep.seal(seal.EXIT, b"{}")]
    assert [deployer.open(f) for f in frames] == [(seal.STDOUT, b"one"), (seal.STDERR, b"two"), (seal.EXIT, b"{}")]
    with pytest.raises(VerificationError, match="replayed"):
        deployer.open(frames[0])
    # a frame sealed in one direction never opens as the other direction's frame
    with pytest.raises(VerificationError):
        keep.open(seal.Channel(k, keep_side=True).seal(seal.STDIN, b"reflected"))


def test_channel_refuses_altered_header() -> None:
    k = os.urandom(32)
    f = seal.Channel(k, keep_side=True).seal(seal.STDOUT, b"data")
    with pytest.raises(VerificationError, match="authentication"):
        seal.Channel(k, keep_side=False).open(bytes([seal.STDERR]) + f[1:])  # relabelled stdout -> stderr


def test_report_data_binds_nonce_and_key() -> None:
    _, a = keypair()
    _, b = keypair()
    n = os.urandom(32)
    assert len(seal.report_data(n, a)) == 64
    assert seal.report_data(n, a) != seal.report_data(n, b) != seal.report_data(os.urandom(32), b)


def test_record_reader_limits_and_splits() -> None:
    r = seal.RecordReader(limit=10)
    data = seal.record(1, b"abc") + seal.record(2, b"")
    assert r.feed(data[:4]) == [] and r.feed(data[4:]) == [(1, b"abc"), (2, b"")]
    with pytest.raises(VerificationError):
        r.feed(seal.record(3, b"x" * 11))
