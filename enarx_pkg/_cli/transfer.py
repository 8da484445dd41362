"""``login``, ``logout``, ``publish``, ``pull``: thin wrappers over the library's transfer functions."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from enarx_pkg._cli.common import info, is_terminal, print_json, warn

if TYPE_CHECKING:
    from enarx_pkg.oci.client import ProgressFactory

login_app = typer.Typer(add_completion=False, rich_markup_mode=None)
logout_app = typer.Typer(add_completion=False, rich_markup_mode=None)
publish_app = typer.Typer(add_completion=False, rich_markup_mode=None)
pull_app = typer.Typer(add_completion=False, rich_markup_mode=None)

PLAIN_HTTP = typer.Option(None, "--plain-http/--https",
                          help="Force plain HTTP (or HTTPS). Default: HTTP for loopback hosts, HTTPS otherwise.")
JSON = typer.Option(False, "--json", help="Print the result as JSON on stdout.")


@login_app.command()
def login(
    registry: str = typer.Argument(..., help="Registry host[:port] or URL."),
    username: str = typer.Option(None, "--username", "-u", help="User name (prompted if omitted)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    plain_http: bool = PLAIN_HTTP,
    as_json: bool = JSON,
) -> None:
    """Check credentials against REGISTRY and store them (0600) for later commands."""
    from enarx_pkg import credentials
    from enarx_pkg.errors import UsageError
    from enarx_pkg.oci.auth import Credential

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        import getpass

        username = username or input("Username: ")
        password = getpass.getpass("Password: ")
    else:
        raise UsageError("no password: pass --password-stdin (passwords are never taken from arguments)")
    if not username:
        raise UsageError("no user name: pass -u USER with --password-stdin",
                         hint="for an enarx-pkg registry API token any user name will do, e.g. -u ci")
    if not password:
        raise UsageError("the password is empty")
    path = credentials.login(registry, Credential(username, password, "login"), plain_http=plain_http)
    if as_json:
        from enarx_pkg._cli.common import print_json

        print_json({"registry": registry, "username": username, "stored": str(path)})
        return
    info(f"Login succeeded for {registry}; credentials stored in {path}")


@logout_app.command()
def logout(registry: str = typer.Argument(..., help="Registry host[:port] or URL."),
           as_json: bool = JSON) -> None:
    """Remove the stored credentials for REGISTRY."""
    from enarx_pkg import credentials

    removed = credentials.logout(registry)
    if as_json:
        print_json({"registry": registry, "removed": removed})
    elif removed:
        info(f"Removed credentials for {registry}")
    else:
        info(f"No stored credentials for {registry}")


@publish_app.command()
def publish(
    source: str = typer.Argument(".", help="Package: project DIR (the build of its current version), DIR:TAG "
                                 "or oci:LAYOUT[:TAG]."),
    registry: str = typer.Option(None, "--registry", help="Registry (default: [publish] registry)."),
    repository: str = typer.Option(None, "--repository",
                                   help="Repository (default: [publish] repository, else [package] name)."),
    tag: str = typer.Option(None, "--tag", help="Tag (default: the package's own: its tag in the layout, "
                            "else its version)."),
    mount_from: str = typer.Option(None, "--mount-from", help="Repository on the same registry to mount blobs from."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Encrypt the layers (ocicrypt) before pushing."),
    recipient: list[Path] = typer.Option([], "--recipient", metavar="PUBKEY",
                                         help="Recipient public key PEM file (with --encrypt)."),
    sign_key: Path = typer.Option(None, "--sign-key", help="With --encrypt: sign the encrypted manifest with this "
                                  "private key (passphrase from ENARX_PKG_KEY_PASSWORD)."),
    plain_http: bool = PLAIN_HTTP,
    as_json: bool = JSON,
) -> None:
    """Push a package, then its tag, then its signatures, skipping blobs the registry already has."""
    from enarx_pkg import publish as pub
    from enarx_pkg.errors import UsageError
    from enarx_pkg.package import locate_local

    if encrypt != bool(recipient):
        raise UsageError("--encrypt needs at least one --recipient (and --recipient needs --encrypt)")
    if sign_key and not encrypt:
        raise UsageError("--sign-key goes with --encrypt; sign a plaintext package with `enarx-pkg sign`")
    key = None
    if sign_key:
        from enarx_pkg import keys

        key = keys.load_private(sign_key)
    elif encrypt:
        warn("the encrypted manifest is a new package and is not signed: `deploy` will refuse it "
             "(pass --sign-key, or run `enarx-pkg encrypt`, `sign`, then `publish`)")
    found = locate_local(source, command="publish")
    toml = found.project / "Enarx.toml" if found.project else None
    target = pub.target_from(registry, repository, tag, toml, plain_http=plain_http)
    with _progress(as_json) as progress:
        result = pub.publish(found.layout, target, progress=progress, mount_from=mount_from,
                             source_ref=found.digest, recipients=tuple(recipient), sign_key=key)
    if not result.referrers and not encrypt:
        warn(f"published without a signature: `deploy` refuses unsigned packages; sign it "
             f"(enarx-pkg sign {source} --key KEY) and publish again: the same digest, with its signature")
    if as_json:
        print_json(result.to_json())
    else:
        info(f"Published {result.reference.with_tag(None)} (tag {result.tag or '-'}; "
             f"{result.pushed} blobs pushed, {result.skipped} skipped, {result.mounted} mounted; "
             f"{len(result.referrers)} signature(s))")
        print(result.reference.with_tag(None))


@pull_app.command()
def pull(
    ref: str = typer.Argument(..., help="registry/repository[:tag][@sha256:...]"),
    output: Path = typer.Option(None, "--output", "-o", help="Layout directory (default: ./<name>)."),
    plain_http: bool = PLAIN_HTTP,
    as_json: bool = JSON,
) -> None:
    """Pull a package and its signatures into an OCI layout, verifying every digest."""
    from enarx_pkg import pull as pl
    from enarx_pkg.oci import reference

    parsed = reference.parse(ref, plain_http=plain_http)
    dest = output or Path(parsed.repository.rsplit("/", 1)[-1])
    with _progress(as_json) as progress:
        result = pl.pull(parsed, dest, progress=progress)
    if as_json:
        print_json({"reference": str(result.reference), "digest": result.manifest_digest, "layout": str(dest),
                    "blobs": result.blobs, "bytes": result.bytes, "referrers": list(result.referrers)})
    else:
        info(f"Pulled {result.reference} into {dest} ({result.blobs} blobs, {result.bytes} bytes, "
             f"{len(result.referrers)} signature(s))")


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[ProgressFactory | None]:
    """Rich progress bars when a person watches the terminal; nothing in CI, pipes or --json."""
    if quiet or not is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    # on stderr, the terminal checked above: stdout carries data (a reference, JSON) and may be piped
    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as bars:
        def factory(label: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(_bar_label(label), total=total)

            def update(done: int, _task: Any = task) -> None:
                bars.update(_task, completed=done)
            return update
        yield factory


def _bar_label(label: str) -> str:
    """A blob's title as a bar's label: a registry wrote it, so no markup, no escapes, not too long."""
    from rich.markup import escape

    from enarx_pkg._internal.text import printable

    text = printable(label)
    return escape(text if len(text) <= 40 else text[:39] + "…")
