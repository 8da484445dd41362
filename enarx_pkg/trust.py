"""Which keep may receive secrets: the deployer's trust decisions, as pure functions on bytes.

Like python-tuf's ``TrustedMetadataSet``, nothing here fetches, reads a file or looks at the clock
beyond what a verifier needs: a host's create-keep answer comes in as an :class:`Offer` (parsed,
nothing in it trusted), and :func:`attest` is the only way to get an :class:`AttestedKeep`, the only
thing :func:`enarx_pkg._internal.seal.seal_envelope` seals to. So sealing before attesting does not
type-check, and at run time an ``AttestedKeep`` made anywhere else refuses to exist.

The TEE of a keep is what its verified evidence says. The host's ``tee`` label is a hint that must
name a known TEE and agree with the evidence; ``--insecure-sim`` and a package's ``[keep] backends``
are checked against the verified TEE, never against the label.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from enarx_pkg._internal import b64, seal
from enarx_pkg._internal.text import printable
from enarx_pkg.errors import AttestationError, InputError, TransportError

TEES = ("snp", "tdx", "sgx", "cca", "sim")
MAX_EVIDENCE_BYTES = 1 << 20
MAX_AUX_BYTES = 1 << 20
_KEEP_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")
_CAPABILITY = re.compile(r"[A-Za-z0-9_-]{32,256}")
_ATTESTED = object()  # only attest() holds it


class HostAnswerError(TransportError):
    """A host agent's answer is malformed (wrong shape, bad base64, bad sizes): refused for that host."""


@dataclass(frozen=True)
class Offer:
    """A host's create-keep answer: a keep, its key, its evidence. Nothing in it is trusted yet."""

    host: str
    keep_id: str
    tee_label: str  # the host's claim; a hint only
    public_key: bytes
    evidence: bytes
    aux: bytes
    capability: str = field(repr=False)  # the keep's own bearer secret (provision, stdin, delete)

    @classmethod
    def parse(cls, obj: Any, host: str) -> Offer:
        """Parse a create-keep answer; every malformed field is a :class:`HostAnswerError` naming it."""
        if not isinstance(obj, dict):
            raise HostAnswerError(f"{host}: the create-keep answer is not a JSON object")
        fields = {k: obj.get(k) for k in ("keep_id", "tee", "keep_public_key", "evidence", "capability")}
        missing = [k for k, v in fields.items() if not isinstance(v, str)]
        if missing:
            raise HostAnswerError(f"{host}: the create-keep answer has no string {', '.join(missing)}")
        keep_id, capability = str(fields["keep_id"]), str(fields["capability"])
        if not _KEEP_ID.fullmatch(keep_id):
            raise HostAnswerError(f"{host}: the keep id {printable(keep_id[:80])!r} is not 8-128 of [A-Za-z0-9_-]")
        if not _CAPABILITY.fullmatch(capability):
            raise HostAnswerError(f"{host}: the keep capability is not 32-256 of [A-Za-z0-9_-]")
        key = _b64(fields["keep_public_key"], host, "keep_public_key", seal.KEY_BYTES)
        if len(key) != seal.KEY_BYTES:
            raise HostAnswerError(f"{host}: keep_public_key is {len(key)} bytes, expected {seal.KEY_BYTES}")
        aux = obj.get("aux")
        if aux is not None and not isinstance(aux, str):
            raise HostAnswerError(f"{host}: aux is not a base64 string")
        return cls(host, keep_id, str(fields["tee"]), key, _b64(fields["evidence"], host, "evidence",
                                                                   MAX_EVIDENCE_BYTES),
                   _b64(aux or "", host, "aux", MAX_AUX_BYTES), capability)


def _b64(value: Any, host: str, name: str, limit: int) -> bytes:
    if isinstance(value, str) and len(value) > (limit + 2) // 3 * 4:
        raise HostAnswerError(f"{host}: {name} is over its {limit}-byte limit")
    try:
        return b64.decode(value, name)
    except InputError:
        raise HostAnswerError(f"{host}: {name} is not valid base64") from None


@dataclass(frozen=True)
class AttestedKeep:
    """A keep whose evidence verified, is bound to this deploy's nonce and key, and satisfies the policy."""

    host: str
    keep_id: str
    tee: str  # from the verified evidence
    public_key: bytes
    measurement: str
    claims: Any = field(repr=False)
    capability: str = field(repr=False)
    _proof: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self._proof is not _ATTESTED:
            raise TypeError("an AttestedKeep is obtained from enarx_pkg.trust.attest() only")


def evidence_tee(offer: Offer) -> str:
    """The TEE the evidence's own format shows, which the host's label must name (pure; not yet verified)."""
    from enarx_pkg.attestation import dispatch
    from enarx_pkg.attestation._errors import EvidenceError

    label = printable(offer.tee_label[:40])
    if offer.tee_label not in TEES:
        raise AttestationError(f"{offer.host} labels its keep {label!r}, which is not a TEE "
                               f"({', '.join(TEES)}): refused")
    try:
        detected = dispatch.detect(offer.evidence)
    except EvidenceError as exc:
        raise AttestationError(f"{offer.host}: {exc}") from None
    if detected != offer.tee_label:
        raise AttestationError(f"{offer.host} labels its keep {label!r} but sent {detected} evidence: refused")
    return detected


def attest(offer: Offer, nonce: bytes, policy: Any, collateral: Any = None, *, insecure_sim: bool = False,
           at: Any = None) -> AttestedKeep:
    """Verify the offer's evidence, its binding to ``nonce`` and the offered key, and the policy.

    The only constructor of :class:`AttestedKeep`. Raises :class:`AttestationError` (or another
    ``VerificationError``) naming the host and every failed check.
    """
    from enarx_pkg.attestation import policy as ap

    claims = verify_offer(offer, nonce, collateral, at=at)
    check_sim(claims.tee, offer.host, insecure_sim)
    appraisal = ap.appraise(claims, policy, expected_report_data=seal.report_data(nonce, offer.public_key))
    if not appraisal.ok:
        raise AttestationError(appraisal_refusal(offer.host, appraisal.tee, appraisal.checks))
    return AttestedKeep(offer.host, offer.keep_id, claims.tee, offer.public_key, claims.measurement, claims,
                        offer.capability, _ATTESTED)


def verify_offer(offer: Offer, nonce: bytes, collateral: Any = None, *, at: Any = None) -> Any:
    """The offer's verified claims: evidence signature chain, TEE as labelled, binding to ``nonce`` and key.

    No policy: ``host keyscan`` pins what this returns; ``attest`` appraises it.
    """
    from enarx_pkg.attestation import verify_evidence

    tee = evidence_tee(offer)
    claims = verify_evidence(tee, offer.evidence, certs=evidence_certs(tee, offer.aux, offer.host),
                             collateral=collateral, at=at)
    if claims.tee != tee:
        raise AttestationError(f"{offer.host} labels its keep {tee!r} but its evidence verifies as {claims.tee}")
    check_binding(claims.report_data, nonce, offer.public_key, offer.host)
    return claims


def evidence_certs(tee: str, aux: bytes, host: str) -> list[bytes]:
    """Certificates the keep sent beside its evidence (SNP: the host's certificate table)."""
    if tee != "snp" or not aux:
        return []
    from enarx_pkg.attestation._errors import EvidenceError
    from enarx_pkg.attestation.snp import parse_cert_table

    try:
        return parse_cert_table(aux)
    except (EvidenceError, ValueError) as exc:
        raise AttestationError(f"{host}: the SNP certificate table in aux is malformed: {exc}") from None


def check_binding(claimed_report_data: bytes, nonce: bytes, keep_public_key: bytes, host: str) -> None:
    """The evidence must carry SHA-512(prefix ‖ OUR nonce ‖ the key we are about to seal to)."""
    expected = seal.report_data(nonce, keep_public_key)
    if not hmac.compare_digest(claimed_report_data, expected):
        raise AttestationError(
            f"evidence from {host} is not bound to this deploy's nonce and the keep key offered: "
            "it was made for another keep or replayed from an earlier deploy")


def check_sim(tee: str, host: str, insecure_sim: bool) -> None:
    """A sim keep protects nothing; only an explicit ``--insecure-sim`` lets it through to the policy."""
    if tee == "sim" and not insecure_sim:
        raise AttestationError(
            f"{host} offers a sim keep, which is software only and protects nothing: refused without --insecure-sim",
            hint="for development only: pass --insecure-sim and pin the host's sim key in the policy")


def check_backend(keep: AttestedKeep, allowed: Sequence[str]) -> None:
    """The package's own ``[keep] backends``, against the verified TEE."""
    if allowed and keep.tee not in allowed:
        raise AttestationError(f"{keep.host} offers a {keep.tee} keep; the package's [keep] backends allow "
                               f"{', '.join(allowed)}")


def appraisal_refusal(host: str, tee: str, checks: Sequence[Any]) -> str:
    """The refusal message: every check of the appraisal, passed and failed, so nothing is guessed."""
    lines = [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: observed {c.observed}, expected {c.expected}"
             for c in checks]
    failed = sum(1 for c in checks if not c.passed)
    return f"{tee} evidence from {host} refused by the policy ({failed} of {len(checks)} checks failed):\n" + \
        "\n".join(lines)
