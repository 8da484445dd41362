"""The system's TLS trust roots, and how a keep pins them.

A client context trusts the system store as OpenSSL finds it (``SSL_CERT_FILE``/``SSL_CERT_DIR``
honoured), read when a certificate is verified: right for the CLI, whose disk is the user's. A keep's
disk is the host's, and it is measured only once, at start: a CA the host adds to ``/etc/ssl`` later
would be trusted with the registry credential and with a workload's ``connect`` + ``tls`` traffic. So
the keep calls :func:`pin` before it is measured: the store's bytes are read once, from OpenSSL's
compiled-in file (never an environment variable), :mod:`enarx_pkg.keep.measure` hashes exactly
those bytes, and every later :func:`client_context` trusts exactly them (none, if there are none).
"""

from __future__ import annotations

import os
import ssl

from enarx_pkg.errors import InputError

MAX_STORE_BYTES = 16 << 20
_pinned: bytes | None = None


def pin() -> bytes:
    """Read the system store now; from here on this process trusts only these bytes."""
    global _pinned
    path = ssl.get_default_verify_paths().openssl_cafile
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STORE_BYTES + 1)
    except OSError:
        data = b""  # no system store: no root is trusted
    if len(data) > MAX_STORE_BYTES:
        raise InputError(f"the system trust store {path} is over {MAX_STORE_BYTES >> 20} MiB")
    _pinned = data
    return data


def pinned() -> bytes | None:
    """The pinned store (``None``: not pinned, the system store is read as OpenSSL finds it)."""
    return _pinned


def client_context() -> ssl.SSLContext:
    """A verifying client context over the system roots: the pinned ones, if this process pinned them."""
    if _pinned is None:
        return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"),
                                          capath=os.environ.get("SSL_CERT_DIR"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED, as create_default_context
    if _pinned.strip():
        ctx.load_verify_locations(cadata=_pinned.decode("ascii", "replace"))
    return ctx
