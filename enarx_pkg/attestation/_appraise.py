"""The TEE-specific checks of a policy appraisal (see :func:`policy.appraise`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from enarx_pkg.attestation.policy import Check, Policy, at_least, listed


def specific(claims: Any, sect: Mapping[str, Any], policy: Policy) -> list[Check]:
    fn = {"snp": _snp, "tdx": _tdx, "sgx": _sgx, "cca": _cca, "sim": _sim}[claims.tee]
    return list(fn(claims, sect, policy)) + list(_collateral(claims, policy))


def required_collateral(policy: Policy, tee: str) -> list[str]:
    """``[collateral] require``; by default QE identity and CRLs for TDX/SGX, nothing more for SNP.

    ``crl = true`` (the older spelling) adds ``crl`` for every TEE.
    """
    table = policy.collateral
    default = ["qe_identity", "crl"] if tee in ("tdx", "sgx") else []
    req = list(table.get("require", default))
    if table.get("crl") and "crl" not in req:
        req.append("crl")
    return req


def _collateral(c: Any, policy: Policy) -> Iterator[Check]:
    if c.tee not in ("snp", "tdx", "sgx"):
        return
    req = required_collateral(policy, c.tee)
    if "qe_identity" in req and c.tee != "snp":
        ok = bool(c.tcb and c.tcb.qe_status)
        yield Check("collateral.qe_identity", ok, "checked" if ok else "no QE identity supplied",
                    "QE identity checked (policy [collateral] require)")
    if "crl" in req:
        ok = c.crl_checked if c.tee == "snp" else bool(c.tcb and c.tcb.crl_checked)
        yield Check("collateral.crl", ok, "checked" if ok else "no CRL supplied",
                    "checked against CRLs (policy [collateral] require)")


def _lists(claims: Any, sect: Mapping[str, Any], prefix: str, fields: Mapping[str, str]) -> Iterator[Check]:
    for key, attr in fields.items():
        if sect.get(key):
            yield listed(f"{prefix}.{key}", str(getattr(claims, attr)), list(sect[key]))


def _snp(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    yield from _lists(c, sect, "snp", {"measurements": "measurement", "host_data": "host_data",
                                       "id_key_digests": "id_key_digest", "products": "product",
                                       "signing_keys": "signing_key", "family_ids": "family_id",
                                       "image_ids": "image_id"})
    if sect.get("author_key_digests"):  # the ID key must be signed by a pinned author key (AUTHOR_KEY_EN)
        author = c.author_key_digest if c.author_key_en else "(no author key: AUTHOR_KEY_EN is 0)"
        yield listed("snp.author_key_digests", author, list(sect["author_key_digests"]))
    for which in sect.get("min_tcb_applies_to", ["reported"]):
        tcb, name = getattr(c, f"{which}_tcb"), "tcb" if which == "reported" else f"{which}_tcb"
        for comp, minimum in sect.get("min_tcb", {}).items():
            yield at_least(f"snp.{name}.{comp}", getattr(tcb, comp), minimum)
    if "min_guest_svn" in sect:
        yield at_least("snp.guest_svn", c.guest_svn, sect["min_guest_svn"])
    vmpls = list(sect.get("vmpl", [0]))
    yield Check("snp.vmpl", c.vmpl in vmpls, str(c.vmpl), " | ".join(map(str, vmpls)))
    if not sect.get("allow_smt", True):
        yield Check("snp.smt", not c.smt_allowed, "allowed" if c.smt_allowed else "not allowed",
                    "not allowed (allow_smt = false)")
    if not sect.get("allow_migration_agent", False):
        yield Check("snp.migration_agent", not c.migrate_ma, "allowed" if c.migrate_ma else "not allowed",
                    "not allowed (allow_migration_agent = true to accept)")


def _tcb_status(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    accepted = list(sect.get("tcb_status", policy.tcb_status))
    if not accepted:  # an explicit empty list opts out of TCB status appraisal
        return
    if c.tcb is None:
        yield Check(f"{c.tee}.tcb_status", False, "not evaluated (no collateral supplied)", " | ".join(accepted))
    else:
        advisories = sorted({*c.tcb.advisory_ids, *c.tcb.module_advisory_ids})
        observed = c.tcb.status + (f" (advisories {', '.join(advisories)})" if advisories else "")
        yield Check(f"{c.tee}.tcb_status", c.tcb.status in accepted, observed, " | ".join(accepted))


def _tdx(c: Any, sect: Mapping[str, Any], policy: Policy) -> Iterator[Check]:
    fields = {"mrtd": "mrtd", "mrconfigid": "mrconfigid"}
    yield from _lists(c, sect, "tdx", fields)
    for i in range(4):
        if sect.get(f"rtmr{i}"):
            yield listed(f"tdx.rtmr{i}", c.rtmr[i], list(sect[f"rtmr{i}"]))
    observed = {"pcesvn": c.pck.pcesvn, "qe_svn": c.qe_svn, "tdx_module": bytes.fromhex(c.tee_tcb_svn)[0]}
    for comp, minimum in sect.get("min_tcb", {}).items():
        yield at_least(f"tdx.tcb.{comp}", observed[comp], minimum)
    if not sect.get("allow_sept_ve", False):  # without it the host can inject #VE at will (Linux refuses to boot)
        yield Check("tdx.sept_ve_disable", c.sept_ve_disable, "set" if c.sept_ve_disable else "not set",
                    "set (allow_sept_ve = true accepts a TD without it)")
    if c.mrservicetd:  # a TD 1.5 quote: a bound service TD (migration) is refused unless pinned
        yield listed("tdx.mrservicetd", c.mrservicetd, list(sect.get("mrservicetd", ["00" * 48])))
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
