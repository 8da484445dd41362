"""Evidence collectors, run INSIDE a keep: configfs-tsm, /dev/sev-guest, Gramine's /dev/attestation, sim.

Unlike the verifiers these do I/O. Every root path is a parameter so tests can point them at a
directory tree shaped like the kernel's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from enarx_pkg.errors import Error, ExitCode, NotFoundError

CONFIGFS_TSM = Path("/sys/kernel/config/tsm/report")
SEV_GUEST = Path("/dev/sev-guest")
GRAMINE = Path("/dev/attestation")
PROVIDERS = {"sev_guest": "snp", "tdx_guest": "tdx", "arm_cca_guest": "cca", "arm-cca-guest": "cca"}
MAX_BLOB = 1 << 20


class CollectorError(Error):
    """The platform interface failed or misbehaved while producing evidence."""

    exit_code = ExitCode.TRANSPORT


@dataclass(frozen=True)
class Collected:
    """Evidence as the platform returned it; ``aux`` holds e.g. the SNP certificate table."""

    tee: str
    evidence: bytes
    aux: bytes = b""
    provider: str = ""
    source: str = ""


def collect(report_data: bytes, *, configfs_root: Path = CONFIGFS_TSM, sev_guest: Path = SEV_GUEST,
            gramine_root: Path = GRAMINE) -> Collected:
    """Collect evidence binding ``report_data`` through the first interface this keep has."""
    _check_report_data(report_data)
    if configfs_root.is_dir():
        return collect_configfs(report_data, root=configfs_root)
    if sev_guest.exists():
        return collect_sev_guest(report_data, device=sev_guest)
    if (gramine_root / "quote").exists():
        return collect_gramine(report_data, root=gramine_root)
    raise NotFoundError("no TEE evidence interface found (configfs-tsm, /dev/sev-guest, /dev/attestation)",
                        hint="run `enarx-pkg platform info`; use the sim backend for development")


def _check_report_data(report_data: bytes) -> None:
    if len(report_data) != 64:
        raise ValueError("report_data must be exactly 64 bytes")


def _wait_read(path: Path, timeout: float) -> bytes:
    """Read an attribute; tolerate it appearing late (fake trees populated by a helper thread)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BLOB + 1)
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise CollectorError(f"{path} did not appear") from None
            time.sleep(0.01)
            continue
        if len(data) > MAX_BLOB:
            raise CollectorError(f"{path} is larger than {MAX_BLOB} bytes")
        return data


def _generation(entry: Path, timeout: float) -> int:
    raw = _wait_read(entry / "generation", timeout).strip()
    if not raw.isdigit():
        raise CollectorError(f"{entry}/generation is not a number")
    return int(raw)


def collect_configfs(report_data: bytes, *, root: Path = CONFIGFS_TSM, privlevel: int | None = None,
                     timeout: float = 5.0) -> Collected:
    """Linux configfs-tsm: make a report entry, write inblob, read outblob/auxblob/provider.

    The generation counter must advance by exactly one for our write and not move while we read;
    otherwise another writer raced us and the outblob may bind someone else's report_data.
    """
    _check_report_data(report_data)
    entry = Path(root) / f"enarx-pkg-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        entry.mkdir()
    except OSError as exc:
        raise CollectorError(f"cannot create configfs-tsm entry {entry}: {exc.strerror}") from exc
    try:
        before = _generation(entry, timeout)
        if privlevel is not None:
            (entry / "privlevel").write_text(str(privlevel))
            before += 1
        (entry / "inblob").write_bytes(report_data)
        out = _wait_read(entry / "outblob", timeout)
        after = _generation(entry, timeout)
        aux = (entry / "auxblob").read_bytes() if (entry / "auxblob").exists() else b""
        provider = _wait_read(entry / "provider", timeout).decode(errors="replace").strip()
        if after != before + 1:
            raise CollectorError(f"configfs-tsm generation moved from {before} to {after}: another writer "
                                 "raced this report; retry")
    finally:
        with contextlib.suppress(OSError):
            entry.rmdir()
    if provider not in PROVIDERS:
        raise CollectorError(f"unknown configfs-tsm provider {provider!r}")
    return Collected(PROVIDERS[provider], out, aux, provider, f"configfs-tsm:{entry}")


# _IOWR('S', 0x0, struct snp_guest_request_ioctl) from linux/sev-guest.h
SNP_GET_REPORT = 0xC0205300


def collect_sev_guest(report_data: bytes, *, device: Path = SEV_GUEST, vmpl: int = 0) -> Collected:
    """The pre-configfs SNP interface: SNP_GET_REPORT ioctl on /dev/sev-guest (no certificate table)."""
    import ctypes
    import fcntl

    _check_report_data(report_data)
    req = ctypes.create_string_buffer(report_data + struct.pack("<I", vmpl) + bytes(28))
    resp = ctypes.create_string_buffer(4000)
    ioc = struct.pack("<B7xQQQ", 1, ctypes.addressof(req), ctypes.addressof(resp), 0)
    try:
        fd = os.open(device, os.O_RDWR)
    except OSError as exc:
        raise CollectorError(f"cannot open {device}: {exc.strerror}") from exc
    try:
        fcntl.ioctl(fd, SNP_GET_REPORT, bytearray(ioc))
    except OSError as exc:
        raise CollectorError(f"SNP_GET_REPORT on {device} failed: {exc.strerror}") from exc
    finally:
        os.close(fd)
    status, size = struct.unpack_from("<II", resp.raw, 0)
    if status != 0 or size != 1184:
        raise CollectorError(f"SNP firmware returned status {status:#x}, report size {size}")
    return Collected("snp", resp.raw[32 : 32 + size], b"", "sev-guest", str(device))


def collect_gramine(report_data: bytes, *, root: Path = GRAMINE) -> Collected:
    """Gramine-SGX: write user_report_data, read the DCAP quote."""
    _check_report_data(report_data)
    try:
        (root / "user_report_data").write_bytes(report_data)
        quote = _wait_read(root / "quote", 5.0)
    except OSError as exc:
        raise CollectorError(f"Gramine attestation interface {root} failed: {exc}") from exc
    return Collected("sgx", quote, b"", "gramine", str(root))


@dataclass(frozen=True)
class PlatformInfo:
    interfaces: dict[str, bool]
    tees: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {"interfaces": self.interfaces, "tees": list(self.tees), "missing": list(self.missing)}


def platform_info(*, configfs_root: Path = CONFIGFS_TSM, dev: Path = Path("/dev"),
                  cpuinfo: Path = Path("/proc/cpuinfo")) -> PlatformInfo:
    """Which TEE interfaces exist here, which TEEs that gives, and what is missing for the rest."""
    have = {
        "configfs-tsm": configfs_root.is_dir(),
        "/dev/sev-guest": (dev / "sev-guest").exists(),
        "/dev/tdx_guest": (dev / "tdx_guest").exists(),
        "/dev/attestation": (dev / "attestation").exists(),
    }
    flags = cpuinfo.read_text(errors="replace") if cpuinfo.exists() else ""
    tees = ["sim"]
    if have["/dev/sev-guest"] or (have["configfs-tsm"] and "sev_snp" in flags):
        tees.insert(0, "snp")
    if have["/dev/tdx_guest"] or (have["configfs-tsm"] and "tdx_guest" in flags):
        tees.insert(0, "tdx")
    if have["/dev/attestation"]:
        tees.insert(0, "sgx")
    missing = []
    if not have["configfs-tsm"]:
        missing.append("configfs-tsm: needs Linux >= 6.7 in an SNP/TDX guest with configfs mounted")
    if "snp" not in tees:
        missing.append("snp: not an SEV-SNP guest (no /dev/sev-guest)")
    if "tdx" not in tees:
        missing.append("tdx: not a TDX guest (no /dev/tdx_guest)")
    if "sgx" not in tees:
        missing.append("sgx: not inside Gramine-SGX (no /dev/attestation)")
    return PlatformInfo(have, tuple(tees), tuple(missing))
