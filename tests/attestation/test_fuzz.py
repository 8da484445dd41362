"""Hostile input: garbage of many lengths and hypothesis-mutated real evidence.

Every mutation of a real vector that changes a byte the verifier reads must be REFUSED with a typed
error (not merely "no untyped exception"). The only bytes a mutation may change without refusal are
named here: a DCAP quote's bytes after its signature data (tolerated padding), in collateral the case
of the signature's hex digits (same signature), and in a --certs PEM file the text around its blocks
(same certificates). A PEM chain inside a quote gets no such latitude. The inspect-only parsers, which verify nothing,
are held to "typed errors only".
"""

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


def _refused(tee: str, data: bytes, certs=(), **kw) -> None:
    with pytest.raises(Error):
        verify_evidence(tee, data, certs=certs, at=kw.pop("at", AT), **kw)


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


def _edits(base: bytes, end: int | None = None):
    """1-6 byte substitutions, each changing its byte, at offsets below ``end`` (default: anywhere)."""
    limit = (len(base) if end is None else end) - 1
    return st.lists(st.tuples(st.integers(0, limit), st.integers(1, 255)), min_size=1, max_size=6,
                    unique_by=lambda e: e[0])


def _mutate(base: bytes, end: int | None = None):
    return _edits(base, end).map(lambda edits: _apply(base, edits))


def _apply(base: bytes, edits) -> bytes:
    b = bytearray(base)
    for pos, delta in edits:
        b[pos] ^= delta  # a non-zero XOR always changes the byte
    return bytes(b)


@pytest.fixture(scope="module")
def real(testvectors):
    r = testvectors
    return {
        "snp": (r / "snp/virtee-milan/report.bin").read_bytes(),
        "snp_certs": [(r / "snp/virtee-milan/vcek.der").read_bytes(), (r / "snp/roots/ask_ark_milan.pem").read_bytes()],
        "tdx": (r / "tdx/trustee-v4-spr/quote.dat").read_bytes(),
        "tdx5": (r / "tdx/gtdx-v5-fmspc-90c06f000000/quote.dat").read_bytes(),
        "tdx_trailing": (r / "tdx/gtdx-v4-spr-e4/quote.dat").read_bytes(),
        "hcl": (r / "snp/azure-genoa-vtpm/hcl-report.bin").read_bytes(),
        "hcl_certs": [(r / "snp/azure-genoa-vtpm/vcek.pem").read_bytes(),
                      (r / "snp/roots/ask_ark_genoa.pem").read_bytes()],
        "sgx": (r / "sgx/occlum-v3/quote.dat").read_bytes(),
        "cca": (r / "cca/trustee-fvp/token.cbor").read_bytes(),
        "cpak": (r / "cca/trustee-fvp/cpak-pub.json").read_bytes(),
    } | {"signed_end": {}}


@pytest.fixture(scope="module", autouse=True)
def _signed_ends(real):
    """Where each quote's signature data ends (bytes past it are tolerated padding)."""
    for which in ("tdx", "tdx5", "sgx", "tdx_trailing"):
        data = real[which]
        header_and_body = len(parse_quote(data).signed)
        real["signed_end"][which] = header_and_body + 4 + int.from_bytes(data[header_and_body:header_and_body + 4],
                                                                          "little")


def test_unmutated_vectors_verify(real):
    """Control: each base verifies, so every refusal below is the mutation's doing."""
    verify_evidence("snp", real["snp"], certs=real["snp_certs"], at=AT)
    verify_evidence("snp", real["hcl"], certs=real["hcl_certs"], at=AT)
    for which in ("tdx", "tdx5", "sgx", "tdx_trailing"):
        verify_evidence("auto", real[which], at=AT)
    verify_evidence("cca", real["cca"], certs=[real["cpak"]], at=AT)


@SETTINGS
@given(data=st.data())
def test_fuzz_snp(real, data):
    ev = data.draw(_mutate(real["snp"]))
    _refused("snp", ev, real["snp_certs"])
    with contextlib.suppress(Error):
        parse_report(ev)


@SETTINGS
@given(data=st.data())
def test_fuzz_snp_hcl(real, data):
    """Every byte of an Azure HCL report is covered: the SNP signature, or the runtime-data hash, or zero padding."""
    _refused("snp", data.draw(_mutate(real["hcl"])), real["hcl_certs"])


@SETTINGS
@given(data=st.data(), which=st.sampled_from([0, 1]))
def test_fuzz_snp_certificates(real, data, which):
    """A mutated VCEK or ASK/ARK certificate is refused too, unless only the PEM armour of a --certs file
    changed (text outside the blocks, which PEM readers skip) and the certificates are byte-identical."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from enarx_pkg.attestation._x509 import load_certs

    certs = list(real["snp_certs"])
    certs[which] = data.draw(_mutate(certs[which]))
    try:
        same = [c.public_bytes(Encoding.DER) for c in load_certs(certs)] == \
            [c.public_bytes(Encoding.DER) for c in load_certs(real["snp_certs"])]
    except Error:
        same = False
    if same:
        assert verify_evidence("snp", real["snp"], certs=certs, at=AT).tee == "snp"
    else:
        _refused("snp", real["snp"], certs)


@SETTINGS
@given(data=st.data(), which=st.sampled_from(["tdx", "tdx5", "sgx", "tdx_trailing"]))
def test_fuzz_dcap(real, data, which):
    base = real[which]
    ev = data.draw(_mutate(base, real["signed_end"][which]))
    _refused("auto", ev)
    with contextlib.suppress(Error):
        parse_quote(ev)


@SETTINGS
@given(data=st.data())
def test_fuzz_dcap_trailing_bytes_tolerated(real, data):
    """The one tolerated region: bytes after the signature data (go-tdx-guest appends text there)."""
    base, end = real["tdx_trailing"], real["signed_end"]["tdx_trailing"]
    assert end < len(base)
    ev = data.draw(_edits(base[end:]).map(lambda e: base[:end] + _apply(base[end:], e)))
    assert verify_evidence("tdx", ev, at=AT).mrtd == verify_evidence("tdx", base, at=AT).mrtd


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
    _refused("cca", ev, [real["cpak"]])
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
    """A mutated tcbInfo is refused unless it still carries the same signed bytes and signature."""
    from enarx_pkg.attestation.collateral import Collateral
    from enarx_pkg.attestation.dcap import inspect_quote
    from enarx_pkg.attestation.tcb import evaluate, signed_document

    folder = testvectors / "tdx/collateral-2023-06-fmspc-50806f000000"
    col = Collateral.from_dir(folder)
    tcb_info = data.draw(_mutate(col.tcb_info))
    quote = (testvectors / "tdx/trustee-v4-spr/quote.dat").read_bytes()
    when = datetime(2023, 6, 20, tzinfo=UTC)
    mutated = Collateral(**{**col.__dict__, "tcb_info": tcb_info})
    try:
        same = signed_document(tcb_info, "tcbInfo", "fuzz")[1:] == signed_document(col.tcb_info, "tcbInfo", "fuzz")[1:]
    except Error:
        same = False
    if same:  # e.g. the signature's hex digits in another case: the very same signature
        assert verify_evidence("tdx", quote, collateral=mutated, at=when).tcb.status == "UpToDate"
    else:
        with pytest.raises(Error):
            verify_evidence("tdx", quote, collateral=mutated, at=when)
    try:
        value, _, _ = signed_document(tcb_info, "tcbInfo", "fuzz")
        evaluate(parse_quote(quote), inspect_quote(quote).pck, value, data.draw(st.none() | _json))
    except Error:
        pass
