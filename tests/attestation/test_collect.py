"""Collectors against a directory tree shaped like configfs-tsm, with a thread playing the kernel."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from enarx_pkg.attestation import verify_evidence
from enarx_pkg.attestation.collect import (
    CollectorError,
    collect,
    collect_configfs,
    collect_gramine,
    collect_sev_guest,
    platform_info,
)
from enarx_pkg.attestation.snp import parse_cert_table
from enarx_pkg.errors import NotFoundError

from .test_snp import _cert_table


def _put(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class FakeTsm(threading.Thread):
    """Populates each new report entry like the kernel; ``racing_writes`` simulates another writer."""

    def __init__(self, root: Path, make_outblob, provider: str = "sev_guest", aux: bytes = b"",
                 racing_writes: int = 0) -> None:
        super().__init__(daemon=True)
        self.root, self.make_outblob, self.provider, self.aux = root, make_outblob, provider, aux
        self.racing_writes, self.stop, self.inblobs = racing_writes, threading.Event(), []

    def run(self) -> None:
        seen: set[Path] = set()
        done: set[Path] = set()
        while not self.stop.is_set():
            for d in [p for p in self.root.iterdir() if p.is_dir()]:
                if d not in seen:
                    _put(d / "generation", b"0\n")
                    _put(d / "provider", self.provider.encode() + b"\n")
                    seen.add(d)
                if d not in done and (d / "inblob").exists() and (d / "inblob").stat().st_size == 64:
                    inblob = (d / "inblob").read_bytes()
                    self.inblobs.append(inblob)
                    _put(d / "generation", f"{1 + self.racing_writes}\n".encode())
                    if self.aux:
                        _put(d / "auxblob", self.aux)
                    _put(d / "outblob", self.make_outblob(inblob))
                    done.add(d)
            time.sleep(0.005)


@pytest.fixture
def tsm_root(tmp_path):
    root = tmp_path / "tsm" / "report"
    root.mkdir(parents=True)
    return root


def _run(kernel: FakeTsm, fn):
    kernel.start()
    try:
        return fn()
    finally:
        kernel.stop.set()
        kernel.join()


def test_configfs_snp_report_with_cert_table(vec, tsm_root):
    report, certs, at = vec.snp("virtee-milan")
    kernel = FakeTsm(tsm_root, lambda _inblob: report, aux=_cert_table(certs))
    rd = bytes(range(64))
    got = _run(kernel, lambda: collect_configfs(rd, root=tsm_root))
    assert kernel.inblobs == [rd]
    assert (got.tee, got.provider, got.evidence) == ("snp", "sev_guest", report)
    claims = verify_evidence("snp", got.evidence, certs=parse_cert_table(got.aux), at=at)
    assert claims.measurement.startswith("7a1e5c26")


def test_configfs_generation_race_detected(tsm_root):
    kernel = FakeTsm(tsm_root, lambda inblob: b"x" * 1184, racing_writes=1)
    with pytest.raises(CollectorError, match="raced"):
        _run(kernel, lambda: collect_configfs(bytes(64), root=tsm_root))


def test_configfs_unknown_provider(tsm_root):
    kernel = FakeTsm(tsm_root, lambda inblob: b"x", provider="mystery")
    with pytest.raises(CollectorError, match="provider"):
        _run(kernel, lambda: collect_configfs(bytes(64), root=tsm_root))


def test_configfs_kernel_never_answers(tsm_root):
    with pytest.raises(CollectorError, match="did not appear"):
        collect_configfs(bytes(64), root=tsm_root, timeout=0.05)


def test_collect_prefers_configfs_and_rejects_bad_report_data(tsm_root, tmp_path):
    kernel = FakeTsm(tsm_root, lambda inblob: b"quote", provider="tdx_guest")
    got = _run(kernel, lambda: collect(bytes(64), configfs_root=tsm_root, sev_guest=tmp_path / "none"))
    assert (got.tee, got.evidence) == ("tdx", b"quote")
    with pytest.raises(ValueError):
        collect(bytes(63), configfs_root=tsm_root)


def test_collect_nothing_available(tmp_path):
    with pytest.raises(NotFoundError):
        collect(bytes(64), configfs_root=tmp_path / "a", sev_guest=tmp_path / "b", gramine_root=tmp_path / "c")


def test_gramine_interface(vec, tmp_path):
    (tmp_path / "quote").write_bytes(vec.read("sgx/occlum-v3/quote.dat"))
    got = collect_gramine(b"\x01" * 64, root=tmp_path)
    assert (tmp_path / "user_report_data").read_bytes() == b"\x01" * 64 and got.tee == "sgx"


def test_platform_info_on_fake_tree(tmp_path, tsm_root):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "sev-guest").touch()
    cpu = tmp_path / "cpuinfo"
    cpu.write_text("flags : sev_snp\n")
    pi = platform_info(configfs_root=tsm_root, dev=dev, cpuinfo=cpu)
    assert pi.interfaces["configfs-tsm"] and pi.interfaces["/dev/sev-guest"]
    assert pi.tees == ("snp", "sim") and any("tdx" in m for m in pi.missing)


@pytest.mark.hardware
@pytest.mark.skipif(not Path("/dev/sev-guest").exists(), reason="needs an SEV-SNP guest (/dev/sev-guest)")
def test_real_sev_guest_ioctl():
    got = collect_sev_guest(bytes(64))
    assert got.tee == "snp" and len(got.evidence) == 1184


@pytest.mark.hardware
@pytest.mark.skipif(not Path("/sys/kernel/config/tsm/report").is_dir(), reason="needs configfs-tsm (SNP/TDX guest)")
def test_real_configfs_tsm():
    got = collect_configfs(bytes(64))
    assert got.tee in ("snp", "tdx") and got.evidence
