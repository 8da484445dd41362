# ruff: noqa: S608 -- SQL text is assembled only from constant column lists; values are always bound
"""Repository metadata: blobs, manifests, tags, repositories, tokens, audit log (uploads: upload_state).

One class over either database backend; every multi-row change is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from registry.db import Database
from registry.names import is_version_tag


@dataclass(frozen=True)
class ManifestRow:
    repo: str
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    subject: str | None
    created: float
    pushed_by: str | None
    annotations: dict[str, str]


@dataclass(frozen=True)
class TagRow:
    tag: str
    digest: str
    updated: float
    pushed_by: str | None
    yanked: bool


@dataclass(frozen=True)
class RepoRow:
    name: str
    created: float
    allow_overwrite: bool
    anonymous_pull: bool | None
    description: str | None
    license: str | None


class TagImmutable(Exception):
    """A version tag already names another manifest and the repository does not allow overwrite."""

    def __init__(self, repo: str, tag: str, current: str) -> None:
        super().__init__(f"{repo}:{tag} already points to {current}; version tags are immutable "
                         f"(push a new version, or ask an admin for "
                         f"'enarx-pkg registry repo {repo} --allow-overwrite')")


_MANIFEST_COLS = "repo, digest, media_type, size, artifact_type, subject, created, pushed_by, annotations"


def _manifest(r: tuple[Any, ...]) -> ManifestRow:
    return ManifestRow(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], r[7], json.loads(r[8] or "{}"))


def _tag(r: tuple[Any, ...]) -> TagRow:
    return TagRow(r[0], r[1], r[2], r[3], bool(r[4]))


class Metadata:
    """Queries the protocol handlers, the web pages and the admin commands share."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- blobs ---------------------------------------------------------------------------------
    def blob_in_repo(self, repo: str, digest: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM repo_blobs WHERE repo = ? AND digest = ?", (repo, digest)))

    def add_blob(self, repo: str, digest: str, size: int, actor: str, remote: str | None = None) -> None:
        now = time.time()
        # no repository row yet: a push interrupted before its manifest must not list an empty repository
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO blobs (digest, size, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       (digest, size, now))
            tx.execute("INSERT INTO repo_blobs (repo, digest, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       (repo, digest, now))
            self._audit(tx, actor, "blob.push", repo, None, digest, remote)

    def unlink_blob(self, repo: str, digest: str, actor: str) -> bool:
        with self.db.transaction() as tx:
            n = tx.execute("DELETE FROM repo_blobs WHERE repo = ? AND digest = ?", (repo, digest))
            if n:
                self._audit(tx, actor, "blob.delete", repo, None, digest, None)
        return bool(n)

    # -- manifests and tags --------------------------------------------------------------------
    def manifest(self, repo: str, digest: str) -> ManifestRow | None:
        rows = self.db.query(f"SELECT {_MANIFEST_COLS} FROM manifests WHERE repo = ? AND digest = ?", (repo, digest))
        return _manifest(rows[0]) if rows else None

    def resolve(self, repo: str, ref: str, by_digest: bool) -> tuple[str, str, int, bool] | None:
        """(digest, media type, size, yanked) of the manifest ``ref`` names in ``repo``, in one query."""
        if by_digest:
            rows = self.db.query("SELECT digest, media_type, size, 0 FROM manifests WHERE repo = ? AND digest = ?",
                                 (repo, ref))
        else:
            rows = self.db.query("SELECT m.digest, m.media_type, m.size, t.yanked FROM tags t JOIN manifests m "
                                 "ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = ? AND t.tag = ?",
                                 (repo, ref))
        if not rows:
            return None
        r = rows[0]
        return str(r[0]), str(r[1]), int(r[2]), bool(r[3])

    def tag(self, repo: str, tag: str) -> TagRow | None:
        rows = self.db.query("SELECT tag, digest, updated, pushed_by, yanked FROM tags WHERE repo = ? AND tag = ?",
                             (repo, tag))
        return _tag(rows[0]) if rows else None

    def put_manifest(self, row: ManifestRow, refs: list[str], tags: Sequence[str], remote: str | None) -> None:
        """Record a manifest, what it references, and move each of ``tags`` to it, in one transaction.

        A version tag (:func:`registry.names.is_version_tag`) may be created or re-pushed with the
        same digest but not moved, unless the repository allows overwrite: :class:`TagImmutable`
        otherwise, and then nothing of the push is recorded.
        """
        with self.db.transaction() as tx:
            repo = self._ensure_repo(tx, row.repo, row.created)
            tx.execute(
                f"INSERT INTO manifests ({_MANIFEST_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (row.repo, row.digest, row.media_type, row.size, row.artifact_type, row.subject, row.created,
                 row.pushed_by, json.dumps(row.annotations)))
            for ref in refs:
                tx.execute("INSERT INTO manifest_refs (repo, manifest, digest) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                           (row.repo, row.digest, ref))
            tx.execute("INSERT INTO blobs (digest, size, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       (row.digest, row.size, row.created))
            for tag in tags:
                self._set_tag(tx, row, tag, is_version_tag(tag) and not repo.allow_overwrite)
            self._describe(tx, repo, row)
            audited: Sequence[str | None] = tags or [None]
            for moved in audited:
                self._audit(tx, row.pushed_by or "anonymous", "manifest.push", row.repo, moved, row.digest, remote)

    def _set_tag(self, tx: Database, row: ManifestRow, tag: str, protect: bool) -> None:
        if protect:
            # insert-then-read is race free on both engines: a concurrent insert of the same key waits
            tx.execute("INSERT INTO tags (repo, tag, digest, updated, pushed_by, yanked) VALUES (?, ?, ?, ?, ?, 0) "
                       "ON CONFLICT DO NOTHING", (row.repo, tag, row.digest, row.created, row.pushed_by))
            current = tx.query("SELECT digest FROM tags WHERE repo = ? AND tag = ?", (row.repo, tag))
            if current and current[0][0] != row.digest:
                raise TagImmutable(row.repo, tag, str(current[0][0]))
            return
        tx.execute(
            "INSERT INTO tags (repo, tag, digest, updated, pushed_by, yanked) VALUES (?, ?, ?, ?, ?, 0) "
            "ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated = excluded.updated, "
            "pushed_by = excluded.pushed_by, yanked = 0",
            (row.repo, tag, row.digest, row.created, row.pushed_by))

    def _describe(self, tx: Database, repo: RepoRow, row: ManifestRow) -> None:
        if row.subject is not None:
            return  # signatures and attestations do not describe the repository
        desc = row.annotations.get("org.opencontainers.image.description")
        lic = row.annotations.get("org.opencontainers.image.licenses")
        if desc or lic:  # a description set by an admin (``registry repo --description``) stays
            tx.execute("UPDATE repos SET description = CASE WHEN description_pinned = 1 THEN description ELSE ? END, "
                       "license = ? WHERE name = ?", (desc or repo.description, lic or repo.license, row.repo))

    def delete_manifest(self, repo: str, digest: str, actor: str) -> bool:
        with self.db.transaction() as tx:
            n = tx.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, digest))
            tx.execute("DELETE FROM manifest_refs WHERE repo = ? AND manifest = ?", (repo, digest))
            tx.execute("DELETE FROM tags WHERE repo = ? AND digest = ?", (repo, digest))
            if n:
                self._audit(tx, actor, "manifest.delete", repo, None, digest, None)
        return bool(n)

    def delete_tag(self, repo: str, tag: str, actor: str) -> bool:
        with self.db.transaction() as tx:
            n = tx.execute("DELETE FROM tags WHERE repo = ? AND tag = ?", (repo, tag))
            if n:
                self._audit(tx, actor, "tag.delete", repo, tag, None, None)
        return bool(n)

    def tags(self, repo: str, last: str | None, limit: int | None, include_yanked: bool = False) -> list[TagRow]:
        sql = "SELECT tag, digest, updated, pushed_by, yanked FROM tags WHERE repo = ?"
        params: list[Any] = [repo]
        if not include_yanked:
            sql += " AND yanked = 0"
        if last:
            sql += f" AND tag COLLATE {self.db.binary} > ?"
            params.append(last)
        sql += f" ORDER BY tag COLLATE {self.db.binary}"  # byte order: what clients paging with last= expect
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_tag(r) for r in self.db.query(sql, params)]

    def recent_tags(self, repo: str, offset: int, limit: int, include_yanked: bool = False) -> tuple[int, list[TagRow]]:
        """(how many tags, one page of them newest first): a repository page never loads every tag."""
        where = "WHERE repo = ?" + ("" if include_yanked else " AND yanked = 0")
        total = int(self.db.query(f"SELECT COUNT(*) FROM tags {where}", (repo,))[0][0])
        rows = self.db.query(f"SELECT tag, digest, updated, pushed_by, yanked FROM tags {where} "
                             "ORDER BY updated DESC, tag LIMIT ? OFFSET ?", (repo, limit, offset))
        return total, [_tag(r) for r in rows]

    def tags_of(self, repo: str, digest: str) -> list[TagRow]:
        rows = self.db.query("SELECT tag, digest, updated, pushed_by, yanked FROM tags WHERE repo = ? AND digest = ? "
                             "ORDER BY tag", (repo, digest))
        return [_tag(r) for r in rows]

    def set_yanked(self, repo: str, tag: str, yanked: bool, actor: str) -> bool:
        with self.db.transaction() as tx:
            n = tx.execute("UPDATE tags SET yanked = ? WHERE repo = ? AND tag = ?", (int(yanked), repo, tag))
            if n:
                self._audit(tx, actor, "tag.yank" if yanked else "tag.unyank", repo, tag, None, None)
        return bool(n)

    def referrers(self, repo: str, subject: str, artifact_type: str | None) -> list[ManifestRow]:
        sql = f"SELECT {_MANIFEST_COLS} FROM manifests WHERE repo = ? AND subject = ?"
        params: list[Any] = [repo, subject]
        if artifact_type is not None:
            sql += " AND artifact_type = ?"
            params.append(artifact_type)
        return [_manifest(r) for r in self.db.query(sql + " ORDER BY created, digest", params)]

    # -- repositories --------------------------------------------------------------------------
    def _ensure_repo(self, tx: Database, name: str, now: float) -> RepoRow:
        tx.execute("INSERT INTO repos (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING", (name, now))
        repo = self.repo(name)
        assert repo is not None
        return repo

    def repo(self, name: str) -> RepoRow | None:
        rows = self.db.query("SELECT name, created, allow_overwrite, anonymous_pull, description, license "
                             "FROM repos WHERE name = ?", (name,))
        if not rows:
            return None
        r = rows[0]
        return RepoRow(r[0], r[1], bool(r[2]), None if r[3] is None else bool(r[3]), r[4], r[5])

    def repos(self, last: str | None = None, limit: int | None = None, query: str | None = None) -> list[RepoRow]:
        sql = "SELECT name, created, allow_overwrite, anonymous_pull, description, license FROM repos WHERE 1 = 1"
        params: list[Any] = []
        if last:
            sql += f" AND name COLLATE {self.db.binary} > ?"
            params.append(last)
        if query:
            sql += " AND (LOWER(name) LIKE ? OR LOWER(COALESCE(description, '')) LIKE ?)"
            pattern = "%" + query.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
            params += [pattern, pattern]
        sql += f" ORDER BY name COLLATE {self.db.binary}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [RepoRow(r[0], r[1], bool(r[2]), None if r[3] is None else bool(r[3]), r[4], r[5])
                for r in self.db.query(sql, params)]

    def set_repo(self, name: str, actor: str, **fields: Any) -> None:
        allowed = {"allow_overwrite", "anonymous_pull", "description", "license"}
        with self.db.transaction() as tx:
            self._ensure_repo(tx, name, time.time())
            for key, value in fields.items():
                if key not in allowed:
                    raise ValueError(f"unknown repository setting {key}")
                tx.execute(f"UPDATE repos SET {key} = ? WHERE name = ?", (value, name))  # key is allow-listed above
                if key == "description":
                    tx.execute("UPDATE repos SET description_pinned = 1 WHERE name = ?", (name,))
            self._audit(tx, actor, "repo.settings", name, None, None, json.dumps(fields))

    # -- config and audit ----------------------------------------------------------------------
    def config(self, key: str) -> str | None:
        rows = self.db.query("SELECT value FROM config WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def config_default(self, key: str, value: str) -> str:
        """Set ``key`` unless some replica already did; return the value everyone agrees on."""
        self.db.execute("INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, value))
        out = self.config(key)
        assert out is not None
        return out

    def set_config(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                        "excluded.value", (key, value))

    def _audit(self, tx: Database, actor: str, action: str, repo: str | None, ref: str | None,
               digest: str | None, remote: str | None) -> None:
        tx.execute("INSERT INTO audit (at, actor, action, repo, ref, digest, remote) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (time.time(), actor, action, repo, ref, digest, remote))

    def audit(self, limit: int = 100) -> list[tuple[Any, ...]]:
        return self.db.query("SELECT at, actor, action, repo, ref, digest, remote FROM audit ORDER BY id DESC LIMIT ?",
                             (limit,))
