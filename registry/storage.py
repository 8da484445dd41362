"""Where blob bytes live: one interface, two implementations.

- :class:`registry.blobs.BlobStore`: files under the data directory (the embedded default);
- :class:`registry.s3blobs.S3BlobStore`: an S3-compatible object store (``--storage s3://BUCKET[/PREFIX]``),
  so replicas share nothing but PostgreSQL and the bucket.

Upload *state* (which parts make up an upload, how far it got) is in the metadata database for
both (:mod:`registry.upload_state`); a store only keeps bytes: committed blobs under their digest,
and one part per request that sent bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.responses import Response

    from registry.settings import Settings
    from registry.upload_state import Part


class PartSink(Protocol):
    """One request's bytes on their way into the store."""

    def write(self, data: bytes | bytearray) -> None: ...

    def close(self) -> None:
        """All bytes written are stored (the part now holds exactly what was written)."""

    def abort(self) -> None:
        """Nothing of this part is kept."""


class Storage(Protocol):
    """What the registry needs from a blob store."""

    # True: a part's bytes are durable as they are written, so a long request may commit what it
    # has on the way (a crash loses little). False: a part exists only once its request ended.
    checkpoints: bool
    # True: writes and reads go over the network; call them from a worker thread, not the event loop.
    remote: bool

    def has(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int | None: ...

    def read(self, digest: str, limit: int) -> bytes | None: ...

    def write_small(self, digest: str, data: bytes) -> None: ...

    def blob_response(self, digest: str, range_header: str | None, headers: dict[str, str]) -> Response | None:
        """The response serving a committed blob, or None if the store does not have it."""

    def new_part(self, upload_id: str) -> str: ...

    def open_part(self, name: str) -> PartSink: ...

    def assemble(self, parts: list[Part], size: int) -> tuple[Any, str]:
        """The upload's committed bytes in one place, and the sha256 digest of exactly those bytes."""

    def commit(self, assembled: Any, digest: str) -> None:
        """Make the assembled bytes the blob ``digest`` (the caller checked the digest)."""

    def discard(self, assembled: Any) -> None: ...

    def discard_parts(self, names: list[str]) -> None: ...

    def delete_blob(self, digest: str) -> None: ...

    def all_blobs(self) -> list[tuple[str, float]]: ...

    def sweep(self, older_than: float, in_progress: set[str], dry_run: bool = False) -> int:
        """Remove upload leftovers older than ``older_than`` seconds, except parts of the uploads named in
        ``in_progress``; returns how many."""


def open_storage(settings: Settings) -> Storage:
    """The store named by the settings: the data directory, or ``s3://`` when ``settings.storage`` says so."""
    if settings.storage:
        from registry.s3blobs import S3BlobStore

        return S3BlobStore.from_settings(settings)
    from registry.blobs import BlobStore

    return BlobStore(settings.data_dir)
