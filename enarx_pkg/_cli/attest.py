"""``enarx-pkg attest inspect|verify|fetch-collateral`` and ``enarx-pkg platform info``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

attest_app = typer.Typer(help="Inspect and verify TEE attestation evidence.",
                         no_args_is_help=True, rich_markup_mode=None, add_completion=False)
platform_app = typer.Typer(help="Report this host's TEE interfaces.",
                           no_args_is_help=True, rich_markup_mode=None, add_completion=False)

TeeOpt = Annotated[str, typer.Option("--tee", help="auto, snp, tdx, sgx, cca or sim.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@platform_app.callback()
def _platform() -> None:
    """Report this host's TEE interfaces."""


@attest_app.command("inspect")
def inspect_cmd(file: Path, tee: TeeOpt = "auto", as_json: JsonOpt = False) -> None:
    """Decode evidence and print its fields. Nothing is verified."""
    from enarx_pkg._cli.common import print_json, warn
    from enarx_pkg.attestation import dispatch, files

    claims = dispatch.inspect(tee, files.read_evidence(file))
    data = files.to_jsonable(claims)
    if as_json:
        print_json({"verified": False, "claims": data})
        return
    warn("decoded only, NOT verified: use `enarx-pkg attest verify` to check signatures and policy")
    _print_fields(data)


def _print_fields(data: dict[str, object], indent: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_fields(value, indent + "  ")
        else:
            print(f"{indent}{key}: {value}")


@attest_app.command("verify")
def verify_cmd(
    file: Path,
    policy: Annotated[Path, typer.Option("--policy", help="Policy TOML (or an Enarx.toml with an attestation table).")],
    tee: TeeOpt = "auto",
    certs: Annotated[Path | None, typer.Option("--certs", help="Directory of VCEK/ASK/ARK, PCK or CPAK files.")] = None,
    collateral: Annotated[Path | None, typer.Option("--collateral", help="Directory from fetch-collateral.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Verify as of this ISO 8601 time (default now).")] = None,
    expected_report_data: Annotated[str | None, typer.Option(help="Hex report_data the evidence must bind.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify evidence cryptographically, then appraise it against a policy, printing every check.

    Exit 0 accepted, 78 refused (bad evidence or policy), 65 malformed evidence or policy.
    """
    from enarx_pkg._cli.common import print_json, warn
    from enarx_pkg.attestation import files

    req = files.VerifyRequest(file, policy, tee, certs, collateral, at, expected_report_data)
    claims, appraisal = files.verify_file(req)
    if claims.tee == "sim":
        warn("SIM EVIDENCE: software-only, no hardware protection; never use it for real secrets")
    if as_json:
        print_json({"claims": files.to_jsonable(claims), **appraisal.to_dict()})
    else:
        for c in appraisal.checks:
            print(f"{'PASS' if c.passed else 'FAIL'}  {c.name}: observed {c.observed}; expected {c.expected}")
        print("accepted" if appraisal.ok else "REFUSED")
    if not appraisal.ok:
        raise typer.Exit(78)


@attest_app.command("fetch-collateral")
def fetch_collateral_cmd(
    file: Path,
    out: Annotated[Path, typer.Option("--out", help="Directory to write collateral into.")],
    tee: TeeOpt = "auto",
    product: Annotated[str, typer.Option(help="SNP product (Milan, Genoa, Turin); default: from the report.")] = "",
) -> None:
    """Download what `attest verify` needs for FILE from AMD KDS or Intel PCS."""
    from enarx_pkg._cli.common import info
    from enarx_pkg.attestation import dispatch, fetch, files

    data = files.read_evidence(file)
    tee = dispatch.detect(data) if tee == "auto" else tee
    for path in fetch.download(fetch.plan_for(tee, data, product), out):
        info(f"wrote {path}")


@platform_app.command("info")
def info_cmd(as_json: JsonOpt = False) -> None:
    """Which TEE interfaces this host has (configfs-tsm, /dev/sev-guest, /dev/tdx_guest, /dev/attestation)."""
    from enarx_pkg._cli.common import print_json
    from enarx_pkg.attestation.collect import platform_info

    pi = platform_info()
    if as_json:
        print_json(pi.to_dict())
        return
    for name, present in pi.interfaces.items():
        print(f"{'present' if present else 'missing'}  {name}")
    print(f"usable backends: {', '.join(pi.tees)}")
    for m in pi.missing:
        print(f"  - {m}")


from enarx_pkg._cli.tls import tls_cmd  # noqa: E402  (`attest tls` lives with the other TLS commands)

attest_app.command("tls")(tls_cmd)
