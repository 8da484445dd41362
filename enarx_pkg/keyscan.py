"""``host keyscan``: write a policy from what a host shows on first contact (like ``ssh-keyscan``).

It asks the agent for its platform report, creates a keep with a fresh nonce, verifies the evidence
cryptographically and its binding to that nonce and the keep's key (so what it pins is at least
self-consistent and fresh), destroys the keep, and returns a policy that pins what it saw. Like
ssh-keyscan, the first contact itself is not authenticated: the values must be compared with a
trusted source before the policy is used in production.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from enarx_pkg import trust
from enarx_pkg._internal import seal
from enarx_pkg._internal.text import printable
from enarx_pkg.errors import AttestationError

if TYPE_CHECKING:
    from enarx_pkg.host.client import Limits
    from enarx_pkg.trust import Offer

WARNING = ("{host}: this policy pins what the host showed on first contact, which is NOT authenticated: "
           "a compromised host, or anyone in the path, shows you whatever it wants pinned. Compare the values "
           "with a trusted source (the sim key and measurement `host serve` prints on the host itself, your "
           "own build of the keep runtime, your platform's reference values) before using this policy in "
           "production.")


@dataclass(frozen=True)
class Scan:
    """A verified first look at one host: its TEE, the claims of a fresh keep, the policy pinning them."""

    host: str
    tee: str
    claims: Any
    policy: dict[str, Any]
    toml: str
    notes: tuple[str, ...]  # what the policy deliberately does not accept (e.g. debug evidence)

    @property
    def warning(self) -> str:
        return WARNING.format(host=self.host)


def keyscan(host: str, token: str | None, limits: Limits | None = None) -> Scan:
    """Attest one fresh keep on ``host`` and return the policy that pins it (no secret is ever sent)."""
    from enarx_pkg.host.client import HostClient

    with HostClient(host, token, limits) as client:
        platform = client.platform()
        nonce = os.urandom(seal.NONCE_BYTES)
        offer = client.create(nonce)
        try:
            claims = _verify(client.url, platform, offer, nonce)
        finally:
            client.delete(offer)
    policy, notes = pins(claims)
    text = render(policy, client.url)
    _self_check(text, claims, client.url)
    return Scan(client.url, claims.tee, claims, policy, text, notes)


def _verify(host: str, platform: dict[str, Any], offer: Offer, nonce: bytes) -> Any:
    """Evidence signature, binding to our nonce and the offered key, and agreement with the platform report."""
    claims: Any = trust.verify_offer(offer, nonce)
    backend = platform.get("backend")
    if backend != claims.tee:
        raise AttestationError(f"{host} reports backend {printable(str(backend)[:40])!r} but its keep gave "
                               f"{claims.tee} evidence")
    fingerprint = platform.get("sim_key_fingerprint")
    if claims.tee == "sim" and fingerprint != claims.platform_key:
        raise AttestationError(f"{host} reports sim key {printable(str(fingerprint)[:80])} but its keep's "
                               f"evidence is signed by {claims.platform_key}")
    return claims


def pins(claims: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The policy that accepts exactly what ``claims`` show (pure). Debug evidence stays refused."""
    tee = claims.tee
    section: dict[str, Any]
    if tee == "sim":
        section = {"insecure": True, "keys": [claims.platform_key], "measurements": [claims.measurement],
                   "min_svn": claims.svn}
    elif tee == "snp":
        tcb = claims.reported_tcb
        min_tcb = {"bootloader": tcb.bootloader, "tee": tcb.tee, "snp": tcb.snp, "microcode": tcb.microcode}
        if claims.product == "Turin":
            min_tcb["fmc"] = tcb.fmc
        section = {"measurements": [claims.measurement], "products": [claims.product], "min_tcb": min_tcb}
    elif tee == "tdx":
        section = {"mrtd": [claims.mrtd]} | {f"rtmr{i}": [v] for i, v in enumerate(claims.rtmr)}
    elif tee == "sgx":
        section = {"mrenclave": [claims.mrenclave], "mrsigner": [claims.mrsigner], "isvprodid": [claims.isvprodid],
                   "min_tcb": {"isvsvn": claims.isvsvn}}
    else:
        section = {"measurements": [claims.measurement]}
    notes: tuple[str, ...] = ()
    if tee == "sim":
        notes += ("this host offers SOFTWARE sim keeps, which protect nothing; deploy also needs --insecure-sim",)
    if tee in ("tdx", "sgx"):
        notes += ("the TCB status is judged at deploy time from Intel collateral: add a [collateral] table "
                  "(dir = ... or source = \"fetch\") to this policy",)
    if tee == "tdx" and not claims.sept_ve_disable:
        notes += ("the TD runs without SEPT_VE_DISABLE; the policy still refuses it (allow_sept_ve = true "
                  "accepts it)",)
    if claims.debug:
        notes += ("the keep's evidence says debug = true; the policy still forbids debug keeps, so it refuses "
                  "this host as it is",)
    return {"tees": [tee], tee: section}, notes


def render(policy: dict[str, Any], host: str) -> str:
    """The policy as TOML, with the first-contact caveat as a comment."""
    lines = [f"# Pinned by `enarx-pkg host keyscan` from {host} on first contact, which is NOT authenticated:",
             "# compare these values with a trusted source before using this policy in production.",
             f"tees = {_value(policy['tees'])}", ""]
    for name, section in policy.items():
        if name == "tees":
            continue
        lines.append(f"[{name}]")
        for key, value in section.items():
            note = "  # sim keeps are software only: development and demos" if (name, key) == ("sim", "insecure") \
                else ""
            lines.append(f"{key} = {_value(value)}{note}")
    return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"


def _self_check(text: str, claims: Any, host: str) -> None:
    """The policy we print must load as a policy and accept the evidence it was made from (debug aside)."""
    from enarx_pkg.attestation import policy as ap

    policy = ap.Policy.from_mapping(tomllib.loads(text), f"keyscan of {host}")
    # debug stays forbidden on purpose; a TCB status is judged at deploy time from Intel collateral
    failed = [c.name for c in ap.appraise(claims, policy, expected_report_data=None).failed
              if c.name != "debug" and not c.name.endswith("tcb_status")]
    if failed:
        raise AttestationError(f"keyscan of {host}: the pinned policy would refuse its own evidence "
                               f"({', '.join(failed)})")
