"""The independent DCAP verifier (Phala's pure-JS ``@phala/dcap-qvl``) and what both verifiers judge.

``theirs`` runs it on a quote and a collateral folder; ``ours`` runs our verifier and a production
policy on the same files. :class:`Case` makes a TDX quote and its collateral under a test PKI that
both are told to trust (a fresh attestation key, so the TD body can be changed too), from a real
quote's header, TD body, QE report and PCK extension; a test changes one thing and compares.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg.attestation import anchors, dcap, verify_evidence
from enarx_pkg.attestation.collateral import Collateral
from enarx_pkg.attestation.policy import Policy, appraise
from enarx_pkg.errors import Error

from . import intel_pki

PEER = Path(__file__).resolve().parent / "dcap-qvl-js"
NOT_REVOKED = ("UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
               "OutOfDate", "OutOfDateConfigurationNeeded")


def need_peer() -> Path:
    if shutil.which("node") is None or not (PEER / "node_modules/@phala/dcap-qvl").is_dir():
        pytest.skip("@phala/dcap-qvl not installed (scripts/install-npm-deps.sh runs npm ci in "
                    "tests/attestation/dcap-qvl-js)")
    return PEER


def theirs(quote: Path, folder: Path, at: datetime, root: Path | None = None) -> dict[str, Any]:
    """dcap-qvl's answer: {"ok": true, "status", "advisory_ids", "report_data"} or {"ok": false, "error"}."""
    args = ["node", str(PEER / "verify.js"), str(quote), str(folder), str(int(at.timestamp()))]
    out = subprocess.run(args + ([str(root)] if root else []), capture_output=True, text=True, timeout=60,
                         check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def ours(quote: bytes, folder: Path | None, at: datetime, *, tcb_status: Sequence[str] = ("UpToDate",),
         report_data: bytes | None = None) -> tuple[str, str]:
    """(verdict, TCB status) under a production policy pinning this quote's measurement."""
    col = Collateral.from_dir(folder) if folder else None
    tee = "sgx" if quote[4] == 0 else "tdx"
    try:
        claims = verify_evidence(tee, quote, collateral=col, at=at)
    except Error as exc:
        return f"refused: {exc.check}", ""  # type: ignore[attr-defined]
    key = {"tdx": "mrtd", "sgx": "mrenclave"}[tee]
    policy = Policy.from_mapping({"tees": [tee], "tcb_status": list(tcb_status), tee: {key: [claims.measurement]}},
                                 "cross-check")
    failed = appraise(claims, policy, expected_report_data=report_data).failed
    status = claims.tcb.status if claims.tcb else ""
    return ("refused: " + " ".join(c.name for c in failed) if failed else "accepted"), status


def crl(issuer: intel_pki.Node, revoked: Sequence[x509.Certificate] = (), this: datetime = intel_pki.NB,
        nxt: datetime = intel_pki.NA) -> bytes:
    b = x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject).last_update(this).next_update(nxt)
    for cert in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                                      .revocation_date(this).build())
    return b.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass
class Case:
    """One TDX quote and its full collateral, every part open to change before :meth:`write`."""

    pki: intel_pki.Pki
    header: bytes
    body: bytearray
    qe_report: bytearray
    qe_auth: bytes
    info: dict[str, Any]
    qe: dict[str, Any]
    pck_revoked: list[x509.Certificate] = field(default_factory=list)
    root_revoked: list[x509.Certificate] = field(default_factory=list)
    pck_crl_next: datetime = intel_pki.NA
    root_crl_next: datetime = intel_pki.NA
    collateral_signer: intel_pki.Node | None = None  # default: the TCB Signing certificate
    bound_auth: bytes | None = None  # what the QE report binds (default: qe_auth)
    after: dict[str, Callable[[bytes], bytes]] = field(default_factory=dict)  # file name -> edit once signed

    @classmethod
    def of(cls, testvectors: Path, folder: str) -> Case:
        real = (testvectors / f"{folder}/quote.dat").read_bytes()
        q = dcap.parse_quote(real)
        info = json.loads((testvectors / f"{folder}/tcbinfo.json").read_bytes())["tcbInfo"]
        qe = json.loads((testvectors / f"{folder}/qe_identity.json").read_bytes())["enclaveIdentity"]
        return cls(intel_pki.make_pki(real), real[:48], bytearray(q.body), bytearray(q.qe_report), q.qe_auth,
                   copy.deepcopy(info), copy.deepcopy(qe))

    @classmethod
    def sgx(cls, testvectors: Path, path: str) -> Case:
        """An SGX v3 quote (its DEBUG bit cleared: a production enclave) with SGX TCB info and QE identity
        made here from its PCK's values (no SGX collateral is among the vectors), status UpToDate."""
        real = (testvectors / path).read_bytes()
        q = dcap.parse_quote(real)
        pck = dcap.inspect_quote(real).pck
        body = bytearray(q.body)
        body[48] &= ~dcap.SGX_DEBUG & 0xFF
        report = q.qe_report
        window = {"issueDate": "2025-10-01T00:00:00Z", "nextUpdate": "2025-12-01T00:00:00Z"}
        info = {"id": "SGX", "version": 3, **window, "fmspc": pck.fmspc.upper(), "pceId": pck.pceid.upper(),
                "tcbType": 0, "tcbEvaluationDataNumber": 17, "tcbLevels": [
                    {"tcb": {"sgxtcbcomponents": [{"svn": v} for v in pck.cpusvn], "pcesvn": pck.pcesvn},
                     "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": "UpToDate"}]}
        qe = {"id": "QE", "version": 2, **window, "tcbEvaluationDataNumber": 17,
              "miscselect": report[16:20].hex().upper(), "miscselectMask": "FFFFFFFF",
              "attributes": report[48:64].hex().upper(), "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
              "mrsigner": report[128:160].hex().upper(), "isvprodid": int.from_bytes(report[256:258], "little"),
              "tcbLevels": [{"tcb": {"isvsvn": int.from_bytes(report[258:260], "little")},
                             "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": "UpToDate"}]}
        return cls(intel_pki.make_pki(real), real[:48], body, bytearray(report), q.qe_auth, info, qe)

    def quote(self) -> bytes:
        """A v4 (TDX) or v3 (SGX) quote: a fresh attestation key signs header+body; the test PCK signs
        the QE report."""
        att = ec.generate_private_key(ec.SECP256R1())
        pub = att.public_key().public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)[1:]
        report = bytearray(self.qe_report)
        report[320:352] = hashlib.sha256(pub + (self.qe_auth if self.bound_auth is None else self.bound_auth)).digest()
        chain = self.pki.pck.pem + self.pki.platform_ca.pem + self.pki.root.pem
        inner = (bytes(report) + intel_pki.raw_sig(self.pki.pck.key, bytes(report))
                 + struct.pack("<H", len(self.qe_auth)) + self.qe_auth + struct.pack("<HI", 5, len(chain)) + chain)
        signed = self.header + bytes(self.body)
        wrapped = inner if self.header[0] == 3 else struct.pack("<HI", 6, len(inner)) + inner  # v3: unwrapped
        sig_data = intel_pki.raw_sig(att, signed) + pub + wrapped
        return signed + struct.pack("<I", len(sig_data)) + sig_data

    def write(self, folder: Path) -> Path:
        """The quote and collateral as ``fetch-collateral`` lays them out, plus ``root.der`` for the peer."""
        pki, signer = self.pki, self.collateral_signer or self.pki.tcb_signing
        chain = signer.pem + (pki.platform_ca.pem if signer is pki.pck else b"") + pki.root.pem
        files = {
            "quote.dat": self.quote(),
            "tcbinfo.json": intel_pki.signed_json("tcbInfo", self.info, signer.key),
            "qe_identity.json": intel_pki.signed_json("enclaveIdentity", self.qe, signer.key),
            "tcb_signing_chain.pem": chain,
            "pck_crl_issuer_chain.pem": pki.platform_ca.pem + pki.root.pem,
            "pck_platform_crl.der": crl(pki.platform_ca, self.pck_revoked, nxt=self.pck_crl_next),
            "root_ca_crl.der": crl(pki.root, self.root_revoked, nxt=self.root_crl_next),
            "root.der": pki.root.cert.public_bytes(serialization.Encoding.DER),
        }
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(self.after.get(name, lambda b: b)(data))
        return folder

    def judged(self, folder: Path, at: datetime, **policy: Any) -> tuple[tuple[str, str], dict[str, Any]]:
        """(ours, theirs) on the written case, both trusting only the test root."""
        quote = (folder / "quote.dat").read_bytes()
        with anchors.replaced_for_tests(intel=self.pki.root_pin):
            mine = ours(quote, folder, at, **policy)
        return mine, theirs(folder / "quote.dat", folder, at, folder / "root.der")
