"""``enarx-pkg host serve`` and ``enarx-pkg deploy``: thin option parsing around host.serve and deploy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from enarx_pkg._cli.common import info, print_json, print_keep, read_option_file, warn

host_app = typer.Typer(help="Run the host agent that creates keeps.",
                       no_args_is_help=True, add_completion=False, rich_markup_mode=None)
deploy_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@host_app.callback()
def host() -> None:
    """Run the host agent that creates keeps (``serve``); pin a host on first contact (``keyscan``)."""


@host_app.command("serve")
def serve(
    backend: Annotated[str, typer.Option(help="auto|sim|snp|tdx|sgx")] = "auto",
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on")] = "127.0.0.1:8470",
    token_file: Annotated[Path | None, typer.Option(help="bearer token deployers must present")] = None,
    data: Annotated[Path, typer.Option(help="data directory (sim key, token)")] = Path(".enarx-host"),
    pool: Annotated[int, typer.Option(help="keeps kept pre-started")] = 2,
    max_keeps: Annotated[int, typer.Option(help="concurrent keeps at most")] = 16,
    provision_deadline: Annotated[float, typer.Option(
        help="seconds a created keep waits for its envelope (a detached one: for its deployer's confirmation)")] = 30.0,
    keep_lifetime: Annotated[float, typer.Option(help="seconds after which any keep is destroyed")] = 3600.0,
    access_log: Annotated[str, typer.Option(help="common, combined or off (one line per request on stdout)")
                          ] = "combined",
    publish_range: Annotated[str, typer.Option(metavar="LOW-HIGH", help="loopback ports keeps' listen "
                                               "sockets bind (default: any free port)")] = "",
    sim_debug: Annotated[bool, typer.Option(hidden=True)] = False,
    sim_svn: Annotated[int, typer.Option(hidden=True)] = 1,
) -> None:
    """Serve the host agent API; prints what deployers must pin in their policy."""
    from enarx_pkg.host.serve import Pins, ServeOptions
    from enarx_pkg.host.serve import serve as run

    extra = (["--sim-debug"] if sim_debug else []) + (["--sim-svn", str(sim_svn)] if sim_svn != 1 else [])
    if access_log not in ("common", "combined", "off"):
        from enarx_pkg.errors import UsageError

        raise UsageError(f"--access-log must be common, combined or off, not {access_log!r}")

    def announce(p: Pins) -> None:
        if p.backend == "sim":
            warn("backend 'sim' is a SOFTWARE keep: it protects nothing; for development only")
        print(f"enarx-pkg host agent on {p.url}\n  backend:     {p.backend}\n  measurement: {p.measurement}"
              + (f"\n  sim key:     {p.sim_key_fingerprint}" if p.sim_key_fingerprint else "")
              + f"\n  token file:  {p.token_file}", flush=True)

    run(ServeOptions(backend, listen, token_file, data, pool, max_keeps, provision_deadline, keep_lifetime,
                     tuple(extra), access_log, publish_range), announce)


@host_app.command("keyscan")
def keyscan(
    url: Annotated[str, typer.Argument(help="host agent URL")],
    host_token_file: Annotated[Path | None, typer.Option(help="bearer token for the host agent")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
) -> None:
    """Attest one fresh keep on the host and print a policy (TOML) pinning what it showed (first contact)."""
    from enarx_pkg.keyscan import keyscan as scan

    result = scan(url, _token(host_token_file))
    warn(result.warning)
    for note in result.notes:
        warn(note)
    if json_out:
        print_json({"host": result.host, "tee": result.tee, "policy": result.policy, "toml": result.toml,
                    "warning": result.warning, "notes": list(result.notes)})
    else:
        sys.stdout.write(result.toml)


@deploy_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def deploy(
    ref: Annotated[str, typer.Argument(help="registry/repository[:tag|@digest]")],
    host: Annotated[list[str], typer.Option(metavar="URL", help="host agent URL (repeat for several)")],
    args: Annotated[list[str] | None, typer.Argument(metavar="ARGS",
                                                     help="workload arguments (after --)")] = None,
    host_token_file: Annotated[Path | None, typer.Option(help="bearer token for the host agents")] = None,
    policy: Annotated[Path | None, typer.Option(help="attestation policy (TOML)")] = None,
    key: Annotated[Path | None, typer.Option(help="signer's public key (PEM)")] = None,
    certificate_identity: Annotated[str | None, typer.Option(help="keyless signer identity (cosign's flag)")] = None,
    certificate_oidc_issuer: Annotated[str | None, typer.Option(help="OIDC issuer of that identity")] = None,
    trust_config: Annotated[Path | None, typer.Option(metavar="FILE", help="sigstore ClientTrustConfig of a "
                                                      "private Sigstore (keyless); default: public sigstore")] = None,
    decryption_key: Annotated[Path | None, typer.Option(help="private key the package was encrypted for")] = None,
    secret: Annotated[list[str] | None, typer.Option(metavar="NAME=SOURCE",
                                                     help="NAME=env:VAR or NAME=file:PATH")] = None,
    keep_registry: Annotated[str | None, typer.Option(help="registry URL the keep pulls from")] = None,
    insecure_sim: Annotated[bool, typer.Option("--insecure-sim", help="accept SOFTWARE sim keeps (unsafe)")] = False,
    allow_yanked: Annotated[bool, typer.Option("--allow-yanked", help="deploy even a version marked yanked")] = False,
    allow_version_mismatch: Annotated[bool, typer.Option(
        "--allow-version-mismatch", help="deploy a signed package of another version/repository (unsafe)")] = False,
    stdin: Annotated[bool, typer.Option("--stdin", help="stream our stdin to the workload (sealed)")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="return once the keep's listen sockets are bound; "
                                         "the keep runs on (see `enarx-pkg keep`)")] = False,
    state: Annotated[Path | None, typer.Option(metavar="FILE", help="where --detach saves the keep's state "
                                               "(0600; default: the user's state dir)")] = None,
    tls_ca: Annotated[Path | None, typer.Option(metavar="CA_CERT", help="with --detach: certify the keep's "
                                                "prot = \"tls\" key with this deploy CA (`ca init`)")] = None,
    tls_ca_key: Annotated[Path | None, typer.Option(metavar="CA_KEY", help="the deploy CA's key (0600)")] = None,
    tls_name: Annotated[list[str] | None, typer.Option(metavar="DNS", help="a name the keep's TLS certificate "
                                                       "carries (repeat; default: localhost + listen addresses)")
                        ] = None,
    tls_lifetime: Annotated[str, typer.Option(metavar="DURATION", help="lifetime of the certificate --tls-ca "
                                              "issues (e.g. 30m, 24h, 7d)")] = "24h",
    tls12: Annotated[bool, typer.Option("--tls12", help="the keep's prot = \"tls\" files accept TLS 1.2 too "
                                        "(default: TLS 1.3 only)")] = False,
    publish: Annotated[list[str] | None, typer.Option(metavar="HOSTPORT:LISTEN", help="with --detach: bind the "
                                                      "listen file LISTEN (name or port) on this host port "
                                                      "(repeat; in the host's publish range)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
) -> None:
    """Attest a keep on each host, seal keys and secrets to it, run the package, relay its output."""
    from enarx_pkg import deploy as d
    from enarx_pkg import deploy_plan
    from enarx_pkg.network import parse_mapping

    if insecure_sim:
        warn("--insecure-sim: sim keeps are SOFTWARE ONLY; the host can read everything sent to them")
    if allow_version_mismatch:
        warn("--allow-version-mismatch: a registry may now serve an older or another signed package (rollback)")
    settings = d.DeploySettings(
        ref=ref, hosts=tuple(host), signer=_signer(key, certificate_identity, certificate_oidc_issuer, trust_config),
        policy_path=policy, host_token=_token(host_token_file),
        decryption_key=read_option_file(decryption_key, "--decryption-key") if decryption_key else None,
        secrets=tuple(deploy_plan.parse_secret_option(s) for s in secret or ()), insecure_sim=insecure_sim,
        args=tuple(args) if args else None, stdin=_raw_stdin() if stdin else None,
        keep_registry=keep_registry, allow_yanked=allow_yanked, allow_version_mismatch=allow_version_mismatch,
        detach=detach, state=state, publish=parse_mapping(publish or ()),
        tls=_tls_options(tls_ca, tls_ca_key, tls_name, tls_lifetime, detach, tls12),
        recipe=_tls_recipe(_recipe(policy, key, certificate_identity, certificate_oidc_issuer, trust_config,
                                   host_token_file, decryption_key, secret or [], keep_registry, args, publish or []),
                           tls_ca, tls_ca_key, tls_name, tls_lifetime, tls12) if detach else None)
    live = len(host) == 1 and not json_out
    deployment = d.deploy(settings, stdout=_writer(sys.stdout) if live else None,
                          stderr=_writer(sys.stderr) if live else None, event=lambda h, s: info(f"{h}: {s}"))
    raise typer.Exit(_render(deployment, json_out, live))


def _signer(key: Path | None, identity: str | None, issuer: str | None, trust_config: Path | None = None) -> Any:
    from enarx_pkg import verify
    from enarx_pkg.errors import UsageError

    if key and (identity or issuer):
        raise UsageError("give --key or --certificate-identity/--certificate-oidc-issuer, not both")
    if key:
        return verify.KeyPolicy(read_option_file(key, "--key"))
    if identity or issuer:
        return verify.IdentityPolicy(identity=identity, issuer=issuer,
                                     trust_config=str(trust_config) if trust_config else None)
    raise UsageError("deploy verifies the package's signature first: pass --key PUB or "
                     "--certificate-identity ID --certificate-oidc-issuer ISS")


def _tls_options(ca: Path | None, key: Path | None, names: list[str] | None, lifetime: str, detach: bool,
                 tls12: bool) -> Any:
    """``--tls-*`` checked, and the deploy CA loaded, before any host is contacted (None without them)."""
    from enarx_pkg._cli.tls import _duration
    from enarx_pkg.tls.deployer import load

    if ca is None and key is None and not names and not tls12:
        return None
    return load(ca, key, names or (), _duration(lifetime, "--tls-lifetime"), detach, tls12)


def _token(path: Path | None) -> str | None:
    return read_option_file(path, "--host-token-file").decode("utf-8", "replace").strip() if path else None


def _recipe(policy: Path | None, key: Path | None, identity: str | None, issuer: str | None,
            trust_config: Path | None, token_file: Path | None, decryption_key: Path | None, secrets: list[str],
            keep_registry: str | None, args: list[str] | None, publish: list[str]) -> Any:
    """What `keep restart` needs to deploy this again: absolute paths and sources, never a secret value."""
    from enarx_pkg.deploy_plan import parse_secret_option
    from enarx_pkg.keeps import Recipe

    def absolute(path: Path | None) -> str:
        return str(path.expanduser().resolve()) if path else ""

    sources = [parse_secret_option(s) for s in secrets]
    return Recipe(policy=absolute(policy), signer_key=key.read_text() if key else "", identity=identity or "",
                  issuer=issuer or "", trust_config=absolute(trust_config), host_token_file=absolute(token_file),
                  decryption_key=absolute(decryption_key), keep_registry=keep_registry or "",
                  secrets=tuple(f"{s.name}={s.source}:{absolute(Path(s.ref)) if s.source == 'file' else s.ref}"
                                for s in sources), args=tuple(args) if args else None, publish=tuple(publish))


def _tls_recipe(recipe: Any, ca: Path | None, key: Path | None, names: list[str] | None, lifetime: str,
                tls12: bool) -> Any:
    """The recipe with the ``--tls-*`` options (absolute paths; `keep restart` certifies the new keep alike)."""
    from dataclasses import replace

    from enarx_pkg._cli.tls import _duration

    return replace(recipe, tls_ca=str(ca.resolve()) if ca else "", tls_ca_key=str(key.resolve()) if key else "",
                   tls_names=tuple(names or ()),
                   tls_lifetime_s=str(int(_duration(lifetime, "--tls-lifetime").total_seconds())) if ca else "",
                   tls12="1" if tls12 else "")


def _raw_stdin() -> Any:
    """Our stdin unbuffered: a thread still blocked reading it at exit holds no buffered-IO lock, which
    made the interpreter abort (SIGABRT) at shutdown."""
    return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)


def _writer(stream: Any) -> Any:
    def write(data: bytes) -> None:
        stream.buffer.write(data)
        stream.buffer.flush()
    return write


def _render(deployment: Any, json_out: bool, live: bool) -> int:
    """Print the per-host table (or JSON); return the exit code (the workload's, or the first failure's)."""
    results = deployment.hosts
    if json_out:
        _json_report(deployment)
    elif any(r.detached for r in results):
        _detached(results, live)
    elif not live:
        _table(results)
    if live and results[0].error is not None:
        raise results[0].error
    codes = [int(r.error.exit_code) if r.error else r.status for r in results]
    return next((c for c in codes if c), 0)


def _json_report(deployment: Any) -> None:
    """The report; ``"error"`` is the first failed host's failure in the documented shape (with its host),
    or null when every host ran the workload. Failures are said on stderr too, as for every ``--json``."""
    failed = [r for r in deployment.hosts if r.error is not None]
    print_json({"package": _package(deployment.release), "hosts": [_row(r) for r in deployment.hosts],
                "error": _error(failed[0].error) | {"host": failed[0].host} if failed else None})
    for r in failed:
        info(f"{r.host}: {r.error.diagnostics()}")  # info() escapes what a host sent


def _error(exc: Any) -> dict[str, Any]:
    return {"kind": type(exc).__name__, "message": exc.message, "exit_code": int(exc.exit_code)}


def _package(rel: Any) -> dict[str, Any]:
    return {"reference": rel.asked, "repository": rel.repository, "digest": rel.digest, "version": rel.version,
            "name": rel.name}


def _row(r: Any) -> dict[str, Any]:
    return {"host": r.host, "keep_id": r.keep_id, "tee": r.tee, "measurement": r.measurement,
            "status": r.status, "error": _error(r.error) if r.error else None,
            "exit_code": int(r.error.exit_code) if r.error else r.status,
            "stdout": r.stdout.decode("utf-8", "replace"), "stderr": r.stderr.decode("utf-8", "replace"),
            "timings_ms": {k: round(v * 1000, 1) for k, v in r.timings.items()}} | (
        {"detached": True, "endpoints": r.endpoints, "state_file": str(r.state_file)} if r.detached else {}) | (
        {"tls": r.tls} if r.tls else {})


def _detached(results: list[Any], live: bool) -> None:
    """One block per host: the keep id, its state file, and where each declared listen port is reachable."""
    from enarx_pkg._internal.text import printable

    for r in results:
        if r.error is not None:
            if not live:  # one host: its error is raised (and shown once) by the caller
                print(printable(f"{r.host}: refused ({int(r.error.exit_code)}): {r.error.message}"))
            continue
        print_keep(f"keep {r.keep_id} on {printable(r.host)} (detached; state: {r.state_file})", r.endpoints, r.tls,
                   " (issued by --tls-ca)")


def _table(results: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from enarx_pkg._internal.text import printable

    t = Table("host", "tee", "status", "output / error")
    for r in results:
        text = r.error.message if r.error else r.stdout.decode("utf-8", "replace").strip()[:200]
        cells = (r.host, r.tee, str(r.status) if r.error is None else f"refused ({int(r.error.exit_code)})", text)
        t.add_row(*(Text(printable(c, keep_newlines=True)) for c in cells))  # Text: no markup from hosts
    Console(stderr=False).print(t)
