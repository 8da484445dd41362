"""What the version page shows about a package's signatures: who signed, verified or not, provenance.

Bundles are untrusted input, read and verified with enarx-pkg's public ``verify`` module. Key
signatures verify only against keys the operator trusts (``registry serve --trusted-key``). Keyless
bundles are verified offline against the identity in their own certificate (production root, then
staging), which proves certificate, log entry and signature genuine for that identity; with
``--trusted-identity``/``--trusted-issuer`` configured, the identity must also be one of those.
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


@dataclass(frozen=True)
class Trust:
    """Whom the pages vouch for: ``registry serve --trusted-key`` PEMs and ``--trusted-identity``/issuer pairs."""

    keys: tuple[Any, ...] = ()  # enarx_pkg.verify.KeyPolicy
    identities: tuple[tuple[str, str], ...] = ()
    trust_config: str | None = None  # a private Sigstore's ClientTrustConfig, tried before the public roots

    @classmethod
    def load(cls, pems: tuple[str, ...], identities: tuple[tuple[str, str], ...],
             trust_config: str | None = None) -> Trust:
        if not pems:
            # the verify module (and cryptography) load at the first signature shown
            return cls((), identities, trust_config)
        from enarx_pkg.verify import KeyPolicy

        return cls(tuple(KeyPolicy(pem.encode()) for pem in pems), identities, trust_config)


def inspect(referrer_digest: str, data: bytes, subject: str, trust: Trust) -> Signature:
    """Describe a bundle and verify it against ``trust``; never raises on bad input (the page says what was wrong)."""
    from enarx_pkg.errors import Error
    from enarx_pkg.keys import hint_fingerprint
    from enarx_pkg.verify import describe_bundle

    try:
        info = describe_bundle(data)
    except Error as exc:
        return Signature(referrer_digest, "unknown", "unreadable bundle", None, False, exc.message)
    statement = _statement(data)
    matches = None if statement is None else subject in _subject_digests(statement)
    prov = _provenance(statement)
    if info.kind == "key":
        signer = "key " + hint_fingerprint(info.signer.removeprefix("key "))
        ok, note = _by_key(data, subject, trust)
        return Signature(referrer_digest, "key", signer, None, ok, note, matches, prov)
    ok, note = _keyless(data, subject, info.signer, info.issuer, trust)
    return Signature(referrer_digest, "keyless", info.signer or "(no identity in certificate)", info.issuer, ok,
                     note, matches, prov)


def _by_key(data: bytes, subject: str, trust: Trust) -> tuple[bool, str]:
    from enarx_pkg.errors import Error
    from enarx_pkg.keys import fingerprint
    from enarx_pkg.verify import verify_bundle

    if not trust.keys:
        return False, "not verified: no trusted key configured"
    reasons = []
    for policy in trust.keys:
        try:
            verify_bundle(data, subject, policy)
        except Error as exc:
            reasons.append(exc.message)
            continue
        return True, f"verified with trusted key {fingerprint(policy.key)}"
    return False, "not verified: " + reasons[-1][:300]


def _keyless(data: bytes, subject: str, signer: str, issuer: str | None, trust: Trust) -> tuple[bool, str]:
    """Offline against the identity in the bundle's own certificate (production root, then staging):
    genuine for that identity. With trusted identities configured, the identity must also be one of them."""
    from enarx_pkg.errors import Error
    from enarx_pkg.verify import IdentityPolicy, verify_bundle

    if not signer or issuer is None:
        return False, "not verified: the certificate names no identity or issuer"
    if trust.identities and (signer, issuer) not in trust.identities:
        return False, f"not verified: {signer} ({issuer}) is not a trusted identity here"
    reasons = []
    roots = ([(trust.trust_config, False)] if trust.trust_config else []) + [(None, False), (None, True)]
    for config, staging in roots:
        try:
            verify_bundle(data, subject, IdentityPolicy(identity=signer, issuer=issuer, staging=staging,
                                                        trust_config=config))
        except Error as exc:
            reasons.append(exc.message)
            continue
        except Exception as exc:  # sigstore raised something unexpected: refuse, and say so
            reasons.append(f"{type(exc).__name__}: {exc}")
            continue
        root = "the --trust-config root" if config else "sigstore staging root" if staging \
            else "sigstore production root"
        trusted = " (a trusted identity)" if trust.identities else ""
        return True, f"verified offline ({root}){trusted}"
    return False, "not verified: " + reasons[-1][:300]


def _statement(data: bytes) -> dict[str, Any] | None:
    """The in-toto statement the bundle carries, for display only (the verification is separate)."""
    try:
        envelope = json.loads(data).get("dsseEnvelope") or {}
        obj = json.loads(base64.b64decode(envelope.get("payload", ""), validate=True))
    except (ValueError, TypeError, AttributeError):
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
    pred = _obj(statement, "predicate")
    definition, run = _obj(pred, "buildDefinition"), _obj(pred, "runDetails")
    builder = _obj(run, "builder")
    deps: list[Any] = definition.get("resolvedDependencies") or []
    deps = deps if isinstance(deps, list) else []
    out = {"predicate_type": statement.get("predicateType"), "build_type": definition.get("buildType"),
           "builder": builder.get("id"),
           "external_parameters": _short(definition.get("externalParameters")),
           "dependencies": [_short(d.get("uri") or d.get("name") or d.get("digest")) for d in deps[:10]
                            if isinstance(d, dict)]}
    return {k: v for k, v in out.items() if v}


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."
