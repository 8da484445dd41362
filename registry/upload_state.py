"""Upload sessions as database rows, so every worker and replica sees one truth about an upload.

An upload is a row (``upload_sessions``: repository, committed size, closing lease) and an ordered
list of parts (``upload_parts``). Each request writes its bytes to a part of its own that no other
request can touch, and makes them part of the upload only by a compare-and-set on the committed
size: two requests racing for the same range cannot both win, and the loser's bytes never join the
upload. ``close`` takes the upload away from writers before it is assembled and hashed. Nothing of
the state lives in process memory, which is what lets parts later live in object storage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from registry.db import Database

if TYPE_CHECKING:
    from registry.storage import Storage

CLOSING_LEASE_S = 300.0  # a finisher that died mid-assembly frees the upload for a retry after this


@dataclass(frozen=True)
class Session:
    repo: str
    size: int
    closing: bool


@dataclass(frozen=True)
class Part:
    start: int
    name: str
    length: int
    digest: str  # sha256 hex of the part's committed bytes, computed by the request that wrote them
    sealed: bool  # its writer finished: the part file holds exactly ``length`` bytes


class _Lost(Exception):
    pass


class UploadState:
    """Sessions and parts over either database backend."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self, upload_id: str, repo: str) -> None:
        self.db.execute("INSERT INTO upload_sessions (id, repo, created) VALUES (?, ?, ?)",
                        (upload_id, repo, time.time()))

    def get(self, upload_id: str) -> Session | None:
        rows = self.db.query("SELECT repo, size, closing FROM upload_sessions WHERE id = ?", (upload_id,))
        if not rows:
            return None
        repo, size, closing = rows[0]
        return Session(str(repo), int(size), bool(closing) and closing > time.time() - CLOSING_LEASE_S)

    def commit(self, upload_id: str, part: Part, committed_before: int) -> bool:
        """Make ``part`` (new, or grown from ``committed_before`` bytes) part of the upload.

        True only if the upload still ends where this writer last saw it end, and is not closing.
        """
        end_before = part.start + committed_before
        try:
            return self._commit(upload_id, part, committed_before, end_before)
        except _Lost:
            return False

    def _commit(self, upload_id: str, part: Part, committed_before: int, end_before: int) -> bool:
        with self.db.transaction() as tx:
            n = tx.execute("UPDATE upload_sessions SET size = ?, touched = ? WHERE id = ? AND size = ? AND closing = 0",
                           (part.start + part.length, time.time(), upload_id, end_before))
            if n != 1:
                return False
            if committed_before == 0:
                tx.execute("INSERT INTO upload_parts (upload_id, start, name, length, digest, sealed) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (upload_id, part.start, part.name, part.length, part.digest, int(part.sealed)))
            elif tx.execute("UPDATE upload_parts SET length = ?, digest = ?, sealed = ? WHERE upload_id = ? AND "
                            "start = ? AND name = ?", (part.length, part.digest, int(part.sealed), upload_id,
                                                       part.start, part.name)) != 1:
                raise _Lost  # the row is no longer this writer's: roll the size back too
        return True

    def retract(self, upload_id: str, part: Part) -> bool:
        """Undo this writer's part while nothing was committed after it (a body shorter than announced)."""
        with self.db.transaction() as tx:
            n = tx.execute("UPDATE upload_sessions SET size = ? WHERE id = ? AND size = ? AND closing = 0",
                           (part.start, upload_id, part.start + part.length))
            if n == 1:
                tx.execute("DELETE FROM upload_parts WHERE upload_id = ? AND start = ? AND name = ?",
                           (upload_id, part.start, part.name))
        return n == 1

    def close(self, upload_id: str, size: int) -> list[Part] | None:
        """Take the upload from writers if it has exactly ``size`` bytes; its parts in order, else None."""
        now = time.time()
        with self.db.transaction() as tx:
            n = tx.execute("UPDATE upload_sessions SET closing = ? WHERE id = ? AND size = ? AND "
                           "(closing = 0 OR closing < ?)", (now, upload_id, size, now - CLOSING_LEASE_S))
            if n != 1:
                return None
            return self.parts(upload_id)

    def parts(self, upload_id: str) -> list[Part]:
        rows = self.db.query("SELECT start, name, length, digest, sealed FROM upload_parts WHERE upload_id = ? "
                             "ORDER BY start", (upload_id,))
        return [Part(int(r[0]), str(r[1]), int(r[2]), str(r[3]), bool(r[4])) for r in rows]

    def remove(self, upload_id: str) -> list[str]:
        """Forget the upload; returns the names of its parts, for the caller to delete."""
        with self.db.transaction() as tx:
            names = [str(r[0]) for r in tx.query("SELECT name FROM upload_parts WHERE upload_id = ?", (upload_id,))]
            tx.execute("DELETE FROM upload_parts WHERE upload_id = ?", (upload_id,))
            tx.execute("DELETE FROM upload_sessions WHERE id = ?", (upload_id,))
        return names

    def ids(self) -> set[str]:
        return {str(r[0]) for r in self.db.query("SELECT id FROM upload_sessions")}

    def stale(self, cutoff: float) -> list[str]:
        """Uploads neither opened nor added to since ``cutoff`` (a long upload still sending is kept)."""
        return [str(r[0]) for r in self.db.query("SELECT id FROM upload_sessions WHERE created < ? AND touched < ?",
                                                 (cutoff, cutoff))]


def sweep(sessions: UploadState, store: Storage, grace: float, dry_run: bool = False) -> int:
    """Remove uploads idle for longer than ``grace`` and upload leftovers (a crashed writer's parts, on
    any replica) older than that; how many. Old parts of an upload still in progress stay: they hold
    its first bytes."""
    stale = sessions.stale(time.time() - grace)
    in_progress = sessions.ids() - set(stale)
    if not dry_run:
        for upload_id in stale:
            store.discard_parts(sessions.remove(upload_id))
    return len(stale) + store.sweep(grace, in_progress, dry_run)
