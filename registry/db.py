"""The metadata store's two backends behind one small interface: SQLite (WAL) and PostgreSQL.

SQL is written once with ``?`` placeholders in the dialect both engines share (``ON CONFLICT``,
``BIGINT``, ``DOUBLE PRECISION``); the PostgreSQL backend rewrites placeholders to ``%s``.
Each thread keeps its own connection, so no request pays for connection set-up.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, size BIGINT NOT NULL, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS repo_blobs (repo TEXT NOT NULL, digest TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (repo, digest));
CREATE TABLE IF NOT EXISTS repos (name TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL,
    allow_overwrite INTEGER NOT NULL DEFAULT 0, anonymous_pull INTEGER, description TEXT, license TEXT);
CREATE TABLE IF NOT EXISTS manifests (repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL,
    size BIGINT NOT NULL, artifact_type TEXT, subject TEXT, created DOUBLE PRECISION NOT NULL, pushed_by TEXT,
    annotations TEXT, PRIMARY KEY (repo, digest));
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests (repo, subject);
CREATE TABLE IF NOT EXISTS manifest_refs (repo TEXT NOT NULL, manifest TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (repo, manifest, digest));
CREATE INDEX IF NOT EXISTS manifest_refs_digest ON manifest_refs (digest);
CREATE TABLE IF NOT EXISTS tags (repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL, pushed_by TEXT, yanked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (repo, tag));
CREATE TABLE IF NOT EXISTS upload_sessions (id TEXT PRIMARY KEY, repo TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    size BIGINT NOT NULL DEFAULT 0, closing DOUBLE PRECISION NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS upload_parts (upload_id TEXT NOT NULL, start BIGINT NOT NULL, name TEXT NOT NULL,
    length BIGINT NOT NULL, digest TEXT NOT NULL, sealed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (upload_id, start));
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION,
    revoked DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (id {serial}, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, repo TEXT, ref TEXT, digest TEXT, remote TEXT);
"""


# columns added after a table was first released: (table, column, declaration), added where missing
COLUMNS = [("repos", "description_pinned", "INTEGER NOT NULL DEFAULT 0"),
           ("upload_sessions", "touched", "DOUBLE PRECISION NOT NULL DEFAULT 0")]


class Database(Protocol):
    """What the metadata layer needs from an engine."""

    kind: str
    binary: str  # the collation that compares strings byte by byte, for listings clients page through

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def transaction(self) -> contextlib.AbstractContextManager[Database]: ...

    def close(self) -> None: ...


def open_database(url: str) -> Database:
    """``sqlite:///path`` or ``postgresql://...``; creates the schema if it is missing."""
    if url.startswith("sqlite:///"):
        return SqliteDatabase(Path(url[len("sqlite:///"):]))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise ValueError("database URL must start with sqlite:/// or postgresql://")


class SqliteDatabase:
    kind = "sqlite"
    binary = "BINARY"

    def __init__(self, path: Path) -> None:
        self.path = path
        # created 0600 before SQLite opens it (its -wal/-shm files copy this mode): it holds the
        # bearer-token signing secret, which would let any local reader mint admin tokens
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._local = threading.local()
        with self.transaction() as tx:
            for stmt in _statements("INTEGER PRIMARY KEY AUTOINCREMENT"):
                tx.execute(stmt)
            for table, column, decl in COLUMNS:
                if column not in {r[1] for r in tx.query(f"PRAGMA table_info({table})")}:
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn().execute(sql, tuple(params)).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn().execute(sql, tuple(params)).rowcount

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SqliteDatabase]:
        conn = self._conn()
        if self._local.depth:
            yield self
            return
        # IMMEDIATE takes the write lock up front, so two writers never deadlock upgrading a read lock
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresDatabase:
    kind = "postgresql"
    binary = '"C"'  # the database default may be a natural-language collation (en_US: "a" < "B", "_" < "-")

    def __init__(self, url: str) -> None:
        import psycopg  # only when PostgreSQL is used

        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        self._sql_cache: dict[str, str] = {}
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(4242)")  # replicas starting together create the schema once
            for stmt in _statements("BIGSERIAL PRIMARY KEY"):
                tx.execute(stmt)
            for table, column, decl in COLUMNS:
                tx.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {decl}")

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._psycopg.connect(self.url, autocommit=True)
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def _sql(self, sql: str) -> str:
        out = self._sql_cache.get(sql)
        if out is None:
            out = self._sql_cache[sql] = sql.replace("?", "%s")
        return out

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn().cursor() as cur:
            cur.execute(self._sql(sql), tuple(params), prepare=True)
            return list(cur.fetchall())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._conn().cursor() as cur:
            cur.execute(self._sql(sql), tuple(params))
            return int(cur.rowcount)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        conn = self._conn()
        if self._local.depth:
            yield self
            return
        self._local.depth = 1
        try:
            with conn.transaction():
                yield self
        finally:
            self._local.depth = 0

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _statements(serial: str) -> list[str]:
    return [s.strip() for s in SCHEMA.replace("{serial}", serial).split(";") if s.strip()]
