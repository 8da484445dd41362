"""``enarx-pkg ca init``, ``enarx-pkg steward serve`` and ``enarx-pkg attest tls``: thin over enarx_pkg.tls."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from enarx_pkg._cli.common import info, print_json, warn

if TYPE_CHECKING:
    from enarx_pkg.attestation.policy import Policy

ca_app = typer.Typer(help="Make the deploy CA that certifies attested keeps.",
                     no_args_is_help=True, rich_markup_mode=None, add_completion=False)
steward_app = typer.Typer(help="Issue TLS certificates to attested keeps (like Enarx's Steward).",
                          no_args_is_help=True, rich_markup_mode=None, add_completion=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
PolicyOpt = Annotated[Path, typer.Option("--policy", help="Policy TOML (or an Enarx.toml with an attestation table).")]
CollateralOpt = Annotated[Path | None, typer.Option("--collateral", help="Directory from attest fetch-collateral.")]


@ca_app.callback()
def _ca() -> None:
    """Make the deploy CA that certifies attested keeps."""


@steward_app.callback()
def _steward() -> None:
    """Issue TLS certificates to attested keeps (like Enarx's Steward)."""


@ca_app.command("init")
def ca_init(
    cert: Annotated[Path, typer.Option("--cert", help="Where to write the CA certificate (PEM).")] = Path("ca.crt"),
    key: Annotated[Path, typer.Option("--key", help="Where to write the CA key (PEM, mode 0600).")] = Path("ca.key"),
    name: Annotated[str, typer.Option("--name", help="The CA's common name.")] = "enarx-pkg deploy CA",
    days: Annotated[int, typer.Option("--days", help="Validity of the CA certificate.")] = 3650,
    permit: Annotated[list[str] | None, typer.Option(
        "--permit", metavar="DOMAIN", help="Only certify names under DOMAIN (nameConstraints; repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing CA.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a deploy CA: an ECDSA P-256 key (0600) and a self-signed CA certificate (pathlen 0)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    from enarx_pkg.tls.ca import init_ca

    ca = init_ca(cert, key, name=name, days=days, permitted=permit or [], force=force)
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    result = {"certificate": str(cert), "key": str(key), "subject": ca.certificate.subject.rfc4514_string(),
              "not_after": ca.certificate.not_valid_after_utc.isoformat(),
              "sha256": hashlib.sha256(der).hexdigest()}
    if as_json:
        print_json(result)
        return
    print(f"wrote {key} (private, 0600) and {cert}")
    print(f"  subject:   {result['subject']}\n  not after: {result['not_after']}\n  sha256:    {result['sha256']}")
    info(f"clients trust keeps it certifies with: curl --cacert {cert} https://NAME:PORT/")


@steward_app.command("serve")
def steward_serve(
    ca: Annotated[Path, typer.Option("--ca", help="CA certificate (PEM) from `ca init`.")],
    ca_key: Annotated[Path, typer.Option("--ca-key", help="Its private key (PEM, mode 0600).")],
    policy: PolicyOpt,
    name: Annotated[list[str], typer.Option(
        "--name", metavar="NAME", help="A name (or *.domain) keeps may be certified for (repeatable).")],
    package: Annotated[list[str] | None, typer.Option(
        "--package", metavar="DIGEST", help="Certify only keeps running this package (repeatable).")] = None,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to listen on.")] = "127.0.0.1:8471",
    lifetime: Annotated[str, typer.Option("--lifetime", help="Certificate lifetime (e.g. 30m, 24h, 7d).")] = "24h",
    collateral: CollateralOpt = None,
) -> None:
    """Serve challenges and issue a certificate to each keep whose CSR evidence passes the policy."""
    from enarx_pkg._internal import digest
    from enarx_pkg.attestation import Collateral
    from enarx_pkg.attestation.policy import load_policy
    from enarx_pkg.tls import steward
    from enarx_pkg.tls.ca import load_ca
    from enarx_pkg.tls.verify import policy_digest

    host, port = _host_port(listen, "--listen")
    for d in package or []:
        digest.parse(d)
    settings = steward.StewardSettings(
        load_ca(ca, ca_key), load_policy(policy), steward.allowed_names(name), tuple(package or ()),
        _duration(lifetime), Collateral.from_dir(collateral) if collateral else None)
    print(f"enarx-pkg steward on http://{host}:{port}\n  CA:     {settings.ca.certificate.subject.rfc4514_string()}"
          f"\n  policy: {policy_digest(settings.policy)}\n  names:  {', '.join(settings.names)}", flush=True)
    steward.serve(settings, host, port)


def tls_cmd(
    endpoint: Annotated[str, typer.Argument(metavar="HOST:PORT", help="The keep's TLS endpoint.")],
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="Policy TOML the keep's evidence must pass (with --cacert: the policy its issuer "
                         "must have used).")] = None,
    cacert: Annotated[Path | None, typer.Option(
        "--cacert", help="Check a CA-issued certificate against this deploy CA instead.")] = None,
    package: Annotated[str | None, typer.Option("--package", metavar="DIGEST",
                                                help="The package digest the keep must run.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name the certificate must carry (default HOST).")] = None,
    tls12: Annotated[bool, typer.Option("--tls12", help="Allow TLS 1.2 (default: 1.3 only).")] = False,
    collateral: CollateralOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Connect to a keep, verify its self-contained certificate's evidence, binding, policy and package.

    With --cacert, verify a CA-issued certificate (chain and name) and the issuer's record in it.
    Exit 0 accepted, 78 evidence/binding/policy refused, 77 name, chain, validity or package refused,
    69 unreachable.
    """
    from enarx_pkg._internal import digest
    from enarx_pkg.attestation.policy import load_policy
    from enarx_pkg.errors import UsageError

    host, port = _host_port(endpoint, "HOST:PORT")
    if package is not None:
        digest.parse(package)
    if cacert is not None:
        _issued(host, port, cacert, load_policy(policy) if policy else None, package, name, tls12, as_json)
    elif policy is None:
        raise UsageError("attest tls needs --policy (self-contained certificate) or --cacert (CA-issued)")
    else:
        _self_contained(host, port, load_policy(policy), package, name, tls12, collateral, as_json)


def _self_contained(host: str, port: int, policy: Policy, package: str | None, name: str | None, tls12: bool,
                    collateral: Path | None, as_json: bool) -> None:
    from enarx_pkg.attestation import Collateral
    from enarx_pkg.tls.client import attest_endpoint

    result = attest_endpoint(host, port, policy, package=package, name=name, tls12=tls12,
                             collateral=Collateral.from_dir(collateral) if collateral else None)
    if result.evidence.tee == "sim":
        warn("SIM EVIDENCE: software-only, no hardware protection; never use it for real secrets")
    if as_json:
        print_json(result.to_dict())
        return
    for c in result.appraisal.checks:
        print(f"PASS  {c.name}: observed {c.observed}; expected {c.expected}")
    print(f"package: {result.evidence.package} (bound, with the certificate's key, by report_data)")
    print(f"certificate: {result.subject}, names {', '.join(result.names)}, valid until {result.not_after.isoformat()}")
    print("accepted")


def _issued(host: str, port: int, cacert: Path, policy: Policy | None, package: str | None, name: str | None,
            tls12: bool, as_json: bool) -> None:
    from enarx_pkg.tls.client import attest_issued_endpoint

    result = attest_issued_endpoint(host, port, cacert, policy=policy, package=package, name=name, tls12=tls12)
    if as_json:
        print_json(result.to_dict())
        return
    r = result.record
    print(f"certificate: {result.subject}, names {', '.join(result.names)}, valid until "
          f"{result.not_after.isoformat()}, issued by {result.issuer} (chain verified against {cacert})")
    print(f"appraised by the issuer: tee {r.tee}, measurement {r.measurement}, evidence {r.evidence_digest}")
    print(f"policy: {r.policy_digest}" + (" (the --policy given)" if result.policy_matched else ""))
    print(f"package: {r.package}")
    print("accepted")


def _host_port(text: str, what: str) -> tuple[str, int]:
    from enarx_pkg.errors import UsageError

    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{what} {text!r}: expected HOST:PORT")
    return host, int(port)


def _duration(text: str, option: str = "--lifetime") -> timedelta:
    from enarx_pkg.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise UsageError(f"{option} {text!r}: expected a number and a unit (s, m, h, d), e.g. 24h")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])
