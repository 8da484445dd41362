"""SSL contexts for a keep's TLS sockets, built from a key that exists only in the keep's memory.

Python's ``ssl`` loads a private key only from a file; the key is handed to it through an anonymous
memory file (``memfd_create``), never a path on the host's disk, and the file is closed once OpenSSL
has read it. TLS 1.3 only unless ``tls12``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg._internal import roots
from enarx_pkg.errors import InputError


def _load_chain(ctx: ssl.SSLContext, key: ec.EllipticCurvePrivateKey, chain: Sequence[x509.Certificate]) -> None:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    pem += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.memfd_create("enarx-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, pem)
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _versions(ctx: ssl.SSLContext, tls12: bool) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2 if tls12 else ssl.TLSVersion.TLSv1_3
    return ctx


def server_context(key: ec.EllipticCurvePrivateKey, chain: Sequence[x509.Certificate], *, tls12: bool = False,
                   client_ca: bytes | None = None) -> ssl.SSLContext:
    """A server context presenting ``chain`` (leaf first); with ``client_ca`` (PEM), clients must present a
    certificate from it (mTLS)."""
    ctx = _versions(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls12)
    _load_chain(ctx, key, chain)
    if client_ca is not None:
        ctx.load_verify_locations(cadata=client_ca.decode("ascii"))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def connect_context(*, cafile: Path | None = None, cadata: str | None = None,
                    key: ec.EllipticCurvePrivateKey | None = None, chain: Sequence[x509.Certificate] = (),
                    tls12: bool = False) -> ssl.SSLContext:
    """A client context for a ``connect`` + ``tls`` file: the server is verified against the system roots,
    or only against the CA certificates Enarx.toml gives (``cadata``, inline PEM) or ``cafile``; the
    keep's certificate is presented when the server asks for one (mTLS)."""
    if cafile is not None and not cafile.is_file():
        raise InputError(f"TLS CA file {cafile} " + ("is a directory, not a PEM file" if cafile.is_dir()
                                                     else "does not exist"))
    if cafile is None and cadata is None:
        ctx = roots.client_context()  # the system roots (in a keep: the ones it measured)
    else:
        ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None, cadata=cadata)
    _versions(ctx, tls12)
    if key is not None and chain:
        _load_chain(ctx, key, chain)
    return ctx
