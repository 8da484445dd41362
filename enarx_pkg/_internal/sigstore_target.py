"""What ``sign``/``verify`` act on: an OCI layout, a project directory, or a remote reference.

A project directory (one with ``Enarx.toml``) supplies ``[signing]`` defaults and holds the layout
``build`` wrote somewhere beneath it; a remote reference is pulled (with its referrers) into a
temporary layout first.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enarx_pkg.errors import NotFoundError, UsageError
from enarx_pkg.package import Layout

MAX_SEARCH_DEPTH = 3


@dataclass(frozen=True)
class Target:
    layout: Layout
    project: Path | None  # the directory holding Enarx.toml, when given one
    remote: str | None  # the reference pulled, when given one
    digest: str | None = None  # the manifest digest the remote reference resolved to


@contextlib.contextmanager
def open_target(target: str) -> Iterator[Target]:
    """Open ``target`` as a layout; pull a remote reference into a temporary one for the block."""
    path = Path(target)
    if (path / "oci-layout").is_file():
        yield Target(Layout.open(path), None, None)
        return
    if (path / "Enarx.toml").is_file():
        yield Target(Layout.open(find_layout(path)), path, None)
        return
    if path.exists() or not _looks_like_ref(target):
        raise NotFoundError(f"{target} is neither an OCI image layout nor a project directory with Enarx.toml")
    pull = _module("enarx_pkg.pull").pull
    with tempfile.TemporaryDirectory(prefix="enarx-pkg-sign.") as tmp:
        result = pull(target, Path(tmp) / "layout")
        yield Target(Layout.open(Path(tmp) / "layout"), None, target, result.manifest_digest)


def find_layout(project: Path) -> Path:
    """The one OCI layout under a project directory (where ``build`` put it)."""
    found = sorted({p.parent for depth in range(1, MAX_SEARCH_DEPTH + 1)
                    for p in project.glob("/".join(["*"] * depth) + "/oci-layout")})
    if len(found) != 1:
        raise NotFoundError(f"{project} holds {len(found)} OCI layouts; name one",
                            hint="run `enarx-pkg build` first, or pass the layout directory")
    return found[0]


def _looks_like_ref(text: str) -> bool:
    return "/" in text and not text.startswith((".", "/"))


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError("remote references are not available in this build",
                         hint="pull the package into a layout with skopeo or oras and give its path") from None


def push_signatures(target: Target, layout: Layout) -> None:
    """Publish a pulled layout (now with new referrers) back to the reference it came from."""
    assert target.remote is not None
    reference, publish = _module("enarx_pkg.oci.reference"), _module("enarx_pkg.publish")
    ref = reference.parse(target.remote)
    publish.publish(layout, publish.Target(ref.registry, ref.repository, None), source_ref=target.digest)


def signing_defaults(project: Path | None) -> Any:
    """The ``[signing]`` table of a project's Enarx.toml (None without a project)."""
    if project is None:
        return None
    from enarx_pkg import manifest

    return manifest.load(project / "Enarx.toml").signing  # type: ignore[attr-defined]
