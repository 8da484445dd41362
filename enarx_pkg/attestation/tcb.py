"""Intel collateral: verify TCB info / QE identity / CRLs, then evaluate the platform's TCB status.

The signed bytes of a collateral document are the raw JSON of its ``tcbInfo`` / ``enclaveIdentity``
value exactly as it appears in the file. Level matching follows Intel's Quote Verification Library:
the first level whose every SGX component, PCESVN and (TDX) TEE TCB SVN is met decides the status.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg.attestation import _x509
from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence
from enarx_pkg.attestation.anchors import INTEL_SGX_ROOT_SPKI_SHA256
from enarx_pkg.attestation.claims import PckInfo, TcbEvaluation
from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.attestation.dcap import Quote, _sig, order_chain

# worst last: the overall status is the worst of platform, TDX module and QE
_RANK = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
         "OutOfDate", "OutOfDateConfigurationNeeded", "Unsupported", "Revoked"]


def signed_document(doc: bytes, key: str, check: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(parsed value, its raw signed bytes, signature) of ``{"<key>": {...}, "signature": "<hex>"}``."""
    try:
        text = doc.decode("utf-8")
        whole = json.loads(text)
        start = text.index(f'"{key}"') + len(key) + 2
        start = text.index(":", start) + 1
        while text[start] in " \t\r\n":
            start += 1
        value, end = json.JSONDecoder().raw_decode(text, start)
        sig = bytes.fromhex(whole["signature"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise MalformedEvidence(f"{check}.parse", f"cannot parse collateral: {exc}") from exc
    if not isinstance(value, dict) or value != whole.get(key) or len(sig) != 64:
        raise MalformedEvidence(f"{check}.parse", f"collateral '{key}' is ambiguous or its signature malformed")
    return value, text[start:end].encode("utf-8"), sig


@lru_cache(maxsize=32)
def _signing_chain(pem: bytes) -> tuple[x509.Certificate, ...]:
    chain = order_chain(_x509.load_certs([pem], "TCB signing certificate"))
    _x509.verify_chain(chain, [INTEL_SGX_ROOT_SPKI_SHA256], "collateral.signing_chain")
    return chain


def _verified_doc(doc: bytes, key: str, chain: Sequence[x509.Certificate], at: datetime, check: str) -> dict[str, Any]:
    value, raw, sig = signed_document(doc, key, check)
    pub = chain[0].public_key()
    try:
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        pub.verify(_sig(sig), raw, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise EvidenceError(f"{check}.signature", f"'{key}' is not signed by the TCB signing key") from exc
    issued, next_update = _date(value, "issueDate", check), _date(value, "nextUpdate", check)
    if not issued <= at <= next_update:
        raise EvidenceError(f"{check}.validity", f"'{key}' is valid {issued.isoformat()} .. "
                                                 f"{next_update.isoformat()}, not at {at.isoformat()}")
    return value


def _date(value: dict[str, Any], name: str, check: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value[name]).replace("Z", "+00:00"))
    except (KeyError, ValueError) as exc:
        raise MalformedEvidence(f"{check}.parse", f"'{name}' missing or not a date") from exc


def appraise_collateral(q: Quote, pck_chain: Sequence[x509.Certificate], pck: PckInfo, col: Collateral,
                        at: datetime) -> TcbEvaluation:
    """Check every supplied collateral item at ``at``, then evaluate the TCB status."""
    if col.tcb_info is None or col.tcb_signing_chain is None:
        raise EvidenceError("collateral.tcb_info", "collateral lacks tcbinfo.json or tcb_signing_chain.pem")
    chain = _signing_chain(col.tcb_signing_chain)
    _x509.check_chain_validity(chain, at, "collateral.signing_chain")
    tcb_info = _verified_doc(col.tcb_info, "tcbInfo", chain, at, "collateral.tcb_info")
    qe_id = None
    if col.qe_identity is not None:
        qe_id = _verified_doc(col.qe_identity, "enclaveIdentity", chain, at, "collateral.qe_identity")
    if col.pck_crl is not None:
        _check_crl(col.pck_crl, pck_chain[1], pck_chain[0], at, "collateral.pck_crl")
    if col.root_crl is not None:
        _check_crl(col.root_crl, pck_chain[-1], pck_chain[1], at, "collateral.root_crl")
    ev = evaluate(q, pck, tcb_info, qe_id)
    return replace(ev, crl_checked=col.pck_crl is not None and col.root_crl is not None)


def _check_crl(der: bytes, issuer: x509.Certificate, subject: x509.Certificate, at: datetime, check: str) -> None:
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise MalformedEvidence(f"{check}.parse", f"cannot parse CRL: {exc}") from exc
    try:
        _check_crl_fields(crl, issuer, subject, at, check)
    except ValueError as exc:  # the CRL's fields are decoded lazily
        raise MalformedEvidence(f"{check}.parse", f"malformed CRL: {exc}") from exc


def _check_crl_fields(crl: x509.CertificateRevocationList, issuer: x509.Certificate,
                      subject: x509.Certificate, at: datetime, check: str) -> None:
    key = issuer.public_key()
    if crl.issuer != issuer.subject or not isinstance(key, ec.EllipticCurvePublicKey) \
            or not crl.is_signature_valid(key):
        raise EvidenceError(f"{check}.signature", f"CRL is not signed by {_x509.common_name(issuer)!r}")
    nxt = crl.next_update_utc
    if at < crl.last_update_utc or (nxt is not None and at > nxt):
        raise EvidenceError(f"{check}.validity", f"CRL is not current at {at.isoformat()}")
    if crl.get_revoked_certificate_by_serial_number(subject.serial_number) is not None:
        raise EvidenceError(f"{check}.revoked", f"{_x509.common_name(subject)!r} is revoked")


def evaluate(q: Quote, pck: PckInfo, tcb_info: dict[str, Any], qe_id: dict[str, Any] | None) -> TcbEvaluation:
    """Pure TCB evaluation of a quote against already-verified collateral values."""
    try:
        return _evaluate(q, pck, tcb_info, qe_id)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise MalformedEvidence("collateral.parse", f"collateral is missing or has a malformed field: {exc}") from exc


def _evaluate(q: Quote, pck: PckInfo, info: dict[str, Any], qe_id: dict[str, Any] | None) -> TcbEvaluation:
    if str(info["fmspc"]).lower() != pck.fmspc:
        raise EvidenceError("collateral.fmspc", f"TCB info is for FMSPC {info['fmspc']}, PCK has {pck.fmspc}")
    if str(info.get("pceId", pck.pceid)).lower() != pck.pceid:
        raise EvidenceError("collateral.pceid", f"TCB info is for PCEID {info['pceId']}, PCK has {pck.pceid}")
    tee_svn = q.body[:16] if q.tee == "tdx" else b""
    if q.tee == "tdx":
        _check_module(q, info.get("tdxModule"))
    level = _match_level(info["tcbLevels"], pck, tee_svn)
    status = level["tcbStatus"] if level else "Unsupported"
    module = _module_status(info, tee_svn) if tee_svn and tee_svn[1] > 0 else ""
    qe = _qe_status(q.qe_report, qe_id) if qe_id is not None else ""
    overall = max([status, module or "UpToDate", qe or "UpToDate"], key=_rank)
    return TcbEvaluation(status=overall, tcb_date=level["tcbDate"] if level else "",
                         advisory_ids=tuple(level.get("advisoryIDs", ())) if level else (),
                         qe_status=qe, module_status=module, fmspc=pck.fmspc)


def _rank(status: str) -> int:
    return _RANK.index(status) if status in _RANK else len(_RANK)


def _match_level(levels: list[dict[str, Any]], pck: PckInfo, tee_svn: bytes) -> dict[str, Any] | None:
    for level in levels:
        t = level["tcb"]
        sgx = [int(c["svn"]) for c in t["sgxtcbcomponents"]]
        if any(want > have for want, have in zip(sgx, pck.cpusvn, strict=True)) or t["pcesvn"] > pck.pcesvn:
            continue
        if tee_svn:
            tdx = [int(c["svn"]) for c in t["tdxtcbcomponents"]]
            start = 2 if tee_svn[1] > 0 else 0  # bytes 0-1 are checked against the TDX module identity
            if any(tdx[i] > tee_svn[i] for i in range(start, 16)):
                continue
        return level
    return None


def _check_module(q: Quote, module: dict[str, Any] | None) -> None:
    if module is None:
        return
    signer, attrs = q.body[64:112].hex(), int.from_bytes(q.body[112:120], "big")
    mask = int(module["attributesMask"], 16)
    if signer != module["mrsigner"].lower() or attrs & mask != int(module["attributes"], 16) & mask:
        raise EvidenceError("collateral.tdx_module", "TDX module signer/attributes do not match TCB info")


def _module_status(info: dict[str, Any], tee_svn: bytes) -> str:
    ident = f"TDX_{tee_svn[1]:02X}"
    for m in info.get("tdxModuleIdentities", ()):
        if m["id"].upper() == ident:
            for level in m["tcbLevels"]:
                if level["tcb"]["isvsvn"] <= tee_svn[0]:
                    return str(level["tcbStatus"])
            return "Unsupported"
    raise EvidenceError("collateral.tdx_module", f"TCB info has no identity for TDX module {ident}")


def _qe_status(report: bytes, ident: dict[str, Any]) -> str:
    misc, attrs = int.from_bytes(report[16:20], "little"), int.from_bytes(report[48:64], "big")
    misc_ok = misc & int(ident["miscselectMask"], 16) == int(ident["miscselect"], 16) & int(ident["miscselectMask"], 16)
    mask = int(ident["attributesMask"], 16)
    if not misc_ok or attrs & mask != int(ident["attributes"], 16) & mask:
        raise EvidenceError("collateral.qe_identity", "QE miscselect/attributes do not match the QE identity")
    if report[128:160].hex() != ident["mrsigner"].lower() or int.from_bytes(report[256:258], "little") != \
            ident["isvprodid"]:
        raise EvidenceError("collateral.qe_identity", "QE mrsigner/isvprodid do not match the QE identity")
    isvsvn = int.from_bytes(report[258:260], "little")
    for level in ident["tcbLevels"]:
        if level["tcb"]["isvsvn"] <= isvsvn:
            return str(level["tcbStatus"])
    return "Unsupported"
