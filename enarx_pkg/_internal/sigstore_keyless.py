"""Keyless (Fulcio certificate + Rekor log) signing and verification, through sigstore-python.

Imported only when a keyless bundle is signed or verified: ``import sigstore.verify`` costs
~0.4 s, which key-based verification must never pay. Every sigstore exception is turned into an
enarx-pkg error here, so callers see one error hierarchy.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import TYPE_CHECKING, Any

from enarx_pkg._internal.sigstore_bundle import (
    OID_ISSUER_V1,
    OID_ISSUER_V2,
    MalformedBundle,
    issuer_extensions,
)
from enarx_pkg.errors import InputError, NotFoundError, TransportError, UsageError, VerificationError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.verify import Verifier

# sigstore logs a warning every time the embedded trusted root is used offline; that is the point.
logging.getLogger("sigstore._internal.tuf").setLevel(logging.ERROR)


MAX_TRUST_CONFIG_BYTES = 1024 * 1024
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def verifier(staging: bool, offline: bool, trust_config: str | None = None) -> Verifier:
    """A sigstore Verifier for the production, staging or a private instance (cached: roots cost;
    a trust config file is re-read when it changes, as a long-running registry may see)."""
    import os

    try:
        st = os.stat(trust_config) if trust_config is not None else None
    except OSError:
        st = None  # load_trust_config says what is wrong
    return _verifier(staging, offline, trust_config, (st.st_mtime_ns, st.st_size, st.st_ino) if st else None)


@functools.lru_cache(maxsize=8)
def _verifier(staging: bool, offline: bool, trust_config: str | None, _version: object) -> Verifier:
    from sigstore.verify import Verifier

    made: Verifier
    if trust_config is not None:
        root = load_trust_config(trust_config).trusted_root
        made = _guard_config(lambda: Verifier(trusted_root=root), trust_config)
    else:
        made = _guard_tuf(lambda: Verifier.staging(offline=offline) if staging
                          else Verifier.production(offline=offline))
    _memoize_root(made)
    return made


def _memoize_root(v: Verifier) -> None:
    """Keep what sigstore-python derives from the trusted root on EVERY verification.

    ``Verifier`` rebuilds the Rekor and CT keyrings (for VERIFY: expired keys allowed, so nothing
    depends on the clock) and the TSA list from the root's protobufs each time: ~10% of an offline
    keyless verification (bench/verify.py). This cached verifier's root never changes, so each is
    computed once. Only these three pure methods of the root object are wrapped.
    """
    root = getattr(v, "_trusted_root", None)
    for name in ("rekor_keyring", "ct_keyring", "get_timestamp_authorities"):
        method = getattr(root, name, None)
        if callable(method):
            setattr(root, name, functools.lru_cache(maxsize=4)(method))


def load_trust_config(path: str) -> ClientTrustConfig:
    """A sigstore ClientTrustConfig JSON file (trusted root + signing config), as sigstore's CLI takes."""
    from pathlib import Path

    from sigstore.models import ClientTrustConfig

    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"trust config {path} does not exist")
    if file.stat().st_size > MAX_TRUST_CONFIG_BYTES:
        raise InputError(f"trust config {path} is over {MAX_TRUST_CONFIG_BYTES} bytes")
    text = file.read_text(encoding="utf-8", errors="replace")
    return _guard_config(lambda: ClientTrustConfig.from_json(text), path)  # type: ignore[no-any-return]


def _client_config(staging: bool, trust_config: str | None) -> ClientTrustConfig:
    from sigstore.models import ClientTrustConfig

    if trust_config is not None:
        return load_trust_config(trust_config)
    return _guard_tuf(ClientTrustConfig.staging if staging else ClientTrustConfig.production,  # type: ignore[no-any-return]
                      "signing with the public instance needs its TUF repository (network); "
                      "--trust-config FILE signs with a private one")


def _guard_config(call: Any, path: str) -> Any:
    from sigstore.errors import Error as SigstoreError

    try:
        return call()
    except (SigstoreError, ValueError, TypeError, KeyError) as exc:  # pydantic/betterproto parse errors
        raise InputError(f"trust config {path}: not a usable sigstore ClientTrustConfig: {_first_line(exc)}",
                         hint="expected application/vnd.dev.sigstore.clienttrustconfig.v0.1+json, "
                              "as `sigstore --trust-config` takes") from None


def _guard_tuf(call: Any, hint: str = "use --offline to rely on the embedded trusted root, or --trust-config "
                                       "for a private instance") -> Any:
    from sigstore.errors import Error as SigstoreError

    try:
        return call()
    except SigstoreError as exc:
        raise TransportError(f"sigstore TUF: cannot load the trusted root: {_first_line(exc)}", hint=hint) from None


class IdentityMatch:
    """A sigstore ``VerificationPolicy``: certificate identity and issuer, each exact or regexp.

    Regular expressions must match the WHOLE value (``re.fullmatch``): cosign matches anywhere, so
    a cosign pattern without anchors may be refused here, never accepted by surprise.
    """

    def __init__(self, identity: str | None, issuer: str | None,
                 identity_regexp: str | None = None, issuer_regexp: str | None = None) -> None:
        self.identity, self.issuer = identity, issuer
        self.identity_re = _compile(identity_regexp, "--certificate-identity-regexp")
        self.issuer_re = _compile(issuer_regexp, "--certificate-oidc-issuer-regexp")

    def verify(self, cert: Certificate) -> None:
        """Raise sigstore's VerificationError unless the certificate matches (sigstore's contract)."""
        from sigstore.errors import VerificationError as SigstoreVerificationError

        issuer = fulcio_issuer(cert)
        if not _matches(issuer, self.issuer, self.issuer_re):
            raise SigstoreVerificationError(f"certificate OIDC issuer is {issuer!r}, which does not match "
                                            f"the expected {_wanted(self.issuer, self.issuer_re)}")
        identity = fulcio_identity(cert)
        if not _matches(identity, self.identity, self.identity_re):
            raise SigstoreVerificationError(f"certificate identity {[identity]} does not match "
                                            f"the expected {_wanted(self.identity, self.identity_re)}")


def fulcio_identity(cert: Certificate) -> str:
    """The one email or URI a Fulcio certificate names. sigstore-js reads only the first URI (else email),
    sigstore-python compares against all SANs and cannot match a username otherName: a certificate
    with more than one name, or another kind of name, would be judged differently, so it is refused."""
    from cryptography import x509
    from sigstore.errors import VerificationError as SigstoreVerificationError

    try:
        names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    if len(names) != 1 or not isinstance(names[0], x509.RFC822Name | x509.UniformResourceIdentifier):
        raise SigstoreVerificationError(f"certificate names {len(names)} identities "
                                        f"({', '.join(type(n).__name__ for n in names) or 'none'}); a Fulcio "
                                        "certificate names exactly one email or URI")
    return str(names[0].value)


def fulcio_issuer(cert: Certificate) -> str:
    """The OIDC issuer a Fulcio certificate vouches for, read as strictly as BOTH peers read it.

    sigstore-python takes only the legacy extension (…57264.1.1, raw UTF-8); sigstore-js prefers the
    new one (…57264.1.8, a DER UTF8String). So the legacy one must be there, and the new one, when
    present, must say the same: otherwise one of them would accept what the other refuses.
    """
    from sigstore.errors import VerificationError as SigstoreVerificationError

    legacy, new = issuer_extensions(cert)
    if legacy is None:
        raise SigstoreVerificationError(f"certificate has no OIDC issuer extension {OID_ISSUER_V1} "
                                        "(sigstore-python requires it; Fulcio always writes it)")
    try:
        issuer = legacy.decode("utf-8")
    except UnicodeDecodeError:
        raise SigstoreVerificationError(f"certificate OIDC issuer extension {OID_ISSUER_V1} is not UTF-8") from None
    if new is not None and new != issuer:
        shown = new if isinstance(new, str) else f"malformed ({new[:40].hex()})"
        raise SigstoreVerificationError(f"certificate OIDC issuer extensions disagree: {OID_ISSUER_V1} says "
                                        f"{issuer!r}, {OID_ISSUER_V2} says {shown!r}")
    return issuer


def _wanted(exact: str | None, pattern: re.Pattern[str] | None) -> str:
    if exact is not None:
        return repr(exact)
    return f"regexp {pattern.pattern!r}" if pattern is not None else "value (none given)"


def _matches(value: str | None, exact: str | None, pattern: re.Pattern[str] | None) -> bool:
    if value is None:
        return False
    if exact is not None:
        return value == exact
    return pattern is not None and pattern.fullmatch(value) is not None


def _compile(pattern: str | None, flag: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{flag}: invalid regular expression: {exc}") from None


def load_bundle(data: bytes) -> Bundle:
    from sigstore.models import Bundle, InvalidBundle

    try:
        return Bundle.from_json(data)
    except (InvalidBundle, ValueError) as exc:
        reason = _first_line(exc)
        if "tlogEntries" in reason or "inclusion proof" in reason:
            # a log entry that does not hold together is evidence refused, like a bad signature
            raise VerificationError(f"transparency log entry refused: {reason}") from None
        if isinstance(exc, InvalidBundle):
            raise MalformedBundle(f"bundle refused by sigstore: {reason}") from None
        raise MalformedBundle(f"bundle is not a sigstore bundle: {reason}") from None


def verify_dsse(data: bytes, policy: IdentityMatch, *, staging: bool, offline: bool,
                trust_config: str | None = None) -> tuple[str, bytes]:
    """Verify a keyless DSSE bundle (chain to Fulcio, SCT, Rekor entry, identity); (type, payload)."""
    bundle = load_bundle(data)
    v = verifier(staging, offline, trust_config)
    out = _guard(lambda: v.verify_dsse(bundle, policy), _instance(staging, trust_config))
    _every_timestamp_verifies(v, bundle, _instance(staging, trust_config))
    return out  # type: ignore[no-any-return]


def verify_artifact(data: bytes, artifact: bytes | str, policy: IdentityMatch, *, staging: bool,
                    offline: bool, trust_config: str | None = None) -> None:
    """Verify a keyless message-signature bundle over artifact bytes or its ``sha256:`` digest."""
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    bundle = load_bundle(data)
    target: bytes | Hashed = artifact if isinstance(artifact, bytes) else Hashed(
        algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(artifact.removeprefix("sha256:")))
    v = verifier(staging, offline, trust_config)
    _guard(lambda: v.verify_artifact(target, bundle, policy), _instance(staging, trust_config))
    _every_timestamp_verifies(v, bundle, _instance(staging, trust_config))


def _every_timestamp_verifies(v: Verifier, bundle: Bundle, instance: str) -> None:
    """Refuse a bundle carrying an RFC 3161 timestamp that does not verify, as sigstore-js does.

    sigstore-python only needs enough verified times (the log's integrated time is one), so it
    skips a timestamp over another signature or from a TSA its root does not list; a bundle that
    one verifier refuses is refused here too. The check is sigstore-python's own, per timestamp.
    """
    vd = bundle.verification_material.timestamp_verification_data
    carried = list(vd.rfc3161_timestamps) if vd else []
    if not carried:
        return
    check = getattr(v, "_verify_timestamp_authority", None)
    verified = _guard(lambda: check(bundle), instance) if check is not None else []
    if len(verified) != len(carried):
        raise VerificationError(f"keyless signature refused against {instance}: {len(carried) - len(verified)} "
                                f"of its {len(carried)} RFC 3161 timestamp(s) do not verify (not over this "
                                "signature, or not from a timestamp authority of the trusted root)")


def _instance(staging: bool, trust_config: str | None) -> str:
    if trust_config is not None:
        return f"the trusted root of {trust_config}"
    return "the sigstore staging root" if staging else "the sigstore production root"


def _guard(call: Any, instance: str) -> Any:
    """Run a sigstore verification; every failure, including a log entry sigstore cannot even
    read (it raises AttributeError/KeyError/ValueError on some), is a refusal."""
    from sigstore.errors import Error as SigstoreError

    try:
        return call()
    except SigstoreError as exc:
        raise VerificationError(f"keyless signature refused against {instance}: {_first_line(exc)}") from None
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise VerificationError(f"keyless signature refused against {instance}: malformed transparency log "
                                f"entry or certificate ({type(exc).__name__}: {_first_line(exc)})") from None


def sign_statement(statement: bytes, token: str | None, *, staging: bool,
                   trust_config: str | None = None) -> bytes:
    """Sign an in-toto statement keylessly (Fulcio certificate, Rekor entry); the bundle JSON.

    Needs the network: Fulcio and Rekor of the public instance (its signing config comes from the
    sigstore TUF repository) or of the one ``trust_config`` names. The identity token comes from
    ``token`` or ambient CI credentials. The bundle is verified under the same trusted root before
    it is returned, so a bundle whose certificate does not hold the signing key never leaves here.
    """
    from sigstore import dsse

    identity = identity_token(token)
    config = _client_config(staging, trust_config)
    context = _guard_config(lambda: _signing_context(config), trust_config or "of the public instance")
    signer = _call_service("Fulcio", context, lambda: _fulcio_signer(identity, context))
    bundle = _call_service("Rekor", context, lambda: signer.sign_dsse(dsse.Statement(statement)))
    v = _guard_config(lambda: _verifier_of(config), trust_config or "of the public instance")
    _guard(lambda: v.verify_dsse(bundle, _SelfCheck()), _instance(staging, trust_config))
    return bundle.to_json().encode("utf-8")  # type: ignore[no-any-return]


def _signing_context(config: Any) -> Any:
    from sigstore.sign import SigningContext

    return SigningContext.from_trust_config(config)


def _verifier_of(config: Any) -> Any:
    from sigstore.verify import Verifier

    return Verifier(trusted_root=config.trusted_root)


def _fulcio_signer(identity: Any, context: Any) -> Any:
    """A Signer holding ONE ephemeral key and the Fulcio certificate for it.

    ``cache=True`` is what binds them: with ``cache=False`` sigstore-python 4.x makes a new key on
    every access, so the CSR and the signature used different keys (the bug of issue 18).
    """
    from sigstore.sign import Signer

    return Signer(identity, context, cache=True)


class _SelfCheck:
    """Verification policy for the bundle just made: identity is reported, not judged, here."""

    def verify(self, cert: Certificate) -> None:
        return None


def _call_service(service: str, context: Any, call: Any) -> Any:
    """Run one signing step; its failure names the service, its URL and the reason (exit 69),
    and an answer that is not what the protocol promises is a refusal (exit 77)."""
    import requests
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.oidc import ExpiredIdentity

    url = _service_url(service, context)
    try:
        return call()
    except ExpiredIdentity:
        raise InputError("OIDC identity token has expired", hint="get a fresh token and sign again") from None
    except SigstoreVerificationError as exc:
        raise VerificationError(f"{service} answer refused: {_first_line(exc)}", hint=f"service at {url}") from None
    except (requests.RequestException, SigstoreError) as exc:
        raise TransportError(f"{service} failed: {_reason(exc)}", url=url) from None
    except Exception as exc:
        if type(exc).__name__ in ("FulcioClientError", "RekorClientError"):
            raise TransportError(f"{service} failed: {_reason(exc)}", url=url) from None
        if isinstance(exc, (KeyError, ValueError, TypeError, AttributeError, IndexError)):
            raise VerificationError(f"{service} returned a malformed answer: {type(exc).__name__}: "
                                    f"{_first_line(exc)}", hint=f"service at {url}") from None
        raise


def _service_url(service: str, context: Any) -> str | None:
    if service == "Fulcio":
        return getattr(getattr(context, "_fulcio", None), "url", None)
    return getattr(getattr(context, "_rekor", None), "url", None)


def _reason(exc: BaseException) -> str:
    """The HTTP status and body (or the connection error) behind a sigstore client exception."""
    import requests

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, requests.RequestException):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, requests.HTTPError) and cause.response is not None:
        body = _JWT.sub("[token]", " ".join(cause.response.text.split()))[:200]  # a service may echo it
        return f"HTTP {cause.response.status_code}" + (f": {body}" if body else "")
    if isinstance(cause, requests.ConnectionError):
        return "cannot connect"
    if isinstance(cause, requests.Timeout):
        return "timed out"
    return _first_line(exc)


def identity_token(token: str | None) -> Any:
    """Parse the given OIDC token, or detect an ambient one (GitHub Actions, GitLab, Buildkite...)."""
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential

    try:
        raw = token or detect_credential()
    except IdentityError as exc:
        raise TransportError(f"OIDC failed: ambient credential detection: {_first_line(exc)}",
                             hint="in GitHub Actions, grant `permissions: id-token: write`") from None
    if not raw:
        raise UsageError("keyless signing needs an OIDC identity token",
                         hint="pass --identity-token or run in CI with OIDC (e.g. GitHub Actions id-token: write)")
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise InputError(f"identity token refused: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in text[:3]) if text else type(exc).__name__
