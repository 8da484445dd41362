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

from enarx_pkg.attestation import _pki, _x509, anchors
from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence
from enarx_pkg.attestation.claims import PckInfo, TcbEvaluation
from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.attestation.dcap import Quote, _sig, order_chain

_STATUSES = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
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


def signing_chain(pem: bytes) -> tuple[x509.Certificate, ...]:
    """TCB Signing ← pinned Intel SGX Root, validated as RFC 5280 and QVL do (cached by bytes)."""
    return _signing_chain(pem, anchors.intel_roots())


@lru_cache(maxsize=32)
def _signing_chain(pem: bytes, roots: frozenset[str]) -> tuple[x509.Certificate, ...]:
    chain = order_chain(_x509.load_certs([pem], "TCB signing certificate"), "collateral.signing_chain")
    _x509.verify_chain(chain, roots, "collateral.signing_chain")
    _pki.validate_path(chain, "collateral.signing_chain")
    _pki.check_tcb_signing_roles(chain, "collateral.signing_chain")
    return chain


def _verified_doc(doc: bytes, key: str, chain_pem: bytes, at: datetime, check: str) -> dict[str, Any]:
    value = _signed_by(doc, key, chain_pem, anchors.intel_roots(), check)
    issued, next_update = _date(value, "issueDate", check), _date(value, "nextUpdate", check)
    if not issued <= at <= next_update:
        raise EvidenceError(f"{check}.validity", f"'{key}' is valid {issued.isoformat()} .. "
                                                 f"{next_update.isoformat()}, not at {at.isoformat()}")
    return value


@lru_cache(maxsize=64)
def _signed_by(doc: bytes, key: str, chain_pem: bytes, roots: frozenset[str], check: str) -> dict[str, Any]:
    """The document's value once its signature verifies under the (already validated) chain's leaf;
    time-independent, so cached by the bytes (callers only read the value)."""
    value, raw, sig = signed_document(doc, key, check)
    pub = _signing_chain(chain_pem, roots)[0].public_key()
    try:
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        pub.verify(_sig(sig), raw, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise EvidenceError(f"{check}.signature", f"'{key}' is not signed by the TCB signing key") from exc
    return value


def _date(value: dict[str, Any], name: str, check: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value[name]).replace("Z", "+00:00"))
    except (KeyError, ValueError) as exc:
        raise MalformedEvidence(f"{check}.parse", f"'{name}' missing or not a date") from exc


def appraise_collateral(q: Quote, pck_chain: Sequence[x509.Certificate], pck: PckInfo, col: Collateral,
                        at: datetime) -> TcbEvaluation:
    """Check every supplied collateral item at ``at``, then evaluate the TCB status.

    What is absent is recorded (``qe_checked``, ``crl_checked``) for the policy to require; what is
    present and wrong (expired, badly signed, for another TEE) is a refusal.
    """
    if col.tcb_info is None or col.tcb_signing_chain is None:
        raise EvidenceError("collateral.tcb_info", "collateral lacks tcbinfo.json or tcb_signing_chain.pem")
    chain = signing_chain(col.tcb_signing_chain)
    _x509.check_chain_validity(chain, at, "collateral.signing_chain")
    tcb_info = _verified_doc(col.tcb_info, "tcbInfo", col.tcb_signing_chain, at, "collateral.tcb_info")
    qe_id = None
    if col.qe_identity is not None:
        qe_id = _verified_doc(col.qe_identity, "enclaveIdentity", col.tcb_signing_chain, at, "collateral.qe_identity")
    if col.pck_crl is not None:
        _pki.check_crl(col.pck_crl, pck_chain[1], pck_chain[:1], at, "collateral.pck_crl")
    if col.root_crl is not None:  # the root's CRL covers the PCK CA and the TCB Signing certificate
        _pki.check_crl(col.root_crl, pck_chain[-1], [pck_chain[1], chain[0]], at, "collateral.root_crl")
    ev = evaluate(q, pck, tcb_info, qe_id)
    return replace(ev, crl_checked=col.pck_crl is not None and col.root_crl is not None)


def evaluate(q: Quote, pck: PckInfo, tcb_info: dict[str, Any], qe_id: dict[str, Any] | None) -> TcbEvaluation:
    """Pure TCB evaluation of a quote against already-verified collateral values."""
    try:
        return _evaluate(q, pck, tcb_info, qe_id)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise MalformedEvidence("collateral.parse", f"collateral is missing or has a malformed field: {exc}") from exc


def _evaluate(q: Quote, pck: PckInfo, info: dict[str, Any], qe_id: dict[str, Any] | None) -> TcbEvaluation:
    check_kind(q.tee, info, qe_id)
    if str(info["fmspc"]).lower() != pck.fmspc:
        raise EvidenceError("collateral.fmspc", f"TCB info is for FMSPC {info['fmspc']}, PCK has {pck.fmspc}")
    if "pceId" not in info:
        raise MalformedEvidence("collateral.pceid", "TCB info has no pceId")
    if str(info["pceId"]).lower() != pck.pceid:
        raise EvidenceError("collateral.pceid", f"TCB info is for PCEID {info['pceId']}, PCK has {pck.pceid}")
    tee_svn = q.body[:16] if q.tee == "tdx" else b""
    level = _match_level(info["tcbLevels"], pck, tee_svn)
    module: dict[str, Any] = {}
    if tee_svn:
        module = _module_level(q, info, tee_svn)
    qe = _qe_status(q.qe_report, qe_id) if qe_id is not None else ""
    status = _known(level["tcbStatus"]) if level else "Unsupported"
    if module:
        status = "Unsupported" if module["tcbStatus"] == "Unsupported" else _converge(status, module["tcbStatus"])
    if qe and status != "Unsupported":
        status = _converge(status, qe)
    return TcbEvaluation(status=status, tcb_date=str(level["tcbDate"]) if level else "",
                         advisory_ids=tuple(level.get("advisoryIDs", ())) if level else (),
                         qe_status=qe, module_status=module.get("tcbStatus", ""),
                         module_advisory_ids=tuple(module.get("advisoryIDs", ())), fmspc=pck.fmspc)


def check_kind(tee: str, info: dict[str, Any], qe_id: dict[str, Any] | None) -> None:
    """TCB info and QE identity must be the v4 (version 3 / version 2) documents for this quote's TEE."""
    want_info, want_qe = ("TDX", "TD_QE") if tee == "tdx" else ("SGX", "QE")
    if info.get("id") != want_info or info.get("version") != 3:
        raise EvidenceError("collateral.tcb_info.kind", f"TCB info is id {info.get('id')!r} version "
                                                        f"{info.get('version')!r}; a {tee} quote needs "
                                                        f"{want_info!r} v3")
    if info.get("tcbType") != 0:  # type 0: 16 SGX components + PCESVN, the only layout the levels are read as
        raise EvidenceError("collateral.tcb_info.kind", f"TCB info has tcbType {info.get('tcbType')!r}; only 0 "
                                                        "is defined")
    if qe_id is not None and (qe_id.get("id") != want_qe or qe_id.get("version") != 2):
        raise EvidenceError("collateral.qe_identity.kind", f"QE identity is id {qe_id.get('id')!r} version "
                                                           f"{qe_id.get('version')!r}; a {tee} quote needs "
                                                           f"{want_qe!r} v2")


def _known(status: object) -> str:
    if status not in _STATUSES:
        raise MalformedEvidence("collateral.parse", f"unknown TCB status {status!r}")
    return str(status)


def _converge(level: str, other: str) -> str:
    """Intel QVL's convergence of the platform level with the TDX module or QE status."""
    if other == "OutOfDate":
        if level in ("UpToDate", "SWHardeningNeeded"):
            return "OutOfDate"
        if level in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
            return "OutOfDateConfigurationNeeded"
    if other in ("Revoked", "Unsupported"):
        return other
    return level


def _match_level(levels: list[dict[str, Any]], pck: PckInfo, tee_svn: bytes) -> dict[str, Any] | None:
    """The first level whose SGX components and PCESVN (and, for TDX, TEE TCB SVNs) are all met."""
    for level in levels:
        t = level["tcb"]
        sgx = [int(c["svn"]) for c in t["sgxtcbcomponents"]]
        if len(sgx) != 16 or any(want > have for want, have in zip(sgx, pck.cpusvn, strict=True)) \
                or int(t["pcesvn"]) > pck.pcesvn:
            continue
        if tee_svn:
            tdx = [int(c["svn"]) for c in t["tdxtcbcomponents"]]
            start = 2 if tee_svn[1] > 0 else 0  # bytes 0-1 are checked against the TDX module identity
            if len(tdx) != 16 or any(tdx[i] > tee_svn[i] for i in range(start, 16)):
                continue
        return level
    return None


def _module_level(q: Quote, info: dict[str, Any], tee_svn: bytes) -> dict[str, Any]:
    """Check MRSIGNER/attributes of the TDX module against its identity; the matching module TCB level.

    Version 0 modules are checked against ``tdxModule`` and have no level; others against the
    ``TDX_xx`` entry named by TEE_TCB_SVN[1], whose first level with isvsvn <= TEE_TCB_SVN[0] applies.
    """
    if tee_svn[1] == 0:
        _check_module(q, info["tdxModule"])
        return {}
    ident = f"TDX_{tee_svn[1]:02X}"
    module = next((m for m in info.get("tdxModuleIdentities", ()) if str(m["id"]).upper() == ident), None)
    if module is None:
        raise EvidenceError("collateral.tdx_module", f"TCB info has no identity for TDX module {ident}")
    _check_module(q, module)
    for level in module["tcbLevels"]:
        if int(level["tcb"]["isvsvn"]) <= tee_svn[0]:
            return {**level, "tcbStatus": _known(level["tcbStatus"])}
    return {"tcbStatus": "Unsupported"}


def _check_module(q: Quote, module: dict[str, Any]) -> None:
    signer, attrs = q.body[64:112].hex(), int.from_bytes(q.body[112:120], "big")
    mask = int(module["attributesMask"], 16)
    if signer != str(module["mrsigner"]).lower() or attrs & mask != int(module["attributes"], 16) & mask:
        raise EvidenceError("collateral.tdx_module", "TDX module signer/attributes do not match TCB info")


def _qe_status(report: bytes, ident: dict[str, Any]) -> str:
    misc, attrs = int.from_bytes(report[16:20], "little"), int.from_bytes(report[48:64], "big")
    misc_ok = misc & int(ident["miscselectMask"], 16) == int(ident["miscselect"], 16) & int(ident["miscselectMask"], 16)
    mask = int(ident["attributesMask"], 16)
    if not misc_ok or attrs & mask != int(ident["attributes"], 16) & mask:
        raise EvidenceError("collateral.qe_identity", "QE miscselect/attributes do not match the QE identity")
    if report[128:160].hex() != str(ident["mrsigner"]).lower() or int.from_bytes(report[256:258], "little") != \
            ident["isvprodid"]:
        raise EvidenceError("collateral.qe_identity", "QE mrsigner/isvprodid do not match the QE identity")
    isvsvn = int.from_bytes(report[258:260], "little")
    for level in ident["tcbLevels"]:
        if int(level["tcb"]["isvsvn"]) <= isvsvn:
            return _known(level["tcbStatus"])
    return "Unsupported"
