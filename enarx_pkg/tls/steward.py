"""``enarx-pkg steward serve``: issues a keep's TLS certificate once its CSR's evidence is appraised.

Like Enarx's Steward, it only sees the keep's CSR and evidence, never application traffic. Protocol:

* ``POST /v1/challenge`` → ``{"nonce": base64(32 bytes), "expires_in": s}``: single-use, short-lived;
* ``POST /v1/certificates`` with a DER CSR (``application/pkcs10``) whose evidence extension carries
  that nonce and binds the CSR's key → the PEM chain (leaf, CA), or 403 with the refusal.

A nonce is consumed by the first CSR that names it, passed or not, so replayed evidence is refused.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from enarx_pkg._internal import b64
from enarx_pkg.attestation import Collateral
from enarx_pkg.attestation._errors import EvidenceError
from enarx_pkg.attestation.policy import Policy
from enarx_pkg.errors import Error, VerificationError
from enarx_pkg.tls import binding, issue, verify
from enarx_pkg.tls.ca import DeployCA
from enarx_pkg.tls.extension import NONCE_BYTES

CHALLENGE_TTL_S = 300.0
MAX_CHALLENGES = 10_000
MAX_CSR_BYTES = verify.MAX_CERT_BYTES
PEM_CHAIN = "application/pem-certificate-chain"


class Challenges:
    """Outstanding nonces: each valid for ``ttl`` seconds and for one CSR only."""

    def __init__(self, ttl: float = CHALLENGE_TTL_S, limit: int = MAX_CHALLENGES) -> None:
        self._open: dict[bytes, float] = {}
        self._ttl, self._limit, self._lock = ttl, limit, threading.Lock()

    def new(self) -> bytes | None:
        """A fresh nonce, or ``None`` while too many are outstanding."""
        now = time.monotonic()
        with self._lock:
            for nonce in [n for n, until in self._open.items() if until < now]:
                del self._open[nonce]
            if len(self._open) >= self._limit:
                return None
            nonce = os.urandom(NONCE_BYTES)
            self._open[nonce] = now + self._ttl
            return nonce

    def consume(self, nonce: bytes) -> None:
        with self._lock:
            until = self._open.pop(nonce, None)
        if until is None or until < time.monotonic():
            raise EvidenceError("steward.challenge", "the CSR's nonce is not an open challenge of this steward "
                                "(replayed, expired or never issued); ask POST /v1/challenge for a fresh one")


@dataclass(frozen=True)
class StewardSettings:
    ca: DeployCA
    policy: Policy
    names: tuple[str, ...]  # names (or *.wildcards) a keep may be certified for
    packages: tuple[str, ...] = ()  # empty: any package (its digest is still written into the certificate)
    lifetime: timedelta = issue.DEFAULT_LIFETIME
    collateral: Collateral | None = None
    challenges: Challenges = field(default_factory=Challenges)


def certify(settings: StewardSettings, csr_der: bytes) -> bytes:
    """The PEM chain for an attested CSR; raises the refusal otherwise (pure but for the challenge store)."""
    csr, attested = verify.attest_csr(csr_der, settings.policy, settings.challenges.consume,
                                      packages=settings.packages, collateral=settings.collateral)
    names = binding.names_of(csr)
    refused = [n for n in names if not any(binding.name_matches(p, n) for p in settings.names)]
    if not names or refused:
        asked = ", ".join(refused) or "a CSR without names"
        raise VerificationError(f"steward.names: this steward does not certify {asked} "
                                       f"(allowed: {', '.join(settings.names)})")
    cert = issue.issue(settings.ca, csr, attested, names, lifetime=settings.lifetime)
    return cert.public_bytes(serialization.Encoding.PEM) + settings.ca.pem


def create_app(settings: StewardSettings) -> Any:
    """The Steward's ASGI app (Starlette)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from enarx_pkg._internal.bounded import request_body

    async def challenge(request: Request) -> Response:
        nonce = settings.challenges.new()
        if nonce is None:
            return JSONResponse({"error": "too many open challenges; retry later"}, status_code=503)
        return JSONResponse({"nonce": b64.encode(nonce), "expires_in": int(CHALLENGE_TTL_S)})

    async def certificates(request: Request) -> Response:
        body = await request_body(request, MAX_CSR_BYTES)
        if body is None:
            return JSONResponse({"error": f"CSR larger than {MAX_CSR_BYTES} bytes"}, status_code=413)
        try:
            chain = await run_in_threadpool(certify, settings, body)
        except Error as exc:
            status = 403 if isinstance(exc, VerificationError) else 400
            return JSONResponse({"error": exc.message, "exit_code": int(exc.exit_code)}, status_code=status)
        return Response(chain, media_type=PEM_CHAIN)

    return Starlette(routes=[Route("/v1/challenge", challenge, methods=["POST"]),
                             Route("/v1/certificates", certificates, methods=["POST"])])


def serve(settings: StewardSettings, host: str, port: int) -> None:
    """Run the Steward until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning",
                                  lifespan="off")).run()


def allowed_names(names: Sequence[str]) -> tuple[str, ...]:
    """Validate ``--name`` patterns (DNS names, ``*.`` wildcards, IP addresses)."""
    for name in names:
        binding.general_names([name.removeprefix("*.")])
    return tuple(n.lower() for n in names)
