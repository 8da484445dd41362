"""AMD SEV-SNP attestation reports (v2 to v5): parse, and verify VCEK/VLEK ← ASK/ASVK ← ARK.

Layout and algorithms from AMD's SEV-SNP ABI specification (report structure, Table 23) and the
VCEK certificate specification (TCB and hwID extensions under 1.3.6.1.4.1.3704.1).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from enarx_pkg.attestation import _pki, _x509, anchors, hcl
from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence
from enarx_pkg.attestation.claims import SnpClaims, SnpTcb

REPORT_LEN = 1184
SIGNED_LEN = 0x2A0
VERSIONS = (2, 3, 4, 5)  # same layout; v5 (SNP ABI 1.57+, Turin) fills the two mitigation vectors at 0x1F8
_OID = "1.3.6.1.4.1.3704.1."
_TCB_OIDS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
_DER = Encoding.DER
_LE = struct.Struct("<IIQ")


def _tcb(raw: int, product: str) -> SnpTcb:
    b = raw.to_bytes(8, "little")
    if product == "Turin":
        return SnpTcb(bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7], fmc=b[0])
    return SnpTcb(bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])


def _cpuid_product(version: int, fam: int, mod: int) -> str:
    if version < 3 or fam == 0:
        return ""
    if fam == 0x19:
        return "Milan" if mod < 0x10 else "Genoa"
    if fam == 0x1A:
        return "Turin"
    return f"family-{fam:#x}"


def unwrap(evidence: bytes) -> bytes:
    """The 1184-byte report, also from inside an Azure HCL report (magic ``HCLA``)."""
    if evidence.startswith(hcl.MAGIC):
        return hcl.parse(evidence).report
    if len(evidence) != REPORT_LEN:
        raise MalformedEvidence("snp.length", f"an SNP report is {REPORT_LEN} bytes, got {len(evidence)}")
    return evidence


def _peek(r: bytes) -> tuple[int, str]:
    """Version and CPUID product of a report, after the checks every parse needs."""
    version, sig_algo = int.from_bytes(r[0:4], "little"), int.from_bytes(r[0x34:0x38], "little")
    if version not in VERSIONS:
        raise MalformedEvidence("snp.version", f"unsupported SNP report version {version} (accepted: 2 to 5)")
    if sig_algo != 1:
        raise MalformedEvidence("snp.signature_algo", f"signature algorithm {sig_algo} is not ECDSA P-384/SHA-384")
    if any(r[SIGNED_LEN + 144 :]):
        raise MalformedEvidence("snp.signature.reserved", "reserved bytes after the signature are not zero")
    _signing_key(r)
    return version, _cpuid_product(version, r[0x188], r[0x189])


def _signing_key(r: bytes) -> str:
    """SIGNING_KEY (bits 4:2 of the flags at 0x48): 0 VCEK, 1 VLEK; 7 (no key) and reserved values refused."""
    value = (r[0x48] >> 2) & 7
    if value not in (0, 1):
        raise MalformedEvidence("snp.signing_key", f"SIGNING_KEY {value} is neither VCEK (0) nor VLEK (1)")
    return "vlek" if value == 1 else "vcek"


def parse_report(evidence: bytes, product: str = "", *, crl_checked: bool = False) -> SnpClaims:
    """Decode a report WITHOUT verifying it (``inspect``). ``product`` selects the TCB layout."""
    r = unwrap(evidence)
    version, guest_svn, policy = _LE.unpack_from(r, 0)
    vmpl = struct.unpack_from("<I", r, 0x30)[0]
    product = product or _peek(r)[1]
    signing_key = _signing_key(r)
    flags = r[0x48]
    def u64(off: int) -> int:
        return int.from_bytes(r[off : off + 8], "little")

    return SnpClaims(
        tee="snp", version=version, product=product,
        measurement=r[0x90:0xC0].hex(), report_data=r[0x50:0x90], debug=bool(policy >> 19 & 1),
        policy=policy, smt_allowed=bool(policy >> 16 & 1), migrate_ma=bool(policy >> 18 & 1),
        guest_svn=guest_svn, vmpl=vmpl, host_data=r[0xC0:0xE0].hex(),
        id_key_digest=r[0xE0:0x110].hex(), author_key_digest=r[0x110:0x140].hex(),
        family_id=r[0x10:0x20].hex(), image_id=r[0x20:0x30].hex(), report_id=r[0x140:0x160].hex(),
        chip_id=r[0x1A0:0x1E0].hex(), signing_key=signing_key, author_key_en=bool(flags & 1),
        reported_tcb=_tcb(u64(0x180), product), current_tcb=_tcb(u64(0x38), product),
        committed_tcb=_tcb(u64(0x1E0), product), launch_tcb=_tcb(u64(0x1F0), product),
        platform_info=u64(0x40), firmware=f"{r[0x1EA]}.{r[0x1E9]} build {r[0x1E8]}", crl_checked=crl_checked,
        launch_mit_vector=u64(0x1F8) if version >= 5 else 0, current_mit_vector=u64(0x200) if version >= 5 else 0,
    )


def _signature(r: bytes) -> bytes:
    sig = r[SIGNED_LEN : SIGNED_LEN + 144]
    if any(sig[48:72]) or any(sig[120:144]):
        raise EvidenceError("snp.signature", "signature R/S has non-zero high bytes")
    return encode_dss_signature(int.from_bytes(sig[:72], "little"), int.from_bytes(sig[72:144], "little"))


@dataclass(frozen=True)
class _Chain:
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    product: str
    key: ec.EllipticCurvePublicKey
    hwid: bytes | None
    tcb: dict[str, int]


def _ext_int(der: bytes) -> int:
    if len(der) < 3 or der[0] != 0x02 or der[1] != len(der) - 2:
        raise MalformedEvidence("snp.vcek.extension", "TCB extension is not a DER INTEGER")
    return int.from_bytes(der[2:], "big")


@lru_cache(maxsize=128)
def _verified_chain_pinned(leaf_der: bytes, ask_der: bytes, ark_der: bytes,
                           ark_pins: tuple[tuple[str, str], ...]) -> _Chain:
    """Signatures, pin and extensions (time-independent), cached by certificate bytes."""
    leaf, ask, ark = _x509.load_certs([leaf_der, ask_der, ark_der])
    pins = dict(ark_pins)
    pin = _x509.verify_chain([leaf, ask, ark], pins.values(), "snp.chain")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise EvidenceError("snp.chain.leaf_key", "VCEK/VLEK key is not ECDSA P-384")
    exts = {e.oid.dotted_string: e.value for e in leaf.extensions}
    raw = {k: v.value for k, v in exts.items() if isinstance(v, x509.UnrecognizedExtension)}
    product = {p: product for product, p in pins.items()}[pin]
    names = [n for n in _TCB_OIDS if n != "fmc" or product == "Turin"]
    missing = [n for n in names if _OID + _TCB_OIDS[n] not in raw]
    if missing:
        raise EvidenceError("snp.vcek.extension", f"{_x509.common_name(leaf)} lacks the TCB extension(s) "
                                                  f"{', '.join(missing)}")
    tcb = {name: _ext_int(raw[_OID + _TCB_OIDS[name]]) for name in names}
    return _Chain(leaf, (leaf, ask, ark), product, key, raw.get(_OID + "4"), tcb)


def _chain_for(certs: tuple[bytes, ...], signing_key: str, chip_id: str) -> _Chain:
    """Pick and verify the chain for one report from a bag of certificates (cached by their bytes)."""
    return _chain_for_pinned(certs, signing_key, chip_id, tuple(sorted(anchors.amd_arks().items())))


@lru_cache(maxsize=128)
def _chain_for_pinned(certs: tuple[bytes, ...], signing_key: str, chip_id: str,
                      ark_pins: tuple[tuple[str, str], ...]) -> _Chain:
    leaf, ask, ark = _pick(_x509.load_certs(certs), signing_key, chip_id)
    ch = _verified_chain_pinned(leaf.public_bytes(_DER), ask.public_bytes(_DER), ark.public_bytes(_DER), ark_pins)
    _pki.check_amd_roles(ch.chain, ch.product, signing_key, "snp.chain")
    return ch


def _pick(certs: Sequence[x509.Certificate], signing_key: str, chip_id: str) -> tuple[x509.Certificate, ...]:
    """Choose leaf, intermediate and root from an unordered bag of certificates."""
    want = "SEV-VLEK" if signing_key == "vlek" else "SEV-VCEK"
    leaves = [c for c in certs if _x509.common_name(c) == want]
    if not leaves:
        raise EvidenceError("snp.certs.leaf", f"no {want} certificate supplied (use --certs or the host's table)")
    chip = bytes.fromhex(chip_id)
    leaf = next((c for c in leaves if (h := _hwid(c)) and chip.startswith(h)), leaves[0])
    ask = next((c for c in certs if c.subject == leaf.issuer), None)
    ark = next((c for c in certs if ask is not None and c.subject == ask.issuer), None)
    if ask is None or ark is None:
        raise EvidenceError("snp.certs.chain", f"the ASK/ASVK and ARK issuing {want} were not supplied")
    return leaf, ask, ark


def _hwid(cert: x509.Certificate) -> bytes | None:
    for e in cert.extensions:
        if e.oid.dotted_string == _OID + "4" and isinstance(e.value, x509.UnrecognizedExtension):
            return e.value.value
    return None


def verify_snp(evidence: bytes, *, certs: Sequence[bytes] = (), at: datetime | None = None,
               crl: bytes | None = None) -> SnpClaims:
    """Verify an SNP report's signature, its certificate chain at ``at``, chip id and TCB binding.

    Inside an Azure HCL report, REPORT_DATA must also hash the HCL runtime data; the claims' report_data
    is then the runtime data's ``user-data`` (what the guest asked to bind).
    """
    wrapped = hcl.parse(evidence) if evidence.startswith(hcl.MAGIC) else None
    r = wrapped.report if wrapped else unwrap(evidence)
    cpuid_product = _peek(r)[1]
    ch = _chain_for(tuple(certs), _signing_key(r), r[0x1A0:0x1E0].hex())
    when = _x509.now_or(at)
    _x509.check_chain_validity(ch.chain, when, "snp.chain")
    if crl is not None:  # the ARK's CRL lists revoked ASKs/ASVKs (VCEKs all carry serial 0 and are not listed)
        _pki.check_crl(crl, ch.chain[-1], ch.chain[1:2], when, "snp.crl")
    if cpuid_product and cpuid_product != ch.product:
        raise EvidenceError("snp.product", f"report CPUID says {cpuid_product} but the chain is AMD {ch.product}")
    claims = parse_report(r, ch.product, crl_checked=crl is not None)
    try:
        ch.key.verify(_signature(r), r[:SIGNED_LEN], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise EvidenceError("snp.signature", "report signature does not verify under the VCEK/VLEK") from exc
    _check_binding(claims, ch)
    if wrapped is not None:
        hcl.check_binding(wrapped)
        claims = replace(claims, report_data=wrapped.user_data, hcl_ak_pub=wrapped.ak_pub)
    return claims


def _check_binding(claims: SnpClaims, ch: _Chain) -> None:
    """The VCEK certifies one chip at one TCB: both must match the report (VLEKs carry no hwID)."""
    if claims.signing_key == "vcek":
        chip = bytes.fromhex(claims.chip_id)
        if ch.hwid is None or not chip.startswith(ch.hwid) or any(chip[len(ch.hwid):]):
            raise EvidenceError("snp.chip_id", "report chip_id does not match the VCEK hwID extension")
    got = {k: getattr(claims.reported_tcb, k) for k in ch.tcb}
    if got != ch.tcb:
        raise EvidenceError("snp.reported_tcb", f"report TCB {got} does not match the certificate's TCB {ch.tcb}")


def parse_cert_table(aux: bytes) -> list[bytes]:
    """Certificates from an SNP extended-report certificate table (configfs-tsm auxblob)."""
    out: list[bytes] = []
    for i in range(0, min(len(aux), 4096), 24):
        entry = aux[i : i + 24]
        if len(entry) < 24 or not any(entry):
            break
        off, size = struct.unpack_from("<II", entry, 16)
        if off + size > len(aux) or size == 0:
            raise MalformedEvidence("snp.cert_table", f"entry {i // 24} points outside the table")
        out.append(aux[off : off + size])
    return out
