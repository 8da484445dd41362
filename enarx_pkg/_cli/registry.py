"""``enarx-pkg registry``: run the registry server and administer it (tokens, gc, yank, repositories)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from enarx_pkg._cli.common import info, print_json
from enarx_pkg.errors import InputError, NotFoundError, TransportError, UsageError

registry_app = typer.Typer(help="Run and administer the enarx-pkg registry.", no_args_is_help=True,
                           rich_markup_mode=None, add_completion=False)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True, rich_markup_mode=None,
                        add_completion=False)
registry_app.add_typer(token_app, name="token")

DATA = typer.Option(None, "--data", help="Data directory (SQLite metadata and blobs) [default: ./registry-data].")
DATABASE = typer.Option(None, "--database", help="postgresql://... to keep metadata in PostgreSQL (replicas).")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")
STORAGE = typer.Option(None, "--storage", metavar="s3://BUCKET[/PREFIX]",
                       help="Keep blobs in an S3-compatible bucket (credentials from the AWS environment/config).")
S3_ENDPOINT = typer.Option(None, "--s3-endpoint", metavar="URL", help="S3 API endpoint (Swift, MinIO, Ceph...).")
S3_REGION = typer.Option(None, "--s3-region", metavar="REGION", help="S3 region [default: us-east-1].")


def _settings(data: str | None, database: str | None, **extra: Any) -> Any:
    from registry.admin import data_path
    from registry.settings import Settings

    if database and not database.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--database must be a postgresql:// URL, got {database.split('://')[0]}://...")
    if extra.get("storage"):
        _check_storage_options(extra["storage"], extra.get("s3_endpoint"))
    return Settings(data_path(data), database, **extra)


def _check_storage_options(storage: str, endpoint: str | None) -> None:
    from registry.objectstore import S3Location, StoreConfigError

    try:
        S3Location.parse(storage)
    except StoreConfigError as exc:
        raise UsageError(str(exc)) from None
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--s3-endpoint must be an http(s):// URL, got {endpoint[:60]!r}")


def _admin(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from registry.admin import AdminError, AdminNotFound
    from registry.objectstore import StoreConfigError, StoreUnavailable

    try:
        return fn(*args, **kwargs)
    except AdminNotFound as exc:  # an unknown tag or token (exit 66)
        raise NotFoundError(str(exc)) from None
    except (AdminError, StoreConfigError) as exc:
        raise InputError(str(exc)) from None
    except StoreUnavailable as exc:  # the object store could not be reached or failed (exit 69)
        raise TransportError(str(exc)) from None


@registry_app.command()
def serve(data: str = DATA, database: str = DATABASE,
          host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(5000, help="TCP port."),
          workers: int = typer.Option(1, help="Worker processes (share the data directory/database)."),
          anonymous_pull: bool = typer.Option(False, "--anonymous-pull", help="Default: anyone may pull."),
          public_url: str = typer.Option(None, help="External base URL, used in auth challenges."),
          cache_ttl: float = typer.Option(1.0, help="Seconds token/repository settings are cached."),
          max_blob_size: int = typer.Option(16 << 30, "--max-blob-size", metavar="BYTES",
                                            help="Largest blob accepted (413 SIZE_INVALID beyond)."),
          trusted_key: list[Path] = typer.Option([], "--trusted-key", metavar="PEM",
                                                 help="Public key whose signatures the pages show as verified."),
          trusted_identity: list[str] = typer.Option([], "--trusted-identity", metavar="ID",
                                                     help="Keyless signer to trust (with --trusted-issuer)."),
          trusted_issuer: list[str] = typer.Option([], "--trusted-issuer", metavar="URL",
                                                   help="OIDC issuer of the --trusted-identity at the same place."),
          trust_config: Path = typer.Option(None, "--trust-config", metavar="FILE",
                                            help="sigstore ClientTrustConfig of a private Sigstore whose keyless "
                                                 "signatures the pages verify (besides the public roots)."),
          access_log: str = typer.Option("combined", "--access-log", metavar="FORMAT",
                                         help="common, combined or off (one line per request on stdout)."),
          storage: str = STORAGE, s3_endpoint: str = S3_ENDPOINT, s3_region: str = S3_REGION,
          s3_redirect: bool = typer.Option(False, "--s3-redirect",
                                           help="Answer blob GETs with 307 to a presigned URL.")) -> None:
    """Serve the OCI distribution API, the web pages and the JSON API."""
    from enarx_pkg._internal.listen import check_free
    from registry.admin import check_storage
    from registry.admin import serve as run

    if max_blob_size <= 0:
        raise UsageError("--max-blob-size must be a positive number of bytes")
    check_free(host, port, "the registry")
    if len(trusted_identity) != len(trusted_issuer):
        raise UsageError("give one --trusted-issuer for each --trusted-identity")
    if access_log not in ("common", "combined", "off"):
        raise UsageError(f"--access-log must be common, combined or off, not {access_log!r}")
    settings = _settings(data, database, anonymous_pull=anonymous_pull, public_url=public_url, cache_ttl=cache_ttl,
                         max_blob_bytes=max_blob_size, access_log=access_log,
                         trusted_keys=tuple(_public_key(p) for p in trusted_key),
                         trusted_identities=tuple(zip(trusted_identity, trusted_issuer, strict=True)),
                         trust_config=_trust_config(trust_config),
                         storage=storage, s3_endpoint=s3_endpoint, s3_region=s3_region, s3_redirect=s3_redirect)
    _admin(check_storage, settings)  # a bucket that cannot be used stops us before "listening" is printed
    info(f"registry: data {settings.data_dir}, metadata {(settings.database and 'postgresql') or 'sqlite'}, "
         f"blobs {settings.storage or 'in the data directory'}, listening on http://{host}:{port}")
    _admin(run, settings, host, port, workers)


def _trust_config(path: Path | None) -> str | None:
    """Check the file now (not on the first page view); the workers load it by its absolute path."""
    if path is None:
        return None
    from enarx_pkg._internal.sigstore_keyless import load_trust_config

    load_trust_config(str(path))
    return str(path.resolve())


def _public_key(path: Path) -> str:
    from enarx_pkg._cli.common import read_option_file
    from enarx_pkg.keys import load_public

    data = read_option_file(path, "--trusted-key", 1 << 16)  # missing: 66, as for every option's file
    load_public(data, f"--trusted-key {path}")  # refuse a bad key now, not on the first page view
    return data.decode("ascii")


@token_app.command("create")
def token_create(name: str = typer.Option(..., "--name", help="Who or what the token is for."),
                 scope: list[str] = typer.Option(..., "--scope", metavar="SCOPE",
                                                 help="pull:REPO, push:ORG/*, delete:REPO, admin."),
                 ttl_days: float = typer.Option(None, "--ttl-days", help="Expire after this many days."),
                 data: str = DATA, database: str = DATABASE, as_json: bool = JSON) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from registry.admin import create_token

    token_id, token = _admin(create_token, _settings(data, database), name, scope, ttl_days)
    if as_json:
        print_json({"id": token_id, "token": token, "scopes": scope})
    else:
        info(f"token {token_id} for {name}: {' '.join(scope)} (shown once; store it now)")
        print(token)


@token_app.command("list")
def token_list(data: str = DATA, database: str = DATABASE, as_json: bool = JSON) -> None:
    """List tokens (ids, names, scopes; never the tokens)."""
    from registry.admin import list_tokens

    rows = list_tokens(_settings(data, database))
    if as_json:
        print_json(rows)
        return
    for r in rows:
        state = "revoked" if r["revoked"] else "active"
        print(f"{r['id']}  {state:7}  {r['name']}  {' '.join(r['scopes'])}")  # type: ignore[arg-type]


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="Token id from `token list`."),
                 data: str = DATA, database: str = DATABASE, as_json: bool = JSON) -> None:
    """Revoke a token; requests using it fail from the next cache refresh on (1 s by default)."""
    from registry.admin import revoke_token

    _admin(revoke_token, _settings(data, database), token_id)
    if as_json:
        print_json({"id": token_id, "revoked": True})
    else:
        info(f"revoked {token_id}")


@registry_app.command()
def gc(data: str = DATA, database: str = DATABASE,
       dry_run: bool = typer.Option(False, "--dry-run", help="Report only."),
       grace: float = typer.Option(None, help="Seconds: keep blobs/uploads younger than this [default 3600]."),
       storage: str = STORAGE, s3_endpoint: str = S3_ENDPOINT, s3_region: str = S3_REGION,
       as_json: bool = JSON) -> None:
    """Delete blobs no manifest references and abandoned uploads."""
    from dataclasses import asdict

    from registry.admin import gc as collect

    settings = _settings(data, database, storage=storage, s3_endpoint=s3_endpoint, s3_region=s3_region)
    report = _admin(collect, settings, dry_run, grace)
    if as_json:
        print_json(asdict(report))
    else:
        verb = "would delete" if dry_run else "deleted"
        print(f"{verb} {report.blobs_deleted} blobs ({report.bytes_freed} bytes), {report.uploads_deleted} uploads")


@registry_app.command("migrate-storage")
def migrate_storage(data: str = DATA, database: str = DATABASE,
                    storage: str = typer.Option(..., "--storage", metavar="s3://BUCKET[/PREFIX]",
                                                help="The bucket to copy the data directory's blobs into."),
                    s3_endpoint: str = S3_ENDPOINT, s3_region: str = S3_REGION, as_json: bool = JSON) -> None:
    """Copy a filesystem registry's blobs into a bucket (resumable; the data directory is left as it was)."""
    from dataclasses import asdict

    from registry.admin import migrate_storage as migrate

    settings = _settings(data, database, storage=storage, s3_endpoint=s3_endpoint, s3_region=s3_region)
    report = _admin(migrate, settings)
    if as_json:
        print_json(asdict(report))
    else:
        print(f"copied {report.copied} blobs ({report.bytes_copied} bytes), {report.present} already in {storage}; "
              f"now serve with --storage {storage}")


@registry_app.command()
def yank(reference: str = typer.Argument(..., help="REPOSITORY:TAG"),
         undo: bool = typer.Option(False, "--undo", help="Un-yank."),
         data: str = DATA, database: str = DATABASE, as_json: bool = JSON) -> None:
    """Hide a version from listings; it stays pullable by digest and is marked yanked in the API."""
    from registry.admin import yank as do_yank

    digest = _admin(do_yank, _settings(data, database), reference, undo)
    if as_json:
        print_json({"reference": reference, "digest": digest, "yanked": not undo})
    else:
        info(f"{'un-yanked' if undo else 'yanked'} {reference} ({digest})")


@registry_app.command()
def repo(name: str = typer.Argument(..., help="Repository name."),
         allow_overwrite: bool = typer.Option(None, "--allow-overwrite/--immutable-versions",
                                              help="May version tags be moved?"),
         anonymous_pull: bool = typer.Option(None, "--anonymous-pull/--no-anonymous-pull",
                                             help="May anyone pull without a token?"),
         description: str = typer.Option(None, help="Shown on the repository page."),
         data: str = DATA, database: str = DATABASE, as_json: bool = JSON) -> None:
    """Change a repository's settings (prints the settings now in force)."""
    from registry.admin import set_repo

    fields = {"allow_overwrite": None if allow_overwrite is None else int(allow_overwrite),
              "anonymous_pull": None if anonymous_pull is None else int(anonymous_pull), "description": description}
    row = _admin(set_repo, _settings(data, database), name, **fields)
    if as_json:
        print_json({"repository": row.name, "allow_overwrite": row.allow_overwrite,
                    "anonymous_pull": row.anonymous_pull, "description": row.description})
    else:
        pull = "registry default" if row.anonymous_pull is None else ("yes" if row.anonymous_pull else "no")
        info(f"updated {name}: version tags {'may move' if row.allow_overwrite else 'immutable'}, "
             f"anonymous pull {pull}")


@registry_app.command("anonymous-pull")
def anonymous_default(allow: bool = typer.Argument(..., help="true or false"),
                      data: str = DATA, database: str = DATABASE, as_json: bool = JSON) -> None:
    """Set the default for repositories without their own anonymous-pull setting."""
    from registry.admin import set_default_anonymous_pull

    set_default_anonymous_pull(_settings(data, database), allow)
    if as_json:
        print_json({"anonymous_pull": allow})
    else:
        info(f"anonymous pull by default: {allow}")


def main(argv: list[str] | None = None) -> int:
    """``enarx-registry``: the same commands as ``enarx-pkg registry`` (a shortcut for server hosts)."""
    from enarx_pkg._cli.main import main as enarx_main

    return enarx_main(["registry", *(sys.argv[1:] if argv is None else argv)])
