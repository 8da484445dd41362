"""The keep asks a Steward for its certificate: challenge, evidence-bearing CSR, PEM chain back.

What travels is public (CSR, evidence, certificates); the private key stays in the keep. The answer
is checked: the leaf must certify our key and the names we asked for, and chain to the CA we expect
(when one is given), so a host in the path can at most deny service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg._internal import b64, bounded
from enarx_pkg.errors import Error, TransportError, VerificationError
from enarx_pkg.tls import binding, keep
from enarx_pkg.tls.extension import NONCE_BYTES

if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 256 * 1024


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    def pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self.chain))


def _post(http: httpx.Client, url: str, path: str, **kw: Any) -> tuple[int, bytes]:
    import httpx

    try:
        with http.stream("POST", url.rstrip("/") + path, **kw) as response:
            body = bounded.read(response, MAX_ANSWER_BYTES)
            status = response.status_code
    except httpx.HTTPError as exc:
        raise TransportError(f"steward unreachable: {exc}", url=url) from exc
    if body is None:
        raise TransportError(f"steward answer larger than {MAX_ANSWER_BYTES} bytes", url=url, status=status)
    return status, body


def _refusal(status: int, body: bytes, url: str) -> Error:
    import json

    try:
        message = str(json.loads(body).get("error", ""))[:500]
    except (ValueError, AttributeError):
        message = ""
    if status == 403:
        return VerificationError(f"steward {url} refused the keep: {message or 'no reason given'}")
    return TransportError(f"steward refused the request: {message or 'no reason given'}", url=url, status=status)


def request_certificate(url: str, key: ec.EllipticCurvePrivateKey, names: Sequence[str], package: str,
                        source: keep.EvidenceSource, *, ca: x509.Certificate | None = None,
                        timeout: float = TIMEOUT_S) -> Issued:
    """Enrol ``key`` for ``names`` with the Steward at ``url``."""
    import httpx

    with httpx.Client(timeout=timeout, trust_env=False) as http:
        status, body = _post(http, url, "/v1/challenge")
        if status != 200:
            raise _refusal(status, body, url)
        nonce = _nonce(body, url)
        csr = keep.certificate_request(key, names, keep.keep_evidence(key, package, source, nonce))
        status, body = _post(http, url, "/v1/certificates", content=csr.public_bytes(serialization.Encoding.DER),
                             headers={"Content-Type": "application/pkcs10"})
    if status != 200:
        raise _refusal(status, body, url)
    return check_issued(body, key, names, ca, url)


def _nonce(body: bytes, url: str) -> bytes:
    import json

    try:
        nonce = b64.decode(json.loads(body).get("nonce"), "challenge.nonce")
    except (ValueError, AttributeError, Error) as exc:
        raise TransportError("steward sent a malformed challenge", url=url) from exc
    if len(nonce) != NONCE_BYTES:
        raise TransportError(f"steward sent a {len(nonce)}-byte nonce, expected {NONCE_BYTES}", url=url)
    return nonce


def check_issued(pem: bytes, key: ec.EllipticCurvePrivateKey, names: Sequence[str], ca: x509.Certificate | None,
                 url: str) -> Issued:
    """The chain must start with a leaf for our key and names, issued by ``ca`` when given."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise VerificationError(f"steward {url} answered with no PEM certificate") from exc
    leaf = certs[0]
    if binding.spki_der(leaf.public_key()) != binding.spki_der(key.public_key()):
        raise VerificationError(f"steward {url} issued a certificate for another key")
    if sorted(binding.names_of(leaf)) != sorted(n.lower() for n in names):
        raise VerificationError(f"steward {url} certified {binding.names_of(leaf)}, not {list(names)}")
    if ca is not None:
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise VerificationError(f"steward {url} issued a certificate that does not chain to the expected CA") \
                from exc
    return Issued(leaf, tuple(certs[1:]))
