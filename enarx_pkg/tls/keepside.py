"""What the keep runtime calls to serve a package's ``prot = "tls"`` files (one call, one result).

:func:`setup_for` returns ``None`` when no file needs TLS, else a :class:`TlsSetup` whose identity
(a fresh key, made here, in the keep) is certified by the Steward the Enarx.toml names, or carries
the keep's own evidence (self-contained). The runtime takes it as ``RunSpec.tls``.

A keep measures itself and then refuses further imports (keep/measure.py): it must call
:func:`prewarm` before that, so the TLS code it may run is loaded, and measured, up front.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from enarx_pkg.tls import identity
from enarx_pkg.tls.sockets import SocketFile, TlsSetup, is_tls

UNSPECIFIED = ("::", "0.0.0.0", "")  # "all addresses": not a name to certify


def prewarm() -> None:
    """Import everything :func:`setup_for` and the TLS sockets use (before the keep is measured)."""
    import ssl  # noqa: F401

    from enarx_pkg.tls import context, enroll, extension, keep, terminate  # noqa: F401

    keep.new_key()  # loads the EC code paths of cryptography's backend
    import httpx

    with httpx.Client(trust_env=False):  # as enroll makes it: the default CA bundle's loaders (steward = "URL")
        pass


def local_setup(files: Sequence[SocketFile], *, tls12: bool = False) -> TlsSetup | None:
    """``enarx-pkg run`` outside a keep: TLS with a fresh self-signed certificate that proves nothing
    (no TEE, no evidence), as Enarx serves ``tls`` without a Steward. ``None`` if no file is ``tls``."""
    if not any(is_tls(f) for f in files):
        return None
    from enarx_pkg.tls.keep import self_signed_certificate

    names = names_for(files)
    return TlsSetup(identity.KeepIdentity(lambda key: [self_signed_certificate(key, names)], tls12=tls12), tls12)


def names_for(files: Sequence[SocketFile], asked: Sequence[str] = ()) -> list[str]:
    """The certificate's names: those the deployer asked for (``--tls-name``), else ``localhost`` and
    the specific addresses the ``tls`` listen files bind."""
    if asked:
        return list(dict.fromkeys(asked))
    addrs = [getattr(f, "addr", None) or "" for f in files if f.kind == "listen" and is_tls(f)]
    return list(dict.fromkeys(["localhost", *(a for a in addrs if a not in UNSPECIFIED)]))


def setup_for(files: Sequence[SocketFile], package: str, tee: str, evidence: Callable[[bytes], tuple[bytes, bytes]],
              *, steward: str | None = None, names: Sequence[str] = (),
              deployer: identity.Obtain | None = None, tls12: bool = False) -> TlsSetup | None:
    """The keep's TLS for ``files`` (``None`` if none is ``tls``); ``evidence`` is the keep's backend.

    ``deployer``: the first certificate comes from the deployer (``deploy --tls-ca``, over the sealed
    channel), obtained only once the sockets are bound and reported (the deployer answers the CSR
    after that report); renewals then go to the ``steward``, if any. Otherwise the Steward issues it,
    or it is self-contained, obtained at once (a failure fails the deploy before anything is bound).
    ``tls12``: TLS 1.2 is accepted too (``deploy --tls12``); TLS 1.3 only otherwise.
    """
    if not any(is_tls(f) for f in files):
        return None

    def source(report_data: bytes) -> tuple[str, bytes, bytes]:
        report, aux = evidence(report_data)
        return tee, report, aux

    own = identity.for_keep(names_for(files, names), package, source, steward=steward)
    if deployer is None:
        return TlsSetup(identity.KeepIdentity(own, tls12=tls12), tls12)
    first = identity.first_then(deployer, own if steward else None)
    return TlsSetup(identity.KeepIdentity(first, tls12=tls12, deferred=True), tls12)
