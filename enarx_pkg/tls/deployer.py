"""The deployer as Steward (``deploy --tls-ca CA --tls-ca-key KEY [--tls-name NAME ...]``).

After attestation the deployer seals ``Envelope.tls`` (the names, and "send me a CSR") to the keep.
The keep makes its TLS key and sends its CSR as a sealed frame with its listening report; the
deployer issues a short-lived certificate with :func:`enarx_pkg.tls.issue.issue_sealed_csr` (the
same issuing code as ``steward serve``), carrying the digests of the evidence it appraised, the
package and the policy, and seals the chain back; the keep checks it, serves it and says so
(``TLS_READY``). The CA key is read once, checked to be private (0600), and never printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from enarx_pkg._internal import seal
from enarx_pkg.errors import UsageError
from enarx_pkg.tls import binding, issue
from enarx_pkg.tls.ca import DeployCA, load_ca


@dataclass(frozen=True)
class DeployTls:
    """What ``deploy`` was asked about the keep's TLS certificate, the deploy CA loaded (or ``None``:
    only ``--tls-name``, for the keep's own certificate)."""

    names: tuple[str, ...] = ()
    ca: DeployCA | None = field(default=None, repr=False)
    lifetime: timedelta = issue.DEFAULT_LIFETIME
    tls12: bool = False  # --tls12: the keep's TLS accepts TLS 1.2 too


def load(ca_cert: Path | None, ca_key: Path | None, names: Sequence[str], lifetime: timedelta,
         detach: bool, tls12: bool = False) -> DeployTls:
    """Check the TLS options before any host is contacted; load the CA (key 0600) if one is given."""
    for name in names:
        binding.general_names([name])
    if (ca_cert is None) != (ca_key is None):
        raise UsageError("--tls-ca and --tls-ca-key go together (the CA certificate and its private key)")
    if ca_cert is None or ca_key is None:
        return DeployTls(tuple(names), tls12=tls12)
    if not detach:
        raise UsageError("--tls-ca goes with --detach: the certificate is for a keep that serves on after "
                         "the deployer exits")
    if not timedelta(minutes=1) <= lifetime <= issue.MAX_LIFETIME:
        raise UsageError(f"--tls-lifetime {lifetime} is outside 1 minute .. {issue.MAX_LIFETIME.days} days")
    return DeployTls(tuple(names), load_ca(ca_cert, ca_key), lifetime, tls12)


def request_for(config: Any, tls: DeployTls | None) -> seal.TlsRequest | None:
    """The envelope's TLS request for the package (``config``: its Enarx.toml): ``None`` without TLS
    options, or when the package serves no ``prot = "tls"`` file (refused if a CA was to certify one)."""
    from enarx_pkg.tls.keepside import names_for
    from enarx_pkg.tls.sockets import is_tls

    if tls is None:
        return None
    files = [f for f in (config.files if config is not None else ()) if f.kind in ("listen", "connect") and is_tls(f)]
    listen = [f for f in files if f.kind == "listen"]
    if tls.tls12 and not files:
        raise UsageError("--tls12: the package declares no prot = \"tls\" socket file")
    if not listen:
        if tls.ca is not None:
            raise UsageError("--tls-ca: the package declares no prot = \"tls\" listen file to certify")
        return seal.TlsRequest(tls12=True) if tls.tls12 else None
    return seal.TlsRequest(tuple(names_for(listen, tls.names)), csr=tls.ca is not None, tls12=tls.tls12)


def certify_keep(session: Any, offer: Any, envelope: seal.Envelope, channel: seal.Channel,
                 csr: bytes | None) -> dict[str, Any] | None:
    """The deployer as Steward, for one detached keep of ``session`` (``deploy.HostSession``): answer
    its CSR, and wait until it serves the certificate. ``None`` when this deploy certifies nothing."""
    tls: DeployTls | None = session.settings.tls
    if tls is None or tls.ca is None or envelope.tls is None:
        return None
    session.event(session.host, "issuing the keep's TLS certificate (--tls-ca)")
    chain = certify(tls, csr, envelope.tls.names, tee=session.result.tee, measurement=session.result.measurement,
                    evidence=offer.evidence, package=envelope.manifest_digest, policy=session.policy)
    return deliver(session.client, offer, envelope.session_key, channel, chain, session.settings.limits)


def certify(tls: DeployTls, csr_der: bytes | None, names: Sequence[str], *, tee: str, measurement: str,
            evidence: bytes, package: str, policy: Any) -> bytes:
    """The PEM chain (leaf, CA) for the keep's CSR, recording what this deployer appraised."""
    from enarx_pkg.errors import VerificationError

    if csr_der is None:
        raise VerificationError("the keep sent no TLS certificate request with its listening report")
    assert tls.ca is not None
    record = issue.record_for(tee, measurement, evidence, package, policy)
    cert = issue.issue_sealed_csr(tls.ca, csr_der, record, names, lifetime=tls.lifetime)
    return cert.public_bytes(serialization.Encoding.PEM) + tls.ca.pem


READY_S = 60.0  # the keep checks and installs the certificate in milliseconds; this is for a loaded host
POLL_S = 0.1


def deliver(client: Any, offer: Any, session_key: bytes, channel: seal.Channel, chain: bytes,
            limits: Any) -> dict[str, Any]:
    """Seal the chain to the keep (the agent's stdin route), then wait for its sealed ``TLS_READY``
    in its log; ``{"sha256", "not_after"}`` of the certificate it serves."""
    import time

    from enarx_pkg import keeps
    from enarx_pkg.errors import TransportError

    client.stdin(offer, [seal.record(seal.R_INPUT, channel.seal(seal.TLS_CERT, chain))], limits.platform_s)
    deadline = time.monotonic() + READY_S
    while True:
        logs = keeps.Logs()
        body = client.logs(offer.keep_id, offer.capability)
        keeps.read_frames(body, seal.Channel(session_key, keep_side=False), offer.host, _discard, _discard, logs)
        if logs.tls is not None:
            return logs.tls
        if logs.error or logs.status is not None:
            why = logs.error or f"the workload exited with status {logs.status}"
            raise TransportError(f"the keep on {offer.host} did not take its TLS certificate: {why}")
        if time.monotonic() > deadline:
            raise TransportError(f"the keep on {offer.host} did not confirm its TLS certificate within {READY_S:.0f} s")
        time.sleep(POLL_S)


def _discard(data: bytes) -> None:
    """Output the deployer already relayed (the log is read again from its start)."""
