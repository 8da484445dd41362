"""What the ``enarx-pkg registry`` admin commands do, against the data directory or database directly.

Each function opens the metadata store, does one thing and returns plain data for the CLI to render.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from registry import auth
from registry.db import open_database
from registry.meta import Metadata, RepoRow
from registry.names import valid_name, valid_tag
from registry.settings import Settings
from registry.storage import open_storage
from registry.upload_state import UploadState, sweep


class AdminError(Exception):
    """A request the admin command cannot carry out (unknown repository or tag, bad scope)."""


class AdminNotFound(AdminError):
    """What the admin command names does not exist (a tag, a token)."""


@contextlib.contextmanager
def metadata(settings: Settings) -> Iterator[Metadata]:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds the bearer secret and token hashes
    meta = Metadata(open_database(settings.db_url))
    try:
        yield meta
    finally:
        meta.db.close()


def create_token(settings: Settings, name: str, scopes: list[str], ttl_days: float | None) -> tuple[str, str]:
    try:
        with metadata(settings) as meta:
            return auth.create_token(meta, name, scopes, ttl_days)
    except auth.ScopeError as exc:
        raise AdminError(str(exc)) from None


def list_tokens(settings: Settings) -> list[dict[str, object]]:
    with metadata(settings) as meta:
        return auth.list_tokens(meta)


def revoke_token(settings: Settings, token_id: str) -> None:
    with metadata(settings) as meta:
        if not auth.revoke_token(meta, token_id):
            raise AdminNotFound(f"no active token with id {token_id!r}")


def yank(settings: Settings, reference: str, undo: bool = False) -> str:
    """Hide ``REPO:TAG`` from listings (still pullable by digest); returns the digest it names."""
    repo, tag = _split(reference)
    with metadata(settings) as meta:
        row = meta.tag(repo, tag)
        if row is None or not meta.set_yanked(repo, tag, not undo, "admin-cli"):
            raise AdminNotFound(f"{repo}:{tag} does not exist")
        return row.digest


def set_repo(settings: Settings, repo: str, **fields: object) -> RepoRow:
    """Change a repository's settings (creating its row if need be); returns the settings now in force."""
    if not valid_name(repo):
        raise AdminError(f"{repo!r} is not a valid repository name")
    with metadata(settings) as meta:
        meta.set_repo(repo, "admin-cli", **{k: v for k, v in fields.items() if v is not None})
        row = meta.repo(repo)
    assert row is not None  # set_repo made it
    return row


def set_default_anonymous_pull(settings: Settings, allowed: bool) -> None:
    with metadata(settings) as meta:
        meta.set_config("anonymous_pull", "1" if allowed else "0")


def _split(reference: str) -> tuple[str, str]:
    repo, sep, tag = reference.rpartition(":")
    if not sep or not valid_name(repo) or not valid_tag(tag):
        raise AdminError(f"{reference!r}: expected REPOSITORY:TAG")
    return repo, tag


@dataclass(frozen=True)
class GcReport:
    blobs_deleted: int
    bytes_freed: int
    uploads_deleted: int
    dry_run: bool


def gc(settings: Settings, dry_run: bool = False, grace: float | None = None) -> GcReport:
    """Delete blobs no manifest references and uploads abandoned for longer than the grace period.

    Blobs and uploads younger than the grace period are kept: a client may be between pushing its
    layers and pushing the manifest that references them.
    """
    grace = settings.upload_grace if grace is None else grace
    cutoff = time.time() - grace
    store = open_storage(settings)
    with metadata(settings) as meta:
        db = meta.db
        live = {r[0] for r in db.query("SELECT digest FROM manifests")}
        live |= {r[0] for r in db.query("SELECT digest FROM manifest_refs")}
        recorded = {r[0]: (r[1], r[2]) for r in db.query("SELECT digest, size, created FROM blobs")}
        doomed = [d for d, (_, created) in recorded.items() if d not in live and created < cutoff]
        orphans = [d for d, mtime in store.all_blobs() if d not in recorded and d not in live and mtime < cutoff]
        freed = sum(recorded[d][0] for d in doomed) + sum(store.size(d) or 0 for d in orphans)
        uploads = sweep(UploadState(db), store, grace, dry_run)
        if not dry_run:
            for d in doomed:
                with db.transaction() as tx:
                    tx.execute("DELETE FROM repo_blobs WHERE digest = ?", (d,))
                    tx.execute("DELETE FROM blobs WHERE digest = ?", (d,))
            for d in doomed + orphans:
                store.delete_blob(d)
            db.execute("INSERT INTO audit (at, actor, action, repo, ref, digest, remote) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (time.time(), "admin-cli", "gc", None, None, None, f"{len(doomed) + len(orphans)} blobs"))
    return GcReport(len(doomed) + len(orphans), freed, uploads, dry_run)


def serve(settings: Settings, host: str, port: int, workers: int = 1, log_level: str = "warning") -> None:
    """Run the registry under uvicorn (httptools and uvloop when installed) until interrupted."""
    import os

    import uvicorn

    # create the schema and the bearer secret once, before workers race for them; a store that
    # cannot be used (no bucket, wrong credentials) stops the server here, with the store's reason
    from registry.state import Registry

    check_storage(settings)
    Registry(settings).meta.db.close()
    os.environ["ENARX_REGISTRY_CONFIG"] = settings.to_env()
    uvicorn.run("registry.app:factory", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, http=_pick("httptools", "auto"), loop=_pick("uvloop", "auto"),
                access_log=False, server_header=False)


def check_storage(settings: Settings) -> None:
    """Refuse to start on a bucket that is missing or refuses these credentials."""
    if not settings.storage:
        return
    from registry.objectstore import StoreConfigError, StoreUnavailable
    from registry.s3blobs import S3BlobStore

    try:
        S3BlobStore.from_settings(settings).store.check()
    except StoreConfigError as exc:
        raise AdminError(f"--storage {settings.storage}: {exc}") from None
    except StoreUnavailable as exc:  # a peer that cannot be reached (the CLI's exit 69), not bad input
        raise StoreUnavailable(f"--storage {settings.storage}: {exc}") from None


def _pick(module: str, fallback: str) -> str:
    import importlib.util

    return module if importlib.util.find_spec(module) else fallback


def data_path(value: str | None) -> Path:
    return Path(value or "registry-data").resolve()


@dataclass(frozen=True)
class MigrateReport:
    copied: int
    present: int  # already in the bucket with the right size
    bytes_copied: int


def migrate_storage(settings: Settings) -> MigrateReport:
    """Copy every blob of the data directory into the bucket ``settings.storage`` names.

    Each file is hashed before it is sent (a damaged file is reported, never uploaded under its
    name); blobs the bucket already holds with the same size are skipped, so a second run resumes.
    The data directory is left as it was: remove its ``blobs/`` once the registry runs on the bucket.
    """
    from registry.blobs import BlobStore
    from registry.s3blobs import S3BlobStore

    if not settings.storage:
        raise AdminError("migrate-storage needs --storage s3://BUCKET[/PREFIX]")
    check_storage(settings)
    source, target = BlobStore(settings.data_dir), S3BlobStore.from_settings(settings)
    copied = present = sent = 0
    for digest, _ in sorted(source.all_blobs()):
        path = source.blob_path(digest)
        size = path.stat().st_size
        if target.size(digest) == size:
            present += 1
            continue
        if _file_digest(path) != digest:
            raise AdminError(f"{path} does not hash to its name: not copied (run `registry gc` or restore it)")
        target.upload_file(path, digest)
        copied, sent = copied + 1, sent + size
    return MigrateReport(copied, present, sent)


def _file_digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
