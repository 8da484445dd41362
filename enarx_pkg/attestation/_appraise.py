"""The TEE-specific checks of a policy appraisal (see :func:`policy.appraise`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from enarx_pkg.attestation.policy import Check, Policy, at_least, listed


def specific(claims: Any, sect: Mapping[str, Any], policy: Policy) -> list[Check]:
    fn = {"snp": _snp, "tdx": _tdx, "sgx": _sgx, "cca": _cca, "sim": _sim}[claims.tee]
    return list(fn(claims, sect, policy)) + list(_crl(claims, policy))


def _crl(c: Any, policy: Policy) -> Iterator[Check]:
    """``[collateral] crl = true``: the evidence must have been checked against the vendor CRLs."""
    if not policy.collateral.get("crl") or c.tee not in ("snp", "tdx", "sgx"):
        return
    checked = c.crl_checked if c.tee == "snp" else bool(c.tcb and c.tcb.crl_checked)
    yield Check("collateral.crl", checked, "checked" if checked else "no CRL supplied", "checked against CRLs")


def _lists(claims: Any, sect: Mapping[str, Any], prefix: str, fields: Mapping[str, str]) -> Iterator[Check]:
    for key, attr in fields.items():
        if sect.get(key):
            yield listed(f"{prefix}.{key}", str(getattr(claims, attr)), list(sect[key]))


def _snp(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    yield from _lists(c, sect, "snp", {"measurements": "measurement", "host_data": "host_data",
                                       "id_key_digests": "id_key_digest", "products": "product",
                                       "signing_keys": "signing_key"})
    for comp, minimum in sect.get("min_tcb", {}).items():
        yield at_least(f"snp.tcb.{comp}", getattr(c.reported_tcb, comp), minimum)
    if "min_guest_svn" in sect:
        yield at_least("snp.guest_svn", c.guest_svn, sect["min_guest_svn"])
    if "vmpl" in sect:
        yield Check("snp.vmpl", c.vmpl in sect["vmpl"], str(c.vmpl), " | ".join(map(str, sect["vmpl"])))


def _tcb_status(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    accepted = list(sect.get("tcb_status", policy.tcb_status))
    if not accepted:  # an explicit empty list opts out of TCB status appraisal
        return
    if c.tcb is None:
        yield Check(f"{c.tee}.tcb_status", False, "not evaluated (no collateral supplied)", " | ".join(accepted))
    else:
        yield Check(f"{c.tee}.tcb_status", c.tcb.status in accepted, c.tcb.status, " | ".join(accepted))


def _tdx(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    fields = {"mrtd": "mrtd", "mrconfigid": "mrconfigid"}
    yield from _lists(c, sect, "tdx", fields)
    for i in range(4):
        if sect.get(f"rtmr{i}"):
            yield listed(f"tdx.rtmr{i}", c.rtmr[i], list(sect[f"rtmr{i}"]))
    observed = {"pcesvn": c.pck.pcesvn, "qe_svn": c.qe_svn, "tdx_module": bytes.fromhex(c.tee_tcb_svn)[0]}
    for comp, minimum in sect.get("min_tcb", {}).items():
        yield at_least(f"tdx.tcb.{comp}", observed[comp], minimum)
    yield from _tcb_status(c, sect, policy)


def _sgx(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    yield from _lists(c, sect, "sgx", {"mrenclave": "mrenclave", "mrsigner": "mrsigner"})
    if "isvprodid" in sect:
        yield Check("sgx.isvprodid", c.isvprodid in sect["isvprodid"], str(c.isvprodid),
                    " | ".join(map(str, sect["isvprodid"])))
    observed = {"isvsvn": c.isvsvn, "pcesvn": c.pck.pcesvn, "qe_svn": c.qe_svn}
    for comp, minimum in sect.get("min_tcb", {}).items():
        yield at_least(f"sgx.tcb.{comp}", observed[comp], minimum)
    yield from _tcb_status(c, sect, policy)


def _cca(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    yield from _lists(c, sect, "cca", {"measurements": "measurement"})
    yield Check("cca.cpak", c.cpak_fingerprint in sect.get("cpak", []), c.cpak_fingerprint or "(none)",
                " | ".join(sect.get("cpak", [])) or "a pinned CPAK (policy lists none)")


def _sim(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    yield Check("sim.insecure", sect.get("insecure") is True, "sim evidence (no hardware protection)",
                "[sim] insecure = true")
    keys = list(sect.get("keys", []))
    yield Check("sim.key", c.platform_key in keys, c.platform_key, " | ".join(keys) or "a pinned key (none listed)")
    yield from _lists(c, sect, "sim", {"measurements": "measurement"})
    if "min_svn" in sect:
        yield at_least("sim.svn", c.svn, sect["min_svn"])
