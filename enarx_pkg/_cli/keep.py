"""``enarx-pkg keep list|status|logs|restart|stop``: thin option parsing around :mod:`enarx_pkg.keeps` and
:mod:`enarx_pkg.restart`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from enarx_pkg._cli.common import print_json, print_keep

keep_app = typer.Typer(help="Manage keeps left running by `deploy --detach`.",
                       no_args_is_help=True, add_completion=False, rich_markup_mode=None)
HostOpt = Annotated[str | None, typer.Option("--host", metavar="URL", help="host agent URL the keep runs on "
                                             "(default: the one its state file records; checked if given)")]
IdArg = Annotated[str | None, typer.Argument(metavar="KEEP_ID", help="as `deploy --detach` printed it")]
StateOpt = Annotated[Path | None, typer.Option(metavar="FILE", help="the keep's state file (default: state dir)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@keep_app.callback()
def keep() -> None:
    """Manage keeps left running by ``deploy --detach`` (their state: the user's state dir or --state)."""


@keep_app.command("list")
def list_keeps(host: HostOpt = None, json_out: JsonOpt = False) -> None:
    """The detached keeps this user deployed (to the host, with --host), with their state there."""
    from enarx_pkg import keeps
    from enarx_pkg._internal.text import printable
    from enarx_pkg.errors import Error

    rows: list[dict[str, Any]] = []
    for record in keeps.records(host):
        try:
            state = str(keeps.status(record).get("state", "?"))
        except Error:
            state = "gone"
        rows.append({"keep_id": record.keep_id, "state": state, "host": record.host, "ref": record.ref,
                     "endpoints": list(record.endpoints)})
    if json_out:
        print_json(rows)
        return
    for r in rows:
        ends = ", ".join(f"{e['port']}->{e['address']}" for e in r["endpoints"])
        where = "" if host else f"  {printable(r['host'])}"
        print(f"{r['keep_id']}  {r['state']:8}{where}  {r['ref']}  {ends}")


@keep_app.command("status")
def status(keep_id: IdArg = None, host: HostOpt = None, state: StateOpt = None, json_out: JsonOpt = False) -> None:
    """Whether the keep runs, and where its listen sockets are reachable."""
    from enarx_pkg import keeps

    record = keeps.load(keep_id, host, state)
    report = keeps.status(record)
    if json_out:
        print_json(report)
        return
    print(f"keep {report.get('keep_id')}: {report.get('state')}")
    for e in keeps.parse_endpoints(_json_bytes({"endpoints": report.get("endpoints") or []}), record.host):
        print(f"  {e['name']}: port {e['port']} -> {e['address']}")


@keep_app.command("logs")
def logs(keep_id: IdArg = None, host: HostOpt = None, state: StateOpt = None) -> None:
    """The keep's stdout and stderr so far (opened with the session key); exit code: the workload's, once exited."""
    from enarx_pkg import keeps
    from enarx_pkg._cli.common import warn
    from enarx_pkg.errors import WorkloadError

    result = keeps.logs(keeps.load(keep_id, host, state), _writer(sys.stdout), _writer(sys.stderr))
    if result.dropped:
        warn(f"{result.dropped} output frames were not kept (the agent's log limit)")
    if result.error:
        raise WorkloadError(f"the keep failed: {result.error}")
    raise typer.Exit(result.status or 0)


@keep_app.command("restart")
def restart(
    keep_id: IdArg = None, host: HostOpt = None, state: StateOpt = None,
    policy: Annotated[Path | None, typer.Option(metavar="FILE", help="attestation policy (default: the one "
                                                "the keep was deployed with, read again)")] = None,
    host_token_file: Annotated[Path | None, typer.Option(metavar="FILE", help="bearer token for the host agent "
                                                         "(default: the recorded file, read again)")] = None,
    publish: Annotated[list[str] | None, typer.Option(metavar="HOSTPORT:LISTEN", help="a new port mapping "
                                                      "(default: the recorded one)")] = None,
    insecure_sim: Annotated[bool, typer.Option("--insecure-sim", help="accept SOFTWARE sim keeps (unsafe)")] = False,
    allow_yanked: Annotated[bool, typer.Option("--allow-yanked", help="restart even a version marked yanked")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Replace the keep by a NEW keep, attested again, running the same package (pinned by digest)."""
    from enarx_pkg import keeps
    from enarx_pkg import restart as r
    from enarx_pkg._cli.common import info, warn
    from enarx_pkg._internal.text import printable

    if insecure_sim:
        warn("--insecure-sim: sim keeps are SOFTWARE ONLY; the host can read everything sent to them")
    old = keeps.load(keep_id, host, state)
    opts = r.RestartOptions(policy, host_token_file, insecure_sim, allow_yanked,
                            publish=tuple(publish) if publish is not None else None)
    new = r.restart(old, state, opts, event=lambda h, s: info(f"{h}: {s}"))
    if json_out:
        print_json({"keep_id": new.keep_id, "replaced": old.keep_id, "host": new.host, "endpoints": new.endpoints,
                    "state_file": str(new.state_file), "tee": new.tee, "measurement": new.measurement,
                    "evidence": new.evidence} | ({"tls": new.tls} if new.tls else {}))
        return
    print_keep(f"keep {new.keep_id} on {printable(new.host)} (replaces {old.keep_id}; state: {new.state_file})",
               new.endpoints, new.tls)


@keep_app.command("stop")
def stop(keep_id: IdArg = None, host: HostOpt = None, state: StateOpt = None, json_out: JsonOpt = False) -> None:
    """Destroy the keep (its logs go with it) and remove its state file."""
    from enarx_pkg import keeps

    record = keeps.load(keep_id, host, state)
    keeps.stop(record, state)
    if json_out:
        print_json({"keep_id": record.keep_id, "host": record.host, "stopped": True})
        return
    print(f"keep {record.keep_id} stopped")


def _json_bytes(obj: Any) -> bytes:
    import json

    return json.dumps(obj).encode()


def _writer(stream: Any) -> Any:
    def write(data: bytes) -> None:
        stream.buffer.write(data)
        stream.buffer.flush()
    return write
