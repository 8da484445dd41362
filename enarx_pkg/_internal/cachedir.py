"""Where enarx-pkg keeps per-user caches (compiled modules, toolchain caches).

``ENARX_PKG_CACHE_DIR`` wins, then ``$XDG_CACHE_HOME/enarx-pkg``, then ``~/.cache/enarx-pkg``.
Everything under it can be deleted at any time; entries are checked before they are trusted.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """The cache directory (or a sub-directory of it), created with mode 0700."""
    base = os.environ.get("ENARX_PKG_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = os.path.join(xdg, "enarx-pkg") if xdg else os.path.join(Path.home(), ".cache", "enarx-pkg")
    path = Path(base, *parts)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
