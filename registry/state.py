"""The registry's shared state for one process: settings, metadata, blob store, authorizer, caches."""

from __future__ import annotations

import logging
import stat
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Generic, TypeVar

from registry.auth import Authorizer
from registry.db import open_database
from registry.meta import Metadata
from registry.settings import Settings
from registry.signatures import Signature, Trust
from registry.storage import open_storage
from registry.upload_state import UploadState

log = logging.getLogger("registry")
K = TypeVar("K")
V = TypeVar("V")


def make_private(data_dir: Path) -> None:
    """Tighten a data dir and database made group/other-readable (before the 0700/0600 fix): 0700 / 0600.

    Says so in one line, so an operator knows the files were exposed until now.
    """
    fixed = []
    for path, mode in [(data_dir, 0o700), *((f, 0o600) for f in sorted(data_dir.glob("registry.db*")))]:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            path.chmod(mode)
            fixed.append(f"{path.name} {stat.S_IMODE(st.st_mode):o}->{mode:o}")
    if fixed:
        log.warning("registry: %s was readable by group/other; tightened %s", data_dir, ", ".join(fixed))


class ManifestCache:
    """Manifest bytes by digest. Content-addressed, so never stale; bounded in total bytes.

    Locked: with a remote store, manifests are read (and cached) on worker threads.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            data = self._items.get(digest)
            if data is not None:
                self._items.move_to_end(digest)
            return data

    def put(self, digest: str, data: bytes) -> None:
        with self._lock:
            if digest in self._items:
                return
            self._items[digest] = data
            self.total += len(data)
            while self.total > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self.total -= len(old)

    def drop(self, digest: str) -> None:
        with self._lock:
            data = self._items.pop(digest, None)
            if data is not None:
                self.total -= len(data)


class LruCache(Generic[K, V]):
    """A dict that forgets its least recently used entries past ``max_items``."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class Registry:
    """Everything a request handler needs, built once per worker process."""

    def __init__(self, settings: Settings) -> None:
        # private: the metadata database holds the bearer-token signing secret and token hashes
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(settings.data_dir)
        self.settings = settings
        self.meta = Metadata(open_database(settings.db_url))
        self.sessions = UploadState(self.meta.db)
        self.store = open_storage(settings)
        self.auth = Authorizer(self.meta, settings)
        self.manifests = ManifestCache()
        self.trust = Trust.load(settings.trusted_keys, settings.trusted_identities, settings.trust_config)
        # referrer digest -> what the pages show; content-addressed and the trust is fixed per process
        self.signatures: LruCache[str, Signature] = LruCache(4096)
        self._last_sweep = 0.0

    def sweep_due(self) -> bool:
        """True at most once per ``sweep_interval``: time to remove abandoned uploads."""
        now = time.monotonic()
        if now - self._last_sweep < self.settings.sweep_interval:
            return False
        self._last_sweep = now
        return True

    def manifest_bytes(self, digest: str) -> bytes | None:
        data = self.manifests.get(digest)
        if data is None:
            data = self.store.read(digest, self.settings.max_manifest_bytes)
            if data is not None:
                self.manifests.put(digest, data)
        return data
