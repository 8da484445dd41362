"""Fill a collateral directory from AMD KDS (SNP) or Intel PCS (TDX/SGX). Network I/O; not a verifier.

What is fetched is untrusted: ``attest verify`` checks it against the pinned roots like any other input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from cryptography import x509

from enarx_pkg._internal import atomic, bounded
from enarx_pkg.errors import TransportError, UsageError

AMD_KDS = "https://kdsintf.amd.com"
INTEL_PCS = "https://api.trustedservices.intel.com"
INTEL_ROOT_CRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
MAX_RESPONSE = 1 << 20
PRODUCTS = ("Milan", "Genoa", "Turin")


@dataclass(frozen=True)
class Download:
    url: str
    file: str
    header: str = ""  # when set, also save this response header (URL-encoded PEM chain)
    header_file: str = ""


def snp_plan(report: bytes, product: str, base: str = AMD_KDS) -> list[Download]:
    """The VCEK for this chip and TCB, and the ASK/ARK chain, from AMD KDS."""
    from enarx_pkg.attestation.snp import parse_report

    if product not in PRODUCTS:
        raise UsageError(f"unknown SNP product {product!r}: expected one of {', '.join(PRODUCTS)}")
    c = parse_report(report, product)
    if c.signing_key == "vlek":
        raise UsageError("VLEK certificates are not on public KDS; get them from your cloud provider")
    t = c.reported_tcb
    hwid = c.chip_id[:16] if product == "Turin" else c.chip_id
    spl = f"blSPL={t.bootloader}&teeSPL={t.tee}&snpSPL={t.snp}&ucodeSPL={t.microcode}"
    if product == "Turin":
        spl = f"fmcSPL={t.fmc}&" + spl
    return [Download(f"{base}/vcek/v1/{product}/{hwid}?{spl}", "vcek.der"),
            Download(f"{base}/vcek/v1/{product}/cert_chain", "ask_ark.pem"),
            Download(f"{base}/vcek/v1/{product}/crl", "amd_crl.der")]


def intel_plan(tee: str, fmspc: str, base: str = INTEL_PCS, ca: str = "platform") -> list[Download]:
    """TCB info and QE identity (with their issuer chain) and the CRLs (of the PCK's ``ca``), from Intel PCS v4."""
    kind = "tdx" if tee == "tdx" else "sgx"
    return [
        Download(f"{base}/{kind}/certification/v4/tcb?fmspc={quote(fmspc)}", "tcbinfo.json",
                 "TCB-Info-Issuer-Chain", "tcb_signing_chain.pem"),
        Download(f"{base}/{kind}/certification/v4/qe/identity", "qe_identity.json"),
        Download(f"{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der", "pck_platform_crl.der",
                 "SGX-PCK-CRL-Issuer-Chain", "pck_crl_issuer_chain.pem"),
        Download(INTEL_ROOT_CRL, "root_ca_crl.der"),
    ]


def plan_for(tee: str, evidence: bytes, product: str = "", certs: Sequence[bytes] = ()) -> list[Download]:
    """What to download for this evidence; for SNP from the KDS of the report's product (``product``
    overrides what the report's CPUID, or for a v2 report the ASK beside it, says)."""
    from enarx_pkg.attestation import dispatch

    if tee == "snp":
        return snp_plan(evidence, product or snp_product(evidence, certs))
    return intel_plan(tee, dispatch.fmspc_of(tee, evidence), ca=_pck_ca(evidence))


def _pck_ca(quote: bytes) -> str:
    """``processor`` or ``platform``: which PCK CA issued the quote's PCK (its CRL is the one to fetch)."""
    from enarx_pkg.attestation import _x509, dcap

    chain = dcap.order_chain(_x509.load_certs([dcap.parse_quote(quote).pck_chain.rstrip(b"\0")], "PCK certificate"))
    return "processor" if len(chain) > 1 and _x509.common_name(chain[1]).endswith("Processor CA") else "platform"


def snp_product(evidence: bytes, certs: Sequence[bytes] = ()) -> str:
    """Milan, Genoa or Turin: from a v3 report's CPUID, else from the issuer of a supplied VCEK/VLEK."""
    from enarx_pkg.attestation import _x509, snp

    product = snp.parse_report(evidence).product
    if product in PRODUCTS:
        return product
    for cert in _x509.load_certs(certs, "certificate"):
        issuer = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        name = str(issuer[0].value) if issuer else ""
        for known in PRODUCTS:
            if name in (f"SEV-{known}", f"SEV-VLEK-{known}"):
                return known
    raise UsageError("cannot tell the SNP product (Milan, Genoa, Turin) of a v2 report without its VCEK: "
                     "pass --product, or keep the VCEK in the policy's [collateral] dir (source = \"offline\")")


def download(plan: list[Download], out: Path, *, timeout: float = 30.0) -> list[Path]:
    """Fetch each item of ``plan`` into ``out`` (atomic writes, bounded sizes)."""
    import httpx

    written: list[Path] = []
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for item in plan:
            try:
                with client.stream("GET", item.url) as resp:
                    body = bounded.read(resp, MAX_RESPONSE) if resp.status_code == 200 else b""
            except httpx.HTTPError as exc:
                raise TransportError(f"cannot fetch collateral: {exc}", url=item.url) from exc
            if resp.status_code != 200:
                raise TransportError("collateral request failed", url=item.url, status=resp.status_code)
            if body is None:  # counted while streaming: a huge answer is never buffered whole
                raise TransportError("collateral response too large", url=item.url)
            atomic.write_bytes(out / item.file, body)
            written.append(out / item.file)
            if item.header and item.header in resp.headers:
                atomic.write_text(out / item.header_file, unquote(resp.headers[item.header]))
                written.append(out / item.header_file)
    return written
