"""Azure confidential-VM HCL reports: an SNP report plus the runtime data its REPORT_DATA hashes.

Layout (Azure "HCL attestation report", as shipped by the paravisor): a 32-byte header (``HCLA``,
version 2, total size, request type 2, status 0, reserved zero), the 1184-byte SNP report at 0x20,
then at 0x4C0 the runtime claims header (size, version 1, report type 2 = SNP, hash type 1/2/3 =
SHA-256/384/512, data size)
and the runtime data: JSON with the vTPM keys (``HCLAkPub``, ``HCLEkPub``), ``vm-configuration``
and ``user-data``. REPORT_DATA = hash(runtime data), zero-padded, is what binds the vTPM attestation
key and the user data to the hardware-signed report.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

from enarx_pkg.attestation._errors import EvidenceError, MalformedEvidence

MAGIC = b"HCLA"
REPORT_OFFSET, REPORT_LEN = 0x20, 1184
RUNTIME_HEADER = 0x4C0
RUNTIME_OFFSET = RUNTIME_HEADER + 20
MAX_RUNTIME = 16 * 1024
_HASHES: dict[int, Callable[[bytes], hashlib._Hash]] = {1: hashlib.sha256, 2: hashlib.sha384, 3: hashlib.sha512}


@dataclass(frozen=True)
class HclReport:
    report: bytes  # the SNP report
    runtime: bytes  # the runtime data its REPORT_DATA hashes
    hash_type: int
    ak_pub: str  # the vTPM attestation key (JWK, canonical JSON)
    user_data: bytes


def parse(evidence: bytes) -> HclReport:
    """Split an HCL report; the binding is not checked here (see :func:`check_binding`)."""
    if len(evidence) < RUNTIME_OFFSET:
        raise MalformedEvidence("snp.hcl.length", f"HCL report of {len(evidence)} bytes is truncated")
    _header(evidence)
    size, version, report_type, hash_type, var_size = struct.unpack_from("<5I", evidence, RUNTIME_HEADER)
    if version != 1 or report_type != 2 or hash_type not in _HASHES:
        raise MalformedEvidence("snp.hcl.header", f"HCL runtime claims of report type {report_type}, hash type "
                                                  f"{hash_type}: expected an SNP report hashed with SHA-2")
    total = struct.unpack_from("<I", evidence, 8)[0]
    if size != var_size + 20 or var_size > MAX_RUNTIME or total != RUNTIME_OFFSET + var_size \
            or total > len(evidence):
        raise MalformedEvidence("snp.hcl.header", "HCL runtime data size is inconsistent with the report")
    runtime = evidence[RUNTIME_OFFSET : RUNTIME_OFFSET + var_size]
    if any(evidence[RUNTIME_OFFSET + var_size :]):
        raise MalformedEvidence("snp.hcl.padding", "bytes after the HCL runtime data are not zero")
    ak_pub, user_data = _runtime_claims(runtime)
    return HclReport(evidence[REPORT_OFFSET : REPORT_OFFSET + REPORT_LEN], runtime, hash_type, ak_pub, user_data)


def _header(evidence: bytes) -> None:
    """Version 2, request type 2 (an SNP report), status 0, reserved bytes zero: the only header we know."""
    version, _size, request_type, status = struct.unpack_from("<4I", evidence, 4)
    if version != 2 or request_type != 2 or status != 0 or any(evidence[20:REPORT_OFFSET]):
        raise MalformedEvidence("snp.hcl.header", f"HCL header version {version}, request type {request_type}, "
                                                  f"status {status}: expected version 2, type 2, status 0")


def _runtime_claims(runtime: bytes) -> tuple[str, bytes]:
    try:
        claims = json.loads(runtime.rstrip(b"\0").decode("utf-8"))
        keys = {k["kid"]: k for k in claims["keys"]}
        ak = json.dumps(keys["HCLAkPub"], sort_keys=True, separators=(",", ":"))
        user_data = bytes.fromhex(claims["user-data"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise MalformedEvidence("snp.hcl.runtime", f"HCL runtime data is not the expected JSON: {exc}") from exc
    if len(user_data) != 64:
        raise MalformedEvidence("snp.hcl.runtime", f"HCL user-data is {len(user_data)} bytes, expected 64")
    return ak, user_data


def check_binding(hcl: HclReport) -> None:
    """The SNP REPORT_DATA must be the hash of the runtime data (vTPM keys, user data), zero-padded."""
    digest = _HASHES[hcl.hash_type](hcl.runtime).digest()
    report_data = hcl.report[0x50:0x90]
    if report_data != digest + bytes(64 - len(digest)):
        raise EvidenceError("snp.hcl.report_data", "REPORT_DATA is not the hash of the HCL runtime data "
                                                   "(vTPM key or user data was altered)")
