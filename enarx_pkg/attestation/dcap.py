"""Intel DCAP ECDSA quotes: TDX v4/v5 and SGX v3. Parse, then verify the quote, QE report and PCK chain.

Layouts from Intel's "SGX ECDSA Quote Library API" and "TDX DCAP Quote Generation" specifications.
Every signature is ECDSA P-256/SHA-256 with raw big-endian r||s. Bytes after the signature data are
tolerated (several real quotes carry padding); a short quote is an error.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enarx_pkg.attestation import _der, _pki, _x509, anchors
from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence
from enarx_pkg.attestation.claims import PckInfo, SgxClaims, TdxClaims

if TYPE_CHECKING:
    from enarx_pkg.attestation.collateral import Collateral

SGX_BODY_LEN = 384
TD10_BODY_LEN = 584
TD15_BODY_LEN = 648
QE_REPORT_LEN = 384
MAX_QUOTE = 64 * 1024
TEE_SGX, TEE_TDX = 0x00, 0x81
SGX_DEBUG = 0x02  # ATTRIBUTES.DEBUG of an SGX report (the enclave's and the QE's)
SEPT_VE_DISABLE = 0x10  # TD ATTRIBUTES bit 28 (byte 3)
INTEL_QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_P256 = ec.SECP256R1()


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MalformedEvidence("quote.length", f"quote truncated while reading {what} at offset {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")


@dataclass(frozen=True)
class Quote:
    """A decoded, not yet verified, DCAP quote."""

    version: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    body: bytes
    signed: bytes
    signature: bytes
    att_key: bytes
    qe_report: bytes
    qe_report_sig: bytes
    qe_auth: bytes
    pck_chain: bytes

    @property
    def tee(self) -> str:
        return "tdx" if self.tee_type == TEE_TDX else "sgx"


def parse_quote(data: bytes) -> Quote:
    """Decode header, body and signature data; raise :class:`MalformedEvidence` on any inconsistency."""
    if len(data) > MAX_QUOTE:
        raise MalformedEvidence("quote.length", f"quote of {len(data)} bytes exceeds {MAX_QUOTE}")
    r = _Reader(data)
    version, key_type, tee_type = struct.unpack("<HHI", r.take(8, "header"))
    qe_svn, pce_svn = r.u16("qe_svn"), r.u16("pce_svn")
    vendor = r.take(16, "qe_vendor_id")
    r.take(20, "user_data")
    if key_type != 2:
        raise MalformedEvidence("quote.att_key_type", f"attestation key type {key_type} is not ECDSA P-256")
    body = _body(r, version, tee_type)
    signed = data[: r.pos]
    sig_len = r.u32("sig_data_len")
    sig = _Reader(r.take(sig_len, "signature data"))
    signature, att_key = sig.take(64, "quote signature"), sig.take(64, "attestation key")
    if version >= 4:
        ctype, csize = sig.u16("cert data type"), sig.u32("cert data size")
        if ctype != 6:
            raise MalformedEvidence("quote.cert_data_type", f"certification data type {ctype}, expected 6")
        sig = _Reader(sig.take(csize, "QE report certification data"))
    qe_report, qe_sig = sig.take(QE_REPORT_LEN, "QE report"), sig.take(64, "QE report signature")
    qe_auth = sig.take(sig.u16("qe_auth_data size"), "qe_auth_data")
    ctype, csize = sig.u16("cert data type"), sig.u32("cert data size")
    pck_chain = sig.take(csize, "PCK certificate chain") if ctype == 5 else b""
    return Quote(version, tee_type, qe_svn, pce_svn, vendor, body, signed, signature, att_key,
                 qe_report, qe_sig, qe_auth, pck_chain)


def _body(r: _Reader, version: int, tee_type: int) -> bytes:
    if version == 3:
        if tee_type != TEE_SGX:
            raise MalformedEvidence("quote.tee_type", f"v3 quote with TEE type {tee_type:#x}")
        return r.take(SGX_BODY_LEN, "SGX report body")
    if version == 4:
        if tee_type != TEE_TDX:
            raise MalformedEvidence("quote.tee_type", f"v4 quote with TEE type {tee_type:#x} (SGX v4 unsupported)")
        return r.take(TD10_BODY_LEN, "TD report body")
    if version == 5:
        body_type, size = r.u16("body type"), r.u32("body size")
        expected = {2: TD10_BODY_LEN, 3: TD15_BODY_LEN}.get(body_type)
        if tee_type != TEE_TDX or size != expected:
            raise MalformedEvidence("quote.body_type", f"v5 body type {body_type} size {size} is not a TD report")
        return r.take(size, "TD report body")
    raise MalformedEvidence("quote.version", f"unsupported quote version {version}")


def _sig(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"))


def _verify(key: ec.EllipticCurvePublicKey, sig: bytes, data: bytes, check: str, what: str) -> None:
    try:
        key.verify(_sig(sig), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise EvidenceError(check, what) from exc


@dataclass(frozen=True)
class _Pck:
    chain: tuple[x509.Certificate, ...]
    key: ec.EllipticCurvePublicKey
    info: PckInfo


def pck_info(leaf: x509.Certificate) -> PckInfo:
    """FMSPC, PCEID, PCESVN and CPUSVN components from the PCK certificate's SGX extension."""
    try:
        ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(_der.SGX_EXTENSIONS)).value
    except x509.ExtensionNotFound as exc:
        raise MalformedEvidence("pck.extensions", "PCK certificate has no SGX extension") from exc
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise MalformedEvidence("pck.extensions", "unexpected SGX extension type")
    v = _der.flatten(ext.value)
    base = _der.SGX_EXTENSIONS
    try:
        comps = tuple(int.from_bytes(v[f"{base}.2.{i}"], "big") for i in range(1, 17))
        return PckInfo(fmspc=v[f"{base}.4"].hex(), pceid=v[f"{base}.3"].hex(),
                       pcesvn=int.from_bytes(v[f"{base}.2.17"], "big"), cpusvn=comps,
                       not_before=leaf.not_valid_before_utc, not_after=leaf.not_valid_after_utc)
    except KeyError as exc:
        raise MalformedEvidence("pck.extensions", f"PCK SGX extension lacks {exc}") from exc


def order_chain(certs: Sequence[x509.Certificate], check: str = "pck.chain") -> tuple[x509.Certificate, ...]:
    """Leaf first, each next certificate the issuer of the previous, ending at a self-signed root;
    every supplied certificate must be on that one path."""
    issuers = {c.subject.public_bytes(): c for c in certs}
    leaves = [c for c in certs if not any(o.issuer == c.subject and o is not c for o in certs)]
    if len(leaves) != 1 or len(issuers) != len(certs):
        raise EvidenceError(check, "certificate chain does not have exactly one leaf and distinct subjects")
    chain = [leaves[0]]
    while chain[-1].issuer != chain[-1].subject and len(chain) < 5:
        nxt = issuers.get(chain[-1].issuer.public_bytes())
        if nxt is None:
            raise EvidenceError(check, f"issuer of {_x509.common_name(chain[-1])!r} is missing")
        chain.append(nxt)
    if len(chain) != len(certs):
        raise EvidenceError(check, f"{len(certs) - len(chain)} supplied certificate(s) are not on the path to the root")
    return tuple(chain)


def verified_pck_chain(pem: bytes) -> _Pck:
    """PCK ← Platform/Processor CA ← pinned Intel SGX Root, validated as RFC 5280 and QVL do."""
    return _verified_pck_chain(pem, anchors.intel_roots())


@lru_cache(maxsize=128)
def _verified_pck_chain(pem: bytes, roots: frozenset[str]) -> _Pck:
    """Time-independent checks, cached by the chain's bytes (and the pins they were checked against)."""
    chain = order_chain(_x509.load_certs([pem], "PCK certificate"))
    _x509.verify_chain(chain, roots, "pck.chain")
    _pki.validate_path(chain, "pck.chain")
    _pki.check_pck_roles(chain, "pck.chain")
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise EvidenceError("pck.chain.leaf_key", "PCK key is not ECDSA P-256")
    return _Pck(chain, key, pck_info(chain[0]))


def verify_quote(evidence: bytes, *, certs: Sequence[bytes] = (), collateral: Collateral | None = None,
                 at: datetime | None = None) -> TdxClaims | SgxClaims:
    """Verify quote signature, QE report binding and signature, PCK chain; appraise collateral if given."""
    q = parse_quote(evidence)
    if q.qe_vendor_id != INTEL_QE_VENDOR:  # only Intel's QE is appraised (QE identity, TCB info are Intel's)
        raise EvidenceError("quote.qe_vendor_id", f"quoting enclave vendor {q.qe_vendor_id.hex()} is not Intel's "
                            f"({INTEL_QE_VENDOR.hex()})")
    if q.pck_chain:
        _x509.check_strict_pem(q.pck_chain, "pck.chain.encoding")
    pem = q.pck_chain.rstrip(b"\0") or b"\n".join(certs)
    if not pem:
        raise EvidenceError("pck.chain", "quote carries no PCK chain and none was supplied")
    pck = verified_pck_chain(pem)
    when = _x509.now_or(at)
    _x509.check_chain_validity(pck.chain, when, "pck.chain")
    _verify(pck.key, q.qe_report_sig, q.qe_report, "qe_report.signature", "QE report is not signed by the PCK")
    if q.qe_report[48] & SGX_DEBUG:  # a debugger can make a debug QE sign anything: never a production QE
        raise EvidenceError("qe_report.debug", "the quoting enclave is a DEBUG enclave")
    binding = hashlib.sha256(q.att_key + q.qe_auth).digest()
    if q.qe_report[320:352] != binding or any(q.qe_report[352:384]):
        raise EvidenceError("qe_report.binding", "QE report_data does not bind the attestation key")
    _verify(_att_key(q.att_key), q.signature, q.signed, "quote.signature", "quote is not signed by the attestation key")
    tcb = None
    if collateral is not None:
        from enarx_pkg.attestation.tcb import appraise_collateral

        tcb = appraise_collateral(q, pck.chain, pck.info, collateral, when)
    return claims_of(q, pck.info, tcb)


@lru_cache(maxsize=128)
def _att_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """The attestation key (a QE keeps one for many quotes: decoded once)."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + raw)
    except ValueError as exc:
        raise EvidenceError("quote.att_key", "attestation key is not a P-256 point") from exc


def inspect_quote(evidence: bytes) -> TdxClaims | SgxClaims:
    """Decode a quote WITHOUT verifying it (for ``attest inspect``)."""
    q = parse_quote(evidence)
    chain = order_chain(_x509.load_certs([q.pck_chain.rstrip(b"\0")], "PCK certificate")) if q.pck_chain else ()
    if not chain:
        raise MalformedEvidence("pck.chain", "quote carries no PCK chain")
    return claims_of(q, pck_info(chain[0]), None)


def claims_of(q: Quote, pck: PckInfo, tcb: object) -> TdxClaims | SgxClaims:
    b = q.body
    if q.tee == "sgx":
        return SgxClaims(
            tee="sgx", version=q.version, measurement=b[64:96].hex(), report_data=b[320:384],
            debug=bool(b[48] & SGX_DEBUG), mrenclave=b[64:96].hex(), mrsigner=b[128:160].hex(),
            isvprodid=int.from_bytes(b[256:258], "little"), isvsvn=int.from_bytes(b[258:260], "little"),
            attributes=b[48:64].hex(), cpusvn=b[0:16].hex(), qe_svn=q.qe_svn, pce_svn=q.pce_svn,
            pck=pck, tcb=tcb,  # type: ignore[arg-type]
        )

    def h(a: int, n: int = 48) -> str:
        return b[a : a + n].hex()

    # TD ATTRIBUTES byte 0 is TUD ("TD under debug"): the TD is untrusted if ANY of its bits is set
    return TdxClaims(
        tee="tdx", version=q.version, measurement=h(136), report_data=b[520:584], debug=b[120] != 0,
        mrtd=h(136), rtmr=(h(328), h(376), h(424), h(472)), mrconfigid=h(184), mrowner=h(232),
        mrownerconfig=h(280), mrseam=h(16), td_attributes=h(120, 8), xfam=h(128, 8), tee_tcb_svn=h(0, 16),
        qe_svn=q.qe_svn, pce_svn=q.pce_svn, pck=pck, tcb=tcb,  # type: ignore[arg-type]
        sept_ve_disable=bool(b[123] & SEPT_VE_DISABLE), mrservicetd=h(600) if len(b) == TD15_BODY_LEN else "",
    )
