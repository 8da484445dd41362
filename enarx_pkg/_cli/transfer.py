"""``login``, ``logout``, ``publish``, ``pull``: thin wrappers over the library's transfer functions."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from enarx_pkg._cli.common import info

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
    if not username or not password:
        raise UsageError("a username and a non-empty password are required")
    path = credentials.login(registry, Credential(username, password, "login"), plain_http=plain_http)
    if as_json:
        from enarx_pkg._cli.common import print_json

        print_json({"registry": registry, "username": username, "stored": str(path)})
        return
    info(f"Login succeeded for {registry}; credentials stored in {path}")


@logout_app.command()
def logout(registry: str = typer.Argument(..., help="Registry host[:port] or URL.")) -> None:
    """Remove the stored credentials for REGISTRY."""
    from enarx_pkg import credentials

    if credentials.logout(registry):
        info(f"Removed credentials for {registry}")
    else:
        info(f"No stored credentials for {registry}")


@publish_app.command()
def publish(
    source: Path = typer.Argument(Path("."), help="Project directory (uses target/oci) or OCI layout."),
    registry: str = typer.Option(None, "--registry", help="Registry (default: [publish] registry)."),
    repository: str = typer.Option(None, "--repository",
                                   help="Repository (default: [publish] repository, else [package] name)."),
    tag: str = typer.Option(None, "--tag", help="Tag (default: [package] version)."),
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
    from enarx_pkg._cli import transfer_plain

    transfer_plain.publish(source, registry, repository, tag, mount_from, encrypt, list(recipient), sign_key,
                           plain_http, as_json)


@pull_app.command()
def pull(
    ref: str = typer.Argument(..., help="registry/repository[:tag][@sha256:...]"),
    output: Path = typer.Option(None, "--output", "-o", help="Layout directory (default: ./<name>)."),
    plain_http: bool = PLAIN_HTTP,
    as_json: bool = JSON,
) -> None:
    """Pull a package and its signatures into an OCI layout, verifying every digest."""
    from enarx_pkg._cli import transfer_plain

    transfer_plain.pull(ref, output, plain_http, as_json)
