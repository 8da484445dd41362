"""The keep's TLS identity for its ``prot = "tls"`` files: which certificate, from whom, renewed how.

One fresh key per keep, made here, never leaving the process (``tls.identity.KeepIdentity``); its
certificate, by what the deployer sealed into the envelope (``Envelope.tls``) and the package's
Enarx.toml:

* ``deploy --tls-ca``: the deployer is the Steward. The keep's CSR (no evidence: the sealed channel
  to the attested keep key binds it) leaves as a sealed ``TLS_CSR`` frame *before* the keep reports
  its sockets bound, so it reaches the deployer with that report; the chain comes back as a sealed
  ``TLS_CERT`` frame (over the agent's stdin route), is checked (our key, our names) and served; the
  keep answers ``TLS_READY``. Renewal: by the Enarx.toml ``steward`` when there is one, else none
  (the certificate lives as long as the deployer issued it for);
* ``steward = "URL"`` in Enarx.toml: enrolled with that Steward, renewed by it;
* otherwise self-contained: the keep's own evidence in a self-signed certificate, renewed by the
  keep with fresh evidence.

Renewal runs at 2/3 of the certificate's lifetime (``identity.Renewer``); its reports go out as sealed
stderr lines, readable with ``keep logs``.
"""

from __future__ import annotations

import hashlib
import json
import queue
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg._internal import seal
from enarx_pkg.errors import TransportError, VerificationError
from enarx_pkg.tls import enroll, identity, keepside
from enarx_pkg.tls.keep import certificate_request
from enarx_pkg.tls.sockets import TlsSetup

CERT_TIMEOUT_S = 120.0  # how long the keep waits for its deployer's certificate
Send = Callable[[int, bytes], None]  # (sealed frame type, payload) to the deployer


class SealedIssuer:
    """The deployer as Steward, over the sealed channel: CSR out, chain in, once."""

    def __init__(self, send: Send, names: Sequence[str], timeout: float = CERT_TIMEOUT_S) -> None:
        self._send, self.names, self._timeout = send, tuple(names), timeout
        self._inbox: queue.Queue[bytes] = queue.Queue(1)
        self._asked = False

    def request(self, key: ec.EllipticCurvePrivateKey) -> None:
        """Send the CSR for ``key`` (the keep's TLS key) and our names."""
        self._asked = True
        self._send(seal.TLS_CSR, certificate_request(key, self.names, None).public_bytes(serialization.Encoding.DER))

    def deliver(self, pem: bytes) -> None:
        """The deployer's answer (a sealed TLS_CERT frame); only one, and only once asked."""
        if not self._asked:
            raise VerificationError("the keep received a TLS certificate it did not ask for")
        try:
            self._inbox.put_nowait(pem)
        except queue.Full:
            raise VerificationError("the keep received a second TLS certificate from its deployer") from None

    def obtain(self, key: ec.EllipticCurvePrivateKey) -> list[x509.Certificate]:
        """The chain the deployer issued for ``key``: it must certify our key and exactly our names."""
        try:
            pem = self._inbox.get(timeout=self._timeout)
        except queue.Empty:
            raise TransportError(f"the deployer sent no TLS certificate within {self._timeout:.0f} s") from None
        issued = enroll.check_issued(pem, key, self.names, None, "the deployer")
        leaf = issued.certificate
        self._send(seal.TLS_READY, json.dumps({
            "sha256": hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
            "not_after": leaf.not_valid_after_utc.isoformat()}).encode())
        return [leaf, *issued.chain]


class KeepTls:
    """What the keep process hands the runtime for ``prot = "tls"`` files, and the route for the answer."""

    def __init__(self, envelope: seal.Envelope, tee: str, evidence: Callable[[bytes], tuple[bytes, bytes]],
                 send: Send, report: Callable[[str], None]) -> None:
        self.envelope, self.tee, self.evidence, self.send, self.report = envelope, tee, evidence, send, report
        self.sealed: SealedIssuer | None = None

    def setup(self, toml: Any) -> TlsSetup | None:
        """The run's TLS (``RunSpec.tls``) for the package's Enarx.toml, or ``None`` when no file is ``tls``."""
        request = self.envelope.tls
        asked = request.names if request is not None else ()
        if request is not None and request.csr:
            self.sealed = SealedIssuer(self.send, keepside.names_for(toml.files, asked))
        setup = keepside.setup_for(toml.files, self.envelope.manifest_digest, self.tee, self.evidence,
                                   steward=toml.steward, names=asked,
                                   deployer=self.sealed.obtain if self.sealed is not None else None,
                                   tls12=request is not None and request.tls12)
        if setup is None:
            return None
        if self.sealed is not None:
            self.sealed.request(setup.identity.key)  # leaves before the sockets are reported bound
        if self.sealed is None or toml.steward:
            identity.Renewer(setup.identity, lambda line: self.report(f"enarx-pkg keep: {line}\n")).start()
        return setup

    def deliver(self, frame_type: int, payload: bytes) -> None:
        """A sealed frame from the deployer while the workload runs: only its certificate may come."""
        if frame_type != seal.TLS_CERT or self.sealed is None:
            raise VerificationError(f"the keep received a {seal.FRAME_NAMES[frame_type]} frame it has no use for")
        self.sealed.deliver(payload)
