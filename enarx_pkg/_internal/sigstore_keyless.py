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

from enarx_pkg._internal.sigstore_bundle import MalformedBundle, certificate_identity
from enarx_pkg.errors import InputError, TransportError, UsageError, VerificationError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.models import Bundle
    from sigstore.verify import Verifier

# sigstore logs a warning every time the embedded trusted root is used offline; that is the point.
logging.getLogger("sigstore._internal.tuf").setLevel(logging.ERROR)


@functools.lru_cache(maxsize=4)
def verifier(staging: bool, offline: bool) -> Verifier:
    """A sigstore Verifier for the production or staging instance (cached: loading roots costs)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.verify import Verifier

    try:
        return Verifier.staging(offline=offline) if staging else Verifier.production(offline=offline)
    except SigstoreError as exc:
        raise TransportError(f"cannot load the sigstore trusted root: {_first_line(exc)}",
                             hint="use --offline to rely on the embedded trusted root") from None


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
        from cryptography.hazmat.primitives.serialization import Encoding
        from sigstore.errors import VerificationError as SigstoreVerificationError

        names, issuer = certificate_identity(cert.public_bytes(Encoding.DER))
        if not _matches(issuer, self.issuer, self.issuer_re):
            raise SigstoreVerificationError(f"certificate OIDC issuer is {issuer!r}, which does not match "
                                            f"{self.issuer or self.issuer_re.pattern if self.issuer_re else ''!r}")
        if not any(_matches(n, self.identity, self.identity_re) for n in names):
            want = self.identity or (self.identity_re.pattern if self.identity_re else "")
            raise SigstoreVerificationError(f"certificate identity {names} does not match {want!r}")


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
    except InvalidBundle as exc:
        raise MalformedBundle(f"bundle refused by sigstore: {_first_line(exc)}") from None
    except ValueError as exc:
        raise MalformedBundle(f"bundle is not a sigstore bundle: {_first_line(exc)}") from None


def verify_dsse(data: bytes, policy: IdentityMatch, *, staging: bool, offline: bool) -> tuple[str, bytes]:
    """Verify a keyless DSSE bundle (chain to Fulcio, SCT, Rekor entry, identity); (type, payload)."""
    bundle = load_bundle(data)
    return _guard(lambda: verifier(staging, offline).verify_dsse(bundle, policy), staging)  # type: ignore[no-any-return]


def verify_artifact(data: bytes, artifact: bytes | str, policy: IdentityMatch, *, staging: bool,
                    offline: bool) -> None:
    """Verify a keyless message-signature bundle over artifact bytes or its ``sha256:`` digest."""
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    bundle = load_bundle(data)
    target: bytes | Hashed = artifact if isinstance(artifact, bytes) else Hashed(
        algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(artifact.removeprefix("sha256:")))
    _guard(lambda: verifier(staging, offline).verify_artifact(target, bundle, policy), staging)


def _guard(call: Any, staging: bool) -> Any:
    from sigstore.errors import Error as SigstoreError

    try:
        return call()
    except SigstoreError as exc:
        instance = "staging" if staging else "production"
        raise VerificationError(f"keyless signature refused against the sigstore {instance} root: "
                                f"{_first_line(exc)}") from None


def sign_statement(statement: bytes, token: str | None, *, staging: bool) -> bytes:
    """Sign an in-toto statement keylessly (Fulcio certificate, Rekor entry); the bundle JSON.

    Needs the network: the signing config comes from the sigstore TUF repository, then Fulcio and
    Rekor are called. The identity token comes from ``token`` or ambient CI credentials.
    """
    from sigstore import dsse
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import SigningContext

    identity = identity_token(token)
    try:
        config = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
        context = SigningContext.from_trust_config(config)
        with context.signer(identity, cache=False) as signer:
            bundle = signer.sign_dsse(dsse.Statement(statement))
    except SigstoreError as exc:
        raise TransportError(f"keyless signing failed: {_first_line(exc)}") from None
    return bundle.to_json().encode("utf-8")


def identity_token(token: str | None) -> Any:
    """Parse the given OIDC token, or detect an ambient one (GitHub Actions, GitLab, Buildkite...)."""
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential

    try:
        raw = token or detect_credential()
    except IdentityError as exc:
        raise UsageError(f"ambient OIDC credential detection failed: {_first_line(exc)}") from None
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
