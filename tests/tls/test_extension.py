"""The DER of our extensions is strict (one encoding per value), and the policy digest ignores layout."""

from __future__ import annotations

import pytest

from enarx_pkg.attestation._errors import EvidenceError
from enarx_pkg.attestation.policy import Policy
from enarx_pkg.tls import _asn1, binding
from enarx_pkg.tls.extension import AppraisedKeep, KeepEvidence
from enarx_pkg.tls.verify import policy_digest
from tests.tls.conftest import PACKAGE

EV = KeepEvidence("sim", b"n" * 32, PACKAGE, b"evidence" * 100, b"aux")


def test_keep_evidence_round_trips():
    assert KeepEvidence.from_der(EV.to_der()) == EV
    record = AppraisedKeep("sim", "ab" * 48, PACKAGE, PACKAGE, PACKAGE)
    assert AppraisedKeep.from_der(record.to_der()) == record


@pytest.mark.parametrize("mutate", [
    lambda d: d + b"\x00",  # trailing bytes
    lambda d: d[:-1],  # truncated
    lambda d: b"\x31" + d[1:],  # a SET, not a SEQUENCE
    lambda d: d[:1] + b"\x84" + d[2:],  # a length longer than the data
])
def test_mutated_evidence_extension_is_refused(mutate):
    with pytest.raises(EvidenceError, match=r"tls\.evidence_extension"):
        KeepEvidence.from_der(mutate(EV.to_der()))


def test_unknown_version_is_refused():
    der = EV.to_der()
    assert der[4:7] == b"\x02\x01\x01"  # SEQUENCE header (4 bytes), then INTEGER 1
    with pytest.raises(EvidenceError, match="unsupported version 2"):
        KeepEvidence.from_der(der[:4] + b"\x02\x01\x02" + der[7:])


def test_non_minimal_length_is_refused():
    body = _asn1.encode([1])[2:]
    with pytest.raises(EvidenceError, match="non-minimal"):
        _asn1.decode(b"\x30\x81" + bytes([len(body)]) + body, [_asn1.INTEGER], "x")


def test_short_nonce_is_refused():
    bad = _asn1.encode([1, "sim", b"n" * 31, bytes(32), b"e", b""])
    with pytest.raises(EvidenceError, match="nonce"):
        KeepEvidence.from_der(bad)


def test_policy_digest_is_independent_of_layout():
    a = Policy.from_mapping({"tees": ["sim"], "sim": {"insecure": True, "keys": ["sha256:" + "a" * 64]}}, "a")
    b = Policy.from_mapping({"sim": {"keys": ["sha256:" + "a" * 64], "insecure": True}, "tees": ["sim"]}, "b")
    c = Policy.from_mapping({"tees": ["sim"], "sim": {"insecure": True, "keys": ["sha256:" + "b" * 64]}}, "c")
    assert policy_digest(a) == policy_digest(b) != policy_digest(c)


@pytest.mark.parametrize(("pattern", "name", "ok"), [
    ("keep.test", "KEEP.test", True), ("*.keeps.test", "a.keeps.test", True), ("*.keeps.test", "keeps.test", False),
    ("*.keeps.test", "a.b.keeps.test", False), ("127.0.0.1", "127.0.0.1", True), ("keep.test", "keep.test.evil", False),
])
def test_name_matching(pattern, name, ok):
    assert binding.name_matches(pattern, name) is ok


def test_report_data_separates_key_and_package():
    n = b"\x01" * 32
    assert binding.report_data(n, b"spki", PACKAGE) != binding.report_data(n, b"spkj", PACKAGE)
    assert len(binding.report_data(n, b"spki", PACKAGE)) == 64
