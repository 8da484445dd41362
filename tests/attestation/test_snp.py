"""SEV-SNP: every real report parses to the README's values and verifies; every attack is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from enarx_pkg.attestation import EvidenceError, MalformedEvidence, verify_evidence
from enarx_pkg.attestation.claims import SnpTcb
from enarx_pkg.attestation.snp import parse_cert_table, parse_report, verify_snp

from .conftest import NOW_2026, SNP_VECTORS

EXPECTED = {
    "gsg-milan-debug": dict(
        version=2, guest_svn=0, vmpl=0, policy=0xB0000, debug=True, product="Milan", signing_key="vcek",
        measurement="b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01",
        report_id="8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a",
        chip_id="3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea4"
                "64cdce40c05f63c9b610c5068b006b5d",
        reported_tcb=SnpTcb(2, 0, 5, 68), platform_info=1, firmware="1.49 build 3"),
    "virtee-milan": dict(
        version=2, policy=0x30000, debug=False, product="Milan", reported_tcb=SnpTcb(3, 0, 8, 115),
        measurement="7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
        firmware="1.52 build 4"),
    "trustee-milan-idblock": dict(
        version=2, guest_svn=4, policy=0x3001F, family_id="01" + "00" * 15, image_id="02" + "00" * 15,
        measurement="a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
        id_key_digest="0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3",
        reported_tcb=SnpTcb(3, 0, 8, 115)),
    "trustee-milan-vlek": dict(
        version=3, vmpl=1, signing_key="vlek", chip_id="00" * 64, product="Milan", platform_info=0x27,
        measurement="8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0",
        reported_tcb=SnpTcb(4, 0, 24, 217), firmware="1.55 build 29"),
    "azure-genoa-vtpm": dict(
        version=3, guest_svn=0x1000B, product="Genoa", policy=0x3001F, reported_tcb=SnpTcb(10, 0, 23, 84),
        measurement="f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae",
        firmware="1.55 build 40", platform_info=0x24),
}


@pytest.mark.parametrize("name", sorted(SNP_VECTORS))
def test_vector_verifies_with_readme_values(vec, name):
    report, certs, at = vec.snp(name)
    claims = verify_evidence("snp", report, certs=certs, at=at)
    for field, value in EXPECTED[name].items():
        assert getattr(claims, field) == value, field


def test_report_data_values(vec):
    report, certs, at = vec.snp("gsg-milan-debug")
    assert verify_snp(report, certs=certs, at=at).report_data == bytes.fromhex("0102030405") + bytes(59)
    c = parse_report(vec.read("snp/trustee-milan-idblock/report.bin"))
    assert c.current_tcb.microcode == 206 and c.reported_tcb.microcode == 115


def test_vlek_expired_at_current_date(vec):
    report, certs, _ = vec.snp("trustee-milan-vlek")
    with pytest.raises(EvidenceError, match="expired") as exc:
        verify_snp(report, certs=certs, at=NOW_2026)
    assert exc.value.check == "snp.chain.validity"


def test_not_yet_valid_certificate(vec):
    report, certs, _ = vec.snp("virtee-milan")
    with pytest.raises(EvidenceError, match="not valid before") as exc:
        verify_snp(report, certs=certs, at=datetime(2023, 1, 1, tzinfo=UTC))
    assert exc.value.check == "snp.chain.validity"


def test_azure_hcl_wrapper_verifies_and_binds_runtime_data(vec):
    import hashlib

    hcl = vec.read("snp/azure-genoa-vtpm/hcl-report.bin")
    _, certs, at = vec.snp("azure-genoa-vtpm")
    claims = verify_evidence("auto", hcl, certs=certs, at=at)  # HCL is detected as SNP
    runtime = hcl[0x4D4 : 0x4D4 + 1200]
    assert hcl[0x20 + 0x50 : 0x20 + 0x70] == hashlib.sha256(runtime).digest()
    assert claims.tee == "snp" and claims.report_data == bytes(64)  # the runtime data's user-data
    assert '"kid":"HCLAkPub"' in claims.hcl_ak_pub


def _hcl_with_runtime(hcl: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and hcl.count(old) == 1
    return hcl.replace(old, new)


def test_azure_hcl_tampered_ak_public_key_refused(vec):
    """The host swaps the vTPM attestation key for its own: REPORT_DATA no longer hashes the runtime data."""
    import json

    hcl = vec.read("snp/azure-genoa-vtpm/hcl-report.bin")
    _, certs, at = vec.snp("azure-genoa-vtpm")
    n = json.loads(hcl[0x4D4 : 0x4D4 + 1200].rstrip(b"\0"))["keys"][0]["n"].encode()
    forged = _hcl_with_runtime(hcl, n[:20], b"A" * 20)
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("auto", forged, certs=certs, at=at)
    assert exc.value.check == "snp.hcl.report_data"


def test_azure_hcl_tampered_user_data_refused(vec):
    hcl = vec.read("snp/azure-genoa-vtpm/hcl-report.bin")
    _, certs, at = vec.snp("azure-genoa-vtpm")
    forged = _hcl_with_runtime(hcl, b'"user-data":"00', b'"user-data":"ff')
    with pytest.raises(EvidenceError) as exc:
        verify_evidence("snp", forged, certs=certs, at=at)
    assert exc.value.check == "snp.hcl.report_data"


@pytest.mark.parametrize("offset, value, check", [
    (4, 3, "snp.hcl.header"),  # HCL header version
    (16, 1, "snp.hcl.header"),  # status
    (24, 9, "snp.hcl.header"),  # reserved
    (8, 2437, "snp.hcl.header"),  # total size
    (0x4C0 + 4, 2, "snp.hcl.header"),  # runtime claims version
    (0x4C0 + 8, 4, "snp.hcl.header"),  # report type TDX
    (0x4C0 + 12, 9, "snp.hcl.header"),  # unknown hash type
    (0x4C0 + 16, 5000, "snp.hcl.header"),  # runtime data longer than the report
    (2599, 1, "snp.hcl.padding"),
])
def test_azure_hcl_malformed_headers_refused(vec, offset, value, check):
    hcl = bytearray(vec.read("snp/azure-genoa-vtpm/hcl-report.bin"))
    hcl[offset : offset + (1 if offset == 2599 else 4)] = value.to_bytes(1 if offset == 2599 else 4, "little")
    _, certs, at = vec.snp("azure-genoa-vtpm")
    with pytest.raises(MalformedEvidence) as exc:
        verify_evidence("snp", bytes(hcl), certs=certs, at=at)
    assert exc.value.check == check


@pytest.mark.parametrize("bad", ["vcek-invalid-legacy.der", "vcek-invalid-new.der"])
def test_another_chips_vcek_refused(vec, bad):
    report, certs, at = vec.snp("trustee-milan-idblock")
    other = vec.read(f"snp/trustee-milan-idblock/negative/{bad}")
    with pytest.raises(EvidenceError) as exc:
        verify_snp(report, certs=[other, certs[1]], at=at)
    assert exc.value.check.startswith("snp.chain")


def test_valid_vcek_of_another_chip_refused(vec):
    """A genuine VCEK chained to AMD, but of a different chip: the signature and hwID give it away."""
    report, _, at = vec.snp("virtee-milan")
    _, other_certs, _ = vec.snp("gsg-milan-debug")
    with pytest.raises(EvidenceError) as exc:
        verify_snp(report, certs=other_certs, at=at)
    assert exc.value.check in ("snp.signature", "snp.chip_id")


def test_wrong_product_chain_refused(vec):
    report, certs, at = vec.snp("virtee-milan")
    with pytest.raises(EvidenceError) as exc:
        verify_snp(report, certs=[certs[0], vec.read("snp/roots/ask_ark_genoa.pem")], at=at)
    assert exc.value.check == "snp.certs.chain"


def test_wrong_product_ark_under_milan_ask_refused(vec):
    """Milan ASK presented with the Genoa ARK (subject names forged by re-labelling are caught by signature)."""
    from enarx_pkg.attestation import _x509

    _report, certs, _at = vec.snp("virtee-milan")
    milan_ask = _x509.load_certs([certs[1]])[0]
    genoa_ark = _x509.load_certs([vec.read("snp/roots/ask_ark_genoa.pem")])[1]
    with pytest.raises(EvidenceError):
        _x509.verify_signed_by(milan_ask, genoa_ark, "snp.chain.signature")


def test_unpinned_root_refused(vec, tmp_path):
    """A self-made ARK look-alike: chain signatures fine, key not pinned."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    from enarx_pkg.attestation import _x509

    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ARK-Milan")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime(2020, 1, 1)).not_valid_after(datetime(2040, 1, 1))
            .sign(key, hashes.SHA384(), rsa_padding=padding.PSS(padding.MGF1(hashes.SHA384()), 48)))
    with pytest.raises(EvidenceError) as exc:
        _x509.verify_chain([cert], ["00" * 32], "snp.chain")
    assert exc.value.check == "snp.chain.root_pin"


@pytest.mark.parametrize("offset", [0x00, 0x08, 0x38, 0x50, 0x6F, 0x90, 0xBF, 0x180, 0x1A0, 0x1F0, 0x29F])
def test_flipped_bit_in_signed_region_refused(vec, offset):
    report, certs, at = vec.snp("virtee-milan")
    bad = bytearray(report)
    bad[offset] ^= 0x04
    with pytest.raises(EvidenceError):
        verify_snp(bytes(bad), certs=certs, at=at)


@pytest.mark.parametrize("offset", [0x2A0, 0x2D0, 0x2E8, 0x300])
def test_flipped_bit_in_signature_refused(vec, offset):
    report, certs, at = vec.snp("virtee-milan")
    bad = bytearray(report)
    bad[offset] ^= 0x01
    with pytest.raises(EvidenceError):
        verify_snp(bytes(bad), certs=certs, at=at)


@pytest.mark.parametrize("length", [0, 1, 100, 0x2A0, 1183, 1185])
def test_truncated_or_extended_report_malformed(vec, length):
    report, certs, at = vec.snp("virtee-milan")
    data = (report + bytes(8))[:length]
    with pytest.raises(MalformedEvidence):
        verify_snp(data, certs=certs, at=at)


def test_missing_certificates(vec):
    report, certs, at = vec.snp("virtee-milan")
    with pytest.raises(EvidenceError, match="no SEV-VCEK"):
        verify_snp(report, certs=[], at=at)
    with pytest.raises(EvidenceError, match="ASK/ASVK and ARK"):
        verify_snp(report, certs=certs[:1], at=at)


def test_turin_vcek_chain_and_tcb_layout(vec):
    from enarx_pkg.attestation import snp

    ch = snp._chain_for((vec.read("snp/turin-vcek-chain-only/vcek.der"), vec.read("snp/roots/ask_ark_turin.pem")),
                        "vcek", "00" * 64)
    assert ch.product == "Turin" and ch.hwid == bytes.fromhex("1e550a8ee5cf9f4d")
    assert ch.tcb == {"bootloader": 0, "tee": 0, "snp": 0, "microcode": 9, "fmc": 0}
    assert snp._tcb(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "little"), "Turin") == SnpTcb(2, 3, 4, 9, fmc=1)


def test_cert_table_from_auxblob(vec):
    report, certs, at = vec.snp("virtee-milan")
    table = _cert_table([certs[0], certs[1]])
    assert parse_cert_table(table) == [certs[0], certs[1]]
    assert verify_snp(report, certs=parse_cert_table(table), at=at).measurement.startswith("7a1e5c26")
    with pytest.raises(MalformedEvidence):
        parse_cert_table(table[:40])


def _cert_table(blobs: list[bytes]) -> bytes:
    import struct
    import uuid

    header_len = 24 * (len(blobs) + 1)
    entries, body, off = b"", b"", header_len
    for blob in blobs:
        entries += uuid.uuid4().bytes + struct.pack("<II", off, len(blob))
        body += blob
        off += len(blob)
    return entries + bytes(24) + body


def test_crl_signed_by_other_key_refused(vec):
    """An AMD CRL must be signed by the ARK; a CRL from any other key is refused."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    report, certs, at = vec.snp("virtee-milan")
    key = ec.generate_private_key(ec.SECP384R1())
    from enarx_pkg.attestation import _x509

    ark_name = _x509.load_certs([certs[1]])[1].subject
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ark_name).last_update(datetime(2024, 1, 1))
           .next_update(datetime(2030, 1, 1)).sign(key, hashes.SHA384()))
    with pytest.raises(EvidenceError) as exc:
        verify_snp(report, certs=certs, at=at, crl=crl.public_bytes(Encoding.DER))
    assert exc.value.check == "snp.crl.signature"
