"""Talking TLS to an attested keep: the check of :mod:`enarx_pkg.tls.verify` as a hook for ssl and httpx.

The TLS handshake proves the peer holds the certificate's private key (TLS 1.3 CertificateVerify /
TLS 1.2 ServerKeyExchange are checked by OpenSSL whatever the verify mode); :class:`AttestedPeer`
then proves that key was made in a keep the policy accepts, running the package asked for. The
certificate is checked before one application byte is sent.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import socket
import ssl
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from enarx_pkg.attestation import Collateral
from enarx_pkg.attestation._errors import EvidenceError
from enarx_pkg.attestation.policy import Policy
from enarx_pkg.errors import TransportError, VerificationError
from enarx_pkg.tls import verify
from enarx_pkg.tls.verify import TlsAppraisal

CONNECT_TIMEOUT_S = 10.0
X509_V_ERR_HOSTNAME_MISMATCH = 62


class AttestedPeer:
    """A verification hook: accepts a peer certificate only if it is an attested keep's, for ``name``.

    The appraisal of a certificate is cached (by its SHA-256, at most ``cache_size``); its validity
    window and the name are checked on every handshake.
    """

    def __init__(self, policy: Policy, *, package: str | None = None, collateral: Collateral | None = None,
                 cache_size: int = 64) -> None:
        self.policy, self.package, self.collateral = policy, package, collateral
        self._cache: OrderedDict[bytes, tuple[x509.Certificate, TlsAppraisal]] = OrderedDict()
        self._size, self._lock = cache_size, threading.Lock()

    def check(self, cert_der: bytes | None, name: str | None, *, at: datetime | None = None) -> TlsAppraisal:
        """Raise a typed refusal unless ``cert_der`` is acceptable for ``name``; returns its appraisal."""
        if not cert_der:
            raise EvidenceError("tls.certificate", "the peer presented no certificate")
        key = hashlib.sha256(cert_der).digest()
        with self._lock:
            hit = self._cache.get(key)
        if hit is None:
            result = verify.verify_self_contained(cert_der, self.policy, package=self.package, at=at,
                                                  collateral=self.collateral)
            hit = (verify.load_certificate(cert_der), result)
            with self._lock:
                self._cache[key] = hit
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        verify.check_validity(hit[0], at)
        if name is not None:
            verify.check_name(hit[0], name)
        return hit[1]


def client_context(*, tls12: bool = False) -> ssl.SSLContext:
    """An SSL context that leaves the certificate to :class:`AttestedPeer` (TLS 1.3; 1.2 only if asked)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the chain is a self-signed leaf: AttestedPeer decides, before any data
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2 if tls12 else ssl.TLSVersion.TLSv1_3
    return ctx


@functools.lru_cache(maxsize=2)
def _shared_context(tls12: bool) -> ssl.SSLContext:
    return client_context(tls12=tls12)  # a context is costly to make and safe to share between sockets


def _sni(name: str) -> str | None:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None


def wrap(sock: socket.socket, peer: AttestedPeer, name: str, *, context: ssl.SSLContext | None = None,
         ) -> tuple[ssl.SSLSocket, TlsAppraisal]:
    """Handshake on ``sock`` and check the peer; the socket is closed on refusal."""
    tls = (context or _shared_context(False)).wrap_socket(sock, server_hostname=_sni(name))
    try:
        return tls, peer.check(tls.getpeercert(binary_form=True), name)
    except BaseException:
        tls.close()
        raise


def _dial(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TransportError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc


def connect(host: str, port: int, peer: AttestedPeer, *, name: str | None = None, tls12: bool = False,
            timeout: float = CONNECT_TIMEOUT_S) -> tuple[ssl.SSLSocket, TlsAppraisal]:
    """A TLS connection to ``host:port`` whose peer passed ``peer`` for ``name`` (default: ``host``)."""
    where = f"{host}:{port}"
    sock = _dial(host, port, timeout)
    try:
        return wrap(sock, peer, name or host, context=_shared_context(tls12))
    except (ssl.SSLError, OSError) as exc:
        raise TransportError(f"TLS handshake with {where} failed: {exc}") from exc


def attest_endpoint(host: str, port: int, policy: Policy, *, package: str | None = None, name: str | None = None,
                    tls12: bool = False, collateral: Collateral | None = None,
                    timeout: float = CONNECT_TIMEOUT_S) -> TlsAppraisal:
    """``attest tls``: connect, check the keep's certificate, hang up; returns the appraisal."""
    tls, appraisal = connect(host, port, AttestedPeer(policy, package=package, collateral=collateral),
                             name=name, tls12=tls12, timeout=timeout)
    tls.close()
    return appraisal


def attest_issued_endpoint(host: str, port: int, cafile: Path, *, policy: Policy | None = None,
                           package: str | None = None, name: str | None = None, tls12: bool = False,
                           timeout: float = CONNECT_TIMEOUT_S) -> verify.IssuedAppraisal:
    """``attest tls --cacert``: a CA-issued keep certificate, verified the standard way, then its record."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2 if tls12 else ssl.TLSVersion.TLSv1_3
    where = f"{host}:{port}"
    sock = _dial(host, port, timeout)
    try:
        with ctx.wrap_socket(sock, server_hostname=name or host) as tls:
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        check = "tls.name" if exc.verify_code == X509_V_ERR_HOSTNAME_MISMATCH else "tls.chain"
        raise VerificationError(f"{check}: {where}: {exc.verify_message}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TransportError(f"TLS handshake with {where} failed: {exc}") from exc
    return verify.check_issued(der or b"", policy=policy, package=package)


def httpx_transport(peer: AttestedPeer, *, tls12: bool = False, **kwargs: Any) -> Any:
    """An ``httpx.HTTPTransport`` whose every TLS connection is checked by ``peer`` before a request is sent."""
    from enarx_pkg.tls._httpx import AttestingTransport

    return AttestingTransport(peer, client_context(tls12=tls12), **kwargs)
