"""The sim backend: key file handling, evidence round trip, and every tampering refused."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from enarx_pkg.attestation import EvidenceError, MalformedEvidence, verify_evidence
from enarx_pkg.attestation.sim import EVIDENCE_LEN, SimPlatform, verify_sim

RD = bytes(range(64))
MEAS = bytes(48)


def test_key_file_created_0600_and_reloaded(tmp_path):
    a = SimPlatform.load_or_create(tmp_path)
    key = tmp_path / "sim-platform.key"
    assert key.is_file() and (os.stat(key).st_mode & 0o777) == 0o600
    b = SimPlatform.load_or_create(tmp_path)
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("sha256:")
    assert len(a.public_key) == 32


def test_round_trip_claims(tmp_path):
    p = SimPlatform.load_or_create(tmp_path)
    ev = p.issue(RD, b"\x11" * 48, debug=True, svn=7)
    assert len(ev) == EVIDENCE_LEN
    c = verify_evidence("sim", ev)
    assert (c.tee, c.report_data, c.measurement, c.debug) == ("sim", RD, "11" * 48, True)
    assert c.svn == 7 and c.platform_key == p.fingerprint
    assert verify_evidence("auto", ev) == c


@pytest.mark.parametrize("offset", [0, 9, 12, 30, 100, 140, 170, 231])
def test_flipped_bit_refused(offset):
    ev = bytearray(SimPlatform.generate().issue(RD, MEAS))
    ev[offset] ^= 0x01
    with pytest.raises(EvidenceError):
        verify_sim(bytes(ev))


def test_key_swap_refused():
    """Re-labelling evidence with another platform's key breaks the signature."""
    a, b = SimPlatform.generate(), SimPlatform.generate()
    ev = bytearray(a.issue(RD, MEAS))
    ev[136:168] = b.public_key
    with pytest.raises(EvidenceError, match=r"sim\.signature"):
        verify_sim(bytes(ev))


def test_future_dated_refused():
    ev = SimPlatform.generate().issue(RD, MEAS)
    with pytest.raises(EvidenceError, match=r"sim\.timestamp"):
        verify_sim(ev, at=datetime.now(UTC) - timedelta(hours=1))


@pytest.mark.parametrize("length", [0, 1, 100, EVIDENCE_LEN - 1, EVIDENCE_LEN + 1])
def test_wrong_length_malformed(length):
    with pytest.raises(MalformedEvidence):
        verify_sim(bytes(length))


def test_corrupt_key_file(tmp_path):
    (tmp_path / "sim-platform.key").write_bytes(b"short")
    from enarx_pkg.errors import InputError

    with pytest.raises(InputError):
        SimPlatform.load_or_create(tmp_path)
