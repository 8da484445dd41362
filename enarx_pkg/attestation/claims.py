"""Typed, frozen claims produced by the verifiers. An object that exists has passed verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class Claims(Protocol):
    """What every verified piece of evidence exposes, whatever the TEE."""

    @property
    def tee(self) -> str: ...
    @property
    def measurement(self) -> str: ...
    @property
    def report_data(self) -> bytes: ...
    @property
    def debug(self) -> bool: ...


@dataclass(frozen=True)
class SnpTcb:
    """An SEV-SNP TCB version (Milan/Genoa layout; Turin adds ``fmc``)."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int = 0


@dataclass(frozen=True)
class SnpClaims:
    tee: str
    version: int
    product: str
    measurement: str
    report_data: bytes
    debug: bool
    policy: int
    smt_allowed: bool
    migrate_ma: bool
    guest_svn: int
    vmpl: int
    host_data: str
    id_key_digest: str
    author_key_digest: str
    family_id: str
    image_id: str
    report_id: str
    chip_id: str
    signing_key: str  # "vcek" | "vlek"
    reported_tcb: SnpTcb
    current_tcb: SnpTcb
    committed_tcb: SnpTcb
    launch_tcb: SnpTcb
    platform_info: int
    firmware: str
    author_key_en: bool = False
    crl_checked: bool = False
    hcl_ak_pub: str = ""  # Azure HCL: the vTPM attestation key bound by REPORT_DATA (JWK)
    launch_mit_vector: int = 0  # report v5: verified mitigation vectors (0 before v5)
    current_mit_vector: int = 0


@dataclass(frozen=True)
class TcbEvaluation:
    """Result of appraising a DCAP quote against Intel collateral."""

    status: str  # UpToDate, OutOfDate, ConfigurationNeeded, ..., or "Unsupported"
    tcb_date: str
    advisory_ids: tuple[str, ...]
    qe_status: str
    module_status: str = ""
    module_advisory_ids: tuple[str, ...] = ()
    fmspc: str = ""
    crl_checked: bool = False


@dataclass(frozen=True)
class PckInfo:
    fmspc: str
    pceid: str
    pcesvn: int
    cpusvn: tuple[int, ...]
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class TdxClaims:
    tee: str
    version: int
    measurement: str  # MRTD
    report_data: bytes
    debug: bool
    mrtd: str
    rtmr: tuple[str, str, str, str]
    mrconfigid: str
    mrowner: str
    mrownerconfig: str
    mrseam: str
    td_attributes: str
    xfam: str
    tee_tcb_svn: str
    qe_svn: int
    pce_svn: int
    pck: PckInfo
    tcb: TcbEvaluation | None = None
    sept_ve_disable: bool = False  # TD ATTRIBUTES.SEPT_VE_DISABLE
    mrservicetd: str = ""  # TD 1.5 (v5 body type 3) only: the bound service TD, zero if none


@dataclass(frozen=True)
class SgxClaims:
    tee: str
    version: int
    measurement: str  # MRENCLAVE
    report_data: bytes
    debug: bool
    mrenclave: str
    mrsigner: str
    isvprodid: int
    isvsvn: int
    attributes: str
    cpusvn: str
    qe_svn: int
    pce_svn: int
    pck: PckInfo
    tcb: TcbEvaluation | None = None


@dataclass(frozen=True)
class CcaSwComponent:
    type: str
    measurement: str
    signer_id: str
    version: str


@dataclass(frozen=True)
class CcaClaims:
    tee: str
    measurement: str  # realm initial measurement (RIM)
    report_data: bytes  # realm challenge (64 bytes)
    debug: bool
    profile: str
    platform_challenge: str
    implementation_id: str
    instance_id: str
    platform_config: str
    lifecycle: int
    platform_hash_algo: str
    sw_components: tuple[CcaSwComponent, ...]
    rem: tuple[str, ...]
    personalization: str
    realm_hash_algo: str
    rak: str
    cpak_fingerprint: str = ""


@dataclass(frozen=True)
class SimClaims:
    tee: str
    version: int
    measurement: str
    report_data: bytes
    debug: bool
    svn: int
    platform_key: str  # "sha256:<hex>" fingerprint of the Ed25519 platform key
    timestamp: datetime
    public_key: bytes = field(repr=False, default=b"")
