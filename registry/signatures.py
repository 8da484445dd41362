"""What the version page shows about a package's signatures: who signed, verified or not, provenance.

Bundles are untrusted input. Parsing reuses enarx-pkg's bundle model; keyless bundles are verified
offline with sigstore-python against the identity in their own certificate (production root, then
staging), which proves the certificate, log entry and signature are genuine for that identity. It
does not say the identity is one you trust: the page shows the identity so a person can judge.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Signature:
    """One signature referrer as the web page and JSON API show it."""

    digest: str
    kind: str  # keyless | key | unknown
    signer: str  # identity (certificate SAN) or "key sha256:..."
    issuer: str | None
    verified: bool
    note: str
    subject_matches: bool | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "kind": self.kind, "signer": self.signer, "issuer": self.issuer,
                "verified": self.verified, "note": self.note, "subject_matches": self.subject_matches,
                "provenance": self.provenance}


def inspect(referrer_digest: str, data: bytes, subject: str) -> Signature:
    """Describe a bundle; never raises on bad input (the page says what was wrong instead)."""
    from enarx_pkg._internal import sigstore_bundle
    from enarx_pkg.errors import Error

    try:
        parsed = sigstore_bundle.parse(data, f"bundle {referrer_digest}")
    except Error as exc:
        return Signature(referrer_digest, "unknown", "unreadable bundle", None, False, exc.message)
    statement = _statement(parsed.envelope.payload if parsed.envelope else None)
    matches = None if statement is None else subject in _subject_digests(statement)
    prov = _provenance(statement)
    if parsed.kind == "key":
        return Signature(referrer_digest, "key", f"key {_fingerprint(parsed.key_hint)}", None, False,
                         "not verified: no trusted key configured", matches, prov)
    return _keyless(referrer_digest, data, parsed.certificate_der or b"", parsed.envelope is not None, matches, prov)


def _keyless(dg: str, data: bytes, cert: bytes, is_dsse: bool, matches: bool | None,
             prov: dict[str, Any]) -> Signature:
    from enarx_pkg._internal import sigstore_bundle, sigstore_keyless
    from enarx_pkg.errors import Error

    try:
        names, issuer = sigstore_bundle.certificate_identity(cert)
    except Exception as exc:  # a malformed certificate is the bundle's problem, shown on the page
        return Signature(dg, "keyless", "unreadable certificate", None, False, f"not verified: {exc}")
    signer = names[0] if names else "(no identity in certificate)"
    if not is_dsse:
        return Signature(dg, "keyless", signer, issuer, False, "not verified: not a DSSE bundle", matches, prov)
    policy = sigstore_keyless.IdentityMatch(signer, issuer)
    reasons = []
    for staging in (False, True):
        try:
            sigstore_keyless.verify_dsse(data, policy, staging=staging, offline=True)
        except Error as exc:
            reasons.append(exc.message)
            continue
        except Exception as exc:  # sigstore raised something unexpected: refuse, and say so
            reasons.append(f"{type(exc).__name__}: {exc}")
            continue
        root = "staging" if staging else "production"
        return Signature(dg, "keyless", signer, issuer, True, f"verified offline (sigstore {root} root)",
                         matches, prov)
    return Signature(dg, "keyless", signer, issuer, False, "not verified: " + reasons[-1][:300], matches, prov)


def _fingerprint(hint: str | None) -> str:
    if not hint:
        return "(no key hint)"
    try:
        raw = base64.b64decode(hint, validate=True)
    except ValueError:
        return hint[:100]
    return "sha256:" + raw.hex() if len(raw) == 32 else hint[:100]


def _statement(payload: bytes | None) -> dict[str, Any] | None:
    if payload is None:
        return None
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _subject_digests(statement: dict[str, Any]) -> set[str]:
    out = set()
    for s in statement.get("subject") or []:
        if isinstance(s, dict) and isinstance(s.get("digest"), dict):
            for algo, value in s["digest"].items():
                out.add(f"{algo}:{value}")
    return out


def _provenance(statement: dict[str, Any] | None) -> dict[str, Any]:
    """A few fields of an SLSA v1 predicate, for people; the full statement stays in the bundle."""
    if statement is None:
        return {}
    pred = statement.get("predicate") if isinstance(statement.get("predicate"), dict) else {}
    definition = pred.get("buildDefinition") if isinstance(pred.get("buildDefinition"), dict) else {}
    run = pred.get("runDetails") if isinstance(pred.get("runDetails"), dict) else {}
    builder = run.get("builder") if isinstance(run.get("builder"), dict) else {}
    deps = definition.get("resolvedDependencies") if isinstance(definition.get("resolvedDependencies"), list) else []
    out = {"predicate_type": statement.get("predicateType"), "build_type": definition.get("buildType"),
           "builder": builder.get("id"),
           "external_parameters": _short(definition.get("externalParameters")),
           "dependencies": [_short(d.get("uri") or d.get("name") or d.get("digest")) for d in deps[:10]
                            if isinstance(d, dict)]}
    return {k: v for k, v in out.items() if v}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."
