"""Attestation policy: what evidence a deployer accepts, and an appraisal that reports every check.

A policy is TOML, either an Enarx.toml ``[attestation]`` table or a standalone file. Its shape is
defined once, in :data:`SPEC`; ``schemas/policy.schema.json`` is generated from it (:func:`json_schema`).
Appraisal is pure: claims + policy in, an :class:`Appraisal` listing every check out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from enarx_pkg._internal import bounded
from enarx_pkg.attestation._errors import EvidenceError
from enarx_pkg.errors import InputError

STATUSES = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
            "OutOfDate", "OutOfDateConfigurationNeeded", "Unsupported", "Revoked"]
TEES = ["snp", "tdx", "sgx", "cca", "sim"]
_FP = r"^sha256:[0-9a-f]{64}$"


def _hex(*sizes: int) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "pattern": "^(" + "|".join(
        f"[0-9a-fA-F]{{{2 * n}}}" for n in sizes) + ")$"}}


def _ints() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "integer", "minimum": 0}}


def _enum(values: list[str]) -> dict[str, Any]:
    return {"type": "array", "items": {"enum": values}, "uniqueItems": True}


def _mins(*names: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "properties": {n: {"type": "integer", "minimum": 0} for n in names}}


_BOOL, _INT = {"type": "boolean"}, {"type": "integer", "minimum": 0}
_STATUS = _enum(STATUSES)
SPEC: dict[str, dict[str, Any]] = {
    "snp": {"measurements": _hex(48), "host_data": _hex(32), "id_key_digests": _hex(48),
            "author_key_digests": _hex(48), "family_ids": _hex(16), "image_ids": _hex(16),
            "products": _enum(["Milan", "Genoa", "Turin"]), "signing_keys": _enum(["vcek", "vlek"]),
            "min_tcb": _mins("bootloader", "tee", "snp", "microcode", "fmc"),
            "min_tcb_applies_to": {**_enum(["reported", "committed", "launch", "current"]), "minItems": 1},
            "min_guest_svn": _INT, "vmpl": _ints(), "allow_smt": _BOOL, "allow_migration_agent": _BOOL,
            "debug": _BOOL},
    "tdx": {"mrtd": _hex(48), "rtmr0": _hex(48), "rtmr1": _hex(48), "rtmr2": _hex(48), "rtmr3": _hex(48),
            "mrconfigid": _hex(48), "mrservicetd": _hex(48), "min_tcb": _mins("pcesvn", "qe_svn", "tdx_module"),
            "tcb_status": _STATUS, "allow_sept_ve": _BOOL, "debug": _BOOL},
    "sgx": {"mrenclave": _hex(32), "mrsigner": _hex(32), "isvprodid": _ints(),
            "min_tcb": _mins("isvsvn", "pcesvn", "qe_svn"), "tcb_status": _STATUS, "debug": _BOOL},
    "cca": {"measurements": _hex(32, 48, 64), "cpak": {"type": "array", "items": {"pattern": _FP}},
            "debug": _BOOL},
    "sim": {"insecure": _BOOL, "keys": {"type": "array", "items": {"type": "string", "pattern": _FP}},
            "measurements": _hex(48), "min_svn": _INT, "debug": _BOOL},
}
TOP: dict[str, Any] = {
    "tees": _enum(TEES), "debug": _BOOL, "tcb_status": _STATUS,
    "collateral": {"type": "object", "additionalProperties": False, "properties": {
        "source": {"enum": ["evidence", "offline", "fetch"]}, "dir": {"type": "string"}, "crl": _BOOL,
        "require": _enum(["qe_identity", "crl"])}},
}
_MEASUREMENT_KEYS = {"snp": ("measurements",), "tdx": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid"),
                     "sgx": ("mrenclave", "mrsigner"), "cca": ("measurements",), "sim": ("measurements",)}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy table (written to ``schemas/policy.schema.json``)."""
    props = dict(TOP)
    for tee, keys in SPEC.items():
        props[tee] = {"type": "object", "additionalProperties": False, "properties": keys}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://enarx.dev/schemas/enarx-pkg/policy.schema.json",
            "title": "enarx-pkg attestation policy",
            "description": "Enarx.toml [attestation] table, or a standalone policy file.",
            "type": "object", "additionalProperties": False, "required": ["tees"], "properties": props}


@dataclass(frozen=True)
class Policy:
    """A validated policy. ``sections`` maps each TEE to its table (read-only)."""

    tees: tuple[str, ...]
    sections: Mapping[str, Mapping[str, Any]]
    debug: bool = False
    tcb_status: tuple[str, ...] = ("UpToDate",)
    collateral: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> Policy:
        """Validate an untrusted mapping (parsed TOML); errors name ``where`` and the key path."""
        import jsonschema

        validator = jsonschema.Draft202012Validator(json_schema())
        errors = sorted(validator.iter_errors(dict(data)), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            path = ".".join(str(p) for p in e.absolute_path) or "(top level)"
            raise InputError(f"{where}: policy key {path}: {e.message}")
        sections = {t: MappingProxyType(dict(data.get(t, {}))) for t in TEES}
        return cls(tees=tuple(data["tees"]), sections=MappingProxyType(sections),
                   debug=bool(data.get("debug", False)),
                   tcb_status=tuple(data.get("tcb_status", ("UpToDate",))),
                   collateral=MappingProxyType(dict(data.get("collateral", {}))))

    def section(self, tee: str) -> Mapping[str, Any]:
        return self.sections.get(tee, {})


MAX_POLICY_BYTES = 1 << 20  # a policy is a page of pins


def load_policy(path: Path) -> Policy:
    """Read a policy file: a standalone policy, or an Enarx.toml with an ``[attestation]`` table."""
    import tomllib

    try:
        data = tomllib.loads(bounded.file(Path(path), "policy file", MAX_POLICY_BYTES).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc
    if "attestation" in data and "tees" not in data:
        data = data["attestation"]
        if not isinstance(data, dict):
            raise InputError(f"{path}: [attestation] must be a table")
    return Policy.from_mapping(data, str(path))


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: str
    expected: str


@dataclass(frozen=True)
class Appraisal:
    tee: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def raise_for_failure(self) -> None:
        """Raise :class:`AttestationError` listing every failed check."""
        if self.ok:
            return
        lines = "; ".join(f"{c.name} (observed {c.observed}, expected {c.expected})" for c in self.failed)
        raise EvidenceError("policy", f"{self.tee} evidence refused by policy: {lines}")

    def to_dict(self) -> dict[str, Any]:
        return {"tee": self.tee, "ok": self.ok, "checks": [c.__dict__ for c in self.checks]}


def appraise(claims: Any, policy: Policy, *, expected_report_data: bytes | None) -> Appraisal:
    """Check verified ``claims`` against ``policy``; every check is recorded, passed or not."""
    from enarx_pkg.attestation import _appraise

    checks: list[Check] = [Check("tee", claims.tee in policy.tees, claims.tee, " | ".join(policy.tees))]
    if expected_report_data is not None:
        checks.append(Check("report_data", claims.report_data == expected_report_data,
                            claims.report_data.hex(), expected_report_data.hex()))
    sect = policy.section(claims.tee)
    allow_debug = bool(sect.get("debug", policy.debug))
    checks.append(Check("debug", allow_debug or not claims.debug, str(claims.debug).lower(),
                        "any" if allow_debug else "false"))
    listed = [k for k in _MEASUREMENT_KEYS[claims.tee] if sect.get(k)]
    if not listed:
        checks.append(Check("measurement", False, claims.measurement, "policy pins no measurement for "
                            f"{claims.tee} ({', '.join(_MEASUREMENT_KEYS[claims.tee])})"))
    checks.extend(_appraise.specific(claims, sect, policy))
    return Appraisal(claims.tee, tuple(checks))


def listed(name: str, observed: str, allowed: list[str]) -> Check:
    """A membership check, case-insensitive for hex values."""
    low = [a.lower() for a in allowed]
    return Check(name, observed.lower() in low, observed, " | ".join(allowed))


def at_least(name: str, observed: int, minimum: int) -> Check:
    return Check(name, observed >= minimum, str(observed), f">= {minimum}")
