"""What the build needs to know about its source: git revision, commit time, dirtiness, input digests.

Everything is best effort: a source directory that is not in git (or a machine without git) gives
``None`` values, never an error.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from enarx_pkg._internal import digest

if TYPE_CHECKING:
    from enarx_pkg.manifest.model import Build

MAX_INPUTS = 10_000
SKIP_DIRS = frozenset({".git", "target", "__pycache__", "node_modules"})
GIT_TIMEOUT_S = 20


@dataclass(frozen=True)
class SourceInfo:
    revision: str | None = None  # HEAD commit
    commit_time: int | None = None  # of the last commit that touched the project directory
    dirty: bool = False
    repository: str | None = None  # origin URL, without credentials


def describe(project: Path) -> SourceInfo:
    """Git facts about ``project`` (nothing if it is not inside a work tree)."""
    revision = _git(project, "rev-parse", "HEAD")
    if revision is None:
        return SourceInfo()
    when = _git(project, "log", "-1", "--format=%ct", "--", ".")
    status = _git(project, "status", "--porcelain", "--", ".", ":(exclude)target")
    return SourceInfo(revision, int(when) if when and when.isdigit() else None, bool(status),
                      _strip_credentials(_git(project, "remote", "get-url", "origin")))


def input_digests(project: Path, spec: Build, source: SourceInfo,
                  known: dict[Path, str] | None = None) -> list[dict[str, str]]:
    """Digests of what went into the build: the recipe's sources, else the project's tracked files.

    ``known`` maps paths already hashed (the module) to their digests, so big files are hashed once.
    """
    known = known or {}
    if spec.sources:
        names = ["Enarx.toml", *spec.sources]
    elif source.revision is not None:
        listed = _git(project, "ls-files", "-z", "--", ".") or ""
        names = [n for n in listed.split("\0") if n]
    else:
        names = _walk(project)
    out = []
    for name in sorted(set(names))[:MAX_INPUTS]:
        path = project / name
        if path.is_file() and not path.is_symlink():
            dg = known.get(path) or digest.of_file(path)[0]
            out.append({"path": Path(name).as_posix(), "digest": dg})
    return out


def _walk(project: Path) -> list[str]:
    names: list[str] = []
    for root, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        names.extend(os.path.relpath(os.path.join(root, f), project) for f in files)
        if len(names) >= MAX_INPUTS:
            break
    return names


def _git(cwd: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=GIT_TIMEOUT_S,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", "replace").strip()


def _strip_credentials(url: str | None) -> str | None:
    """Never record a token embedded in a remote URL (https://user:token@host/...)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def as_json(info: SourceInfo) -> dict[str, Any]:
    return {"repository": info.repository, "revision": info.revision, "dirty": info.dirty}
