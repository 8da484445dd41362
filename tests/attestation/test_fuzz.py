"""Hostile input: garbage of many lengths and hypothesis-mutated real evidence. Only typed errors escape."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx_pkg.attestation import dispatch, verify_evidence
from enarx_pkg.attestation.cca import inspect_cca
from enarx_pkg.attestation.dcap import parse_quote
from enarx_pkg.attestation.policy import Policy
from enarx_pkg.attestation.sim import parse_sim
from enarx_pkg.attestation.snp import parse_cert_table, parse_report
from enarx_pkg.errors import Error, InputError

AT = datetime(2026, 6, 1, tzinfo=UTC)
TEES = ("snp", "tdx", "sgx", "cca", "sim", "auto")
LENGTHS = [0, 1, 2, 3, 7, 8, 47, 48, 64, 232, 431, 436, 631, 636, 1183, 1184, 1185, 2048, 4096, 4936, 5006, 8192]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_typed(tee: str, data: bytes, certs=()) -> None:
    with contextlib.suppress(Error):
        verify_evidence(tee, data, certs=certs, at=AT)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("fill", ["zero", "random", "ff"])
def test_garbage_of_many_lengths(length, fill):
    data = {"zero": bytes(length), "ff": b"\xff" * length, "random": os.urandom(length)}[fill]
    for tee in TEES:
        with pytest.raises(Error):
            verify_evidence(tee, data, at=AT)


@pytest.mark.parametrize("header", [b"\x04\x00\x02\x00\x81\x00\x00\x00", b"\x03\x00\x02\x00\x00\x00\x00\x00",
                                    b"\x05\x00\x02\x00\x81\x00\x00\x00", b"\xd9\x01\x8f", b"ENXSIM\x00\x01"])
@pytest.mark.parametrize("length", [8, 100, 700, 4000, 8192])
def test_garbage_behind_valid_headers(header, length):
    data = (header + os.urandom(length))[:length]
    with pytest.raises(Error):
        verify_evidence("auto", data, at=AT)


def _mutate(base: bytes):
    return st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), min_size=1, max_size=6).map(
        lambda edits: _apply(base, edits))


def _apply(base: bytes, edits) -> bytes:
    b = bytearray(base)
    for pos, val in edits:
        b[pos] = val
    return bytes(b)


@pytest.fixture(scope="module")
def real(testvectors):
    r = testvectors
    return {
        "snp": (r / "snp/virtee-milan/report.bin").read_bytes(),
        "snp_certs": [(r / "snp/virtee-milan/vcek.der").read_bytes(), (r / "snp/roots/ask_ark_milan.pem").read_bytes()],
        "tdx": (r / "tdx/trustee-v4-spr/quote.dat").read_bytes(),
        "tdx5": (r / "tdx/gtdx-v5-fmspc-90c06f000000/quote.dat").read_bytes(),
        "sgx": (r / "sgx/occlum-v3/quote.dat").read_bytes(),
        "cca": (r / "cca/trustee-fvp/token.cbor").read_bytes(),
        "cpak": (r / "cca/trustee-fvp/cpak-pub.json").read_bytes(),
    }


@SETTINGS
@given(data=st.data())
def test_fuzz_snp(real, data):
    ev = data.draw(_mutate(real["snp"]))
    _only_typed("snp", ev, real["snp_certs"])
    with contextlib.suppress(Error):
        parse_report(ev)


@SETTINGS
@given(data=st.data(), which=st.sampled_from(["tdx", "tdx5", "sgx"]))
def test_fuzz_dcap(real, data, which):
    ev = data.draw(_mutate(real[which]))
    _only_typed("auto", ev)
    with contextlib.suppress(Error):
        parse_quote(ev)


@SETTINGS
@given(data=st.data())
def test_fuzz_dcap_truncation(real, data):
    ev = real["tdx"][: data.draw(st.integers(0, len(real["tdx"]) - 1))]
    with pytest.raises(Error):
        verify_evidence("tdx", ev, at=AT)


@SETTINGS
@given(data=st.data())
def test_fuzz_cca(real, data):
    ev = data.draw(_mutate(real["cca"]))
    _only_typed("cca", ev, [real["cpak"]])
    with contextlib.suppress(Error):
        inspect_cca(ev)


@SETTINGS
@given(st.binary(max_size=4096))
def test_fuzz_small_parsers(blob):
    for fn in (parse_sim, parse_cert_table, lambda b: dispatch.inspect("auto", b)):
        with contextlib.suppress(Error):
            fn(blob)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=10)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["tees", "snp", "sim", "debug", "tcb_status", "x"]), _json, max_size=4))
def test_fuzz_policy(mapping):
    with contextlib.suppress(InputError):
        Policy.from_mapping(mapping, "fuzz")


@SETTINGS
@given(data=st.data())
def test_fuzz_collateral(testvectors, data):
    from enarx_pkg.attestation.collateral import Collateral
    from enarx_pkg.attestation.dcap import inspect_quote
    from enarx_pkg.attestation.tcb import evaluate, signed_document

    folder = testvectors / "tdx/collateral-2023-06-fmspc-50806f000000"
    col = Collateral.from_dir(folder)
    tcb_info = data.draw(_mutate(col.tcb_info))
    quote = (testvectors / "tdx/trustee-v4-spr/quote.dat").read_bytes()
    with contextlib.suppress(Error):
        verify_evidence("tdx", quote, collateral=Collateral(**{**col.__dict__, "tcb_info": tcb_info}),
                        at=datetime(2023, 6, 20, tzinfo=UTC))
    try:
        value, _, _ = signed_document(tcb_info, "tcbInfo", "fuzz")
        evaluate(parse_quote(quote), inspect_quote(quote).pck, value, data.draw(st.none() | _json))
    except Error:
        pass
