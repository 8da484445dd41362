"""A keep's TLS identity: one fresh key for its ``tls`` socket set, its certificate, and renewal.

The key is made when the identity is, inside the keep, and never leaves it. The certificate comes from
an :data:`Obtain` function (a Steward, the deployer over the sealed channel, or a self-contained
certificate) and is renewed in place before it expires: :meth:`KeepIdentity.server_context` always
returns the context of the current certificate, so each new handshake uses it.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg.errors import Error, UsageError
from enarx_pkg.tls import context, keep

# key -> certificate chain (leaf first) for that key
Obtain = Callable[[ec.EllipticCurvePrivateKey], Sequence[x509.Certificate]]
RENEW_AT = 2 / 3  # of the certificate's lifetime, like ACME clients
RETRY_S = 30.0
MIN_RENEWAL = timedelta(seconds=RETRY_S)


class KeepIdentity:
    """The key, the current chain and its server context; safe to read from any thread."""

    def __init__(self, obtain: Obtain, *, tls12: bool = False, client_ca: bytes | None = None,
                 deferred: bool = False) -> None:
        """``deferred``: obtain the first certificate only at :meth:`ensure` (when the keep's sockets
        are bound and reported, so a deployer waiting for that report can answer the keep's CSR)."""
        self.key = keep.new_key()
        self._obtain, self._tls12, self._client_ca = obtain, tls12, client_ca
        self._lock = threading.Lock()
        self._chain: tuple[x509.Certificate, ...] = ()
        self._context: ssl.SSLContext | None = None
        self._obtained = datetime.now(UTC)
        self._ready = threading.Event()
        if not deferred:
            self.renew()

    def ensure(self) -> None:
        """Obtain the first certificate now unless there is one (a deferred identity)."""
        if not self._ready.is_set():
            self.renew()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def certificate(self) -> x509.Certificate:
        with self._lock:
            return self._chain[0]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        with self._lock:
            return self._chain

    def server_context(self) -> ssl.SSLContext:
        with self._lock:
            assert self._context is not None
            return self._context

    def renew(self) -> None:
        """Obtain a certificate for the same key now and use it for every later handshake."""
        obtained = datetime.now(UTC)
        chain = tuple(self._obtain(self.key))
        ctx = context.server_context(self.key, chain, tls12=self._tls12, client_ca=self._client_ca)
        with self._lock:
            self._chain, self._context, self._obtained = chain, ctx, obtained
        self._ready.set()

    def renewal_due(self) -> datetime:
        """When the current certificate should be replaced: 2/3 of the way from when it was obtained
        to its expiry (issuers backdate notBefore for clock skew, so that is not the start), and never
        sooner than :data:`MIN_RENEWAL` after it was obtained."""
        with self._lock:
            obtained, end = self._obtained, self._chain[0].not_valid_after_utc
        return max(obtained + (end - obtained) * RENEW_AT, obtained + MIN_RENEWAL)

    def tick(self, now: datetime | None = None) -> bool:
        """Renew if due; True if renewed. A failure is kept for the caller (the old certificate stays)."""
        if (now or datetime.now(UTC)) < self.renewal_due():
            return False
        self.renew()
        return True


class Renewer:
    """A daemon thread that keeps a detached keep's certificate fresh; errors go to ``report``."""

    def __init__(self, identity: KeepIdentity, report: Callable[[str], None]) -> None:
        self.identity, self.report = identity, report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-renew", daemon=True)

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self.identity.wait_ready(1.0):  # a deferred identity: its first certificate comes first
            if self._stop.is_set():
                return
        while not self._stop.is_set():
            wait = (self.identity.renewal_due() - datetime.now(UTC)).total_seconds()
            if wait > 0 and self._stop.wait(min(wait, 3600.0)):
                return
            try:
                if self.identity.tick():
                    self.report(f"TLS certificate renewed, valid until "
                                f"{self.identity.certificate.not_valid_after_utc.isoformat()}")
            except Error as exc:
                self.report(f"TLS certificate renewal failed (retrying in {RETRY_S:.0f} s): {exc.message}")
                if self._stop.wait(RETRY_S):
                    return


def self_contained(names: Sequence[str], package: str, source: keep.EvidenceSource,
                   lifetime: timedelta = keep.SELF_CONTAINED_LIFETIME) -> Obtain:
    """An :data:`Obtain` making self-contained certificates (fresh evidence each time)."""
    def obtain(key: ec.EllipticCurvePrivateKey) -> Sequence[x509.Certificate]:
        return [keep.self_contained_certificate(key, names, keep.keep_evidence(key, package, source),
                                                lifetime=lifetime)]
    return obtain


def from_steward(url: str, names: Sequence[str], package: str, source: keep.EvidenceSource,
                 ca: x509.Certificate | None = None) -> Obtain:
    """An :data:`Obtain` enrolling with a Steward (``steward = "URL"`` in Enarx.toml)."""
    from enarx_pkg.tls import enroll

    def obtain(key: ec.EllipticCurvePrivateKey) -> Sequence[x509.Certificate]:
        issued = enroll.request_certificate(url, key, names, package, source, ca=ca)
        return [issued.certificate, *issued.chain]
    return obtain


def for_keep(names: Sequence[str], package: str, source: keep.EvidenceSource, *, steward: str | None = None,
             steward_ca: x509.Certificate | None = None) -> Obtain:
    """How a keep gets its certificate: from the Steward its Enarx.toml names (``steward = "URL"``),
    else self-contained (its evidence in the certificate, checked by ``attest tls`` or the client hook)."""
    if steward:
        return from_steward(steward, names, package, source, ca=steward_ca)
    return self_contained(names, package, source)


def first_then(first: Obtain, later: Obtain | None) -> Obtain:
    """``first`` for the first certificate, ``later`` for every renewal (``None``: the certificate is
    not renewed; asking again is an error the :class:`Renewer` reports)."""
    calls = [0]

    def obtain(key: ec.EllipticCurvePrivateKey) -> Sequence[x509.Certificate]:
        calls[0] += 1
        if calls[0] == 1:
            return first(key)
        if later is None:
            raise UsageError("this certificate has no renewal source (name a steward in Enarx.toml)")
        return later(key)
    return obtain
