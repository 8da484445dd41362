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
    pull = _pull_function()
    with tempfile.TemporaryDirectory(prefix="enarx-pkg-verify.") as tmp:
        pull(target, Path(tmp))
        yield Target(Layout.open(Path(tmp)), None, target)


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


def _pull_function() -> Any:
    try:
        module = importlib.import_module("enarx_pkg.pull")
    except ImportError:
        raise UsageError("pulling remote references is not available in this build",
                         hint="pull the package into a layout with skopeo or oras and give its path") from None
    return module.pull


def signing_defaults(project: Path | None) -> Any:
    """The ``[signing]`` table of a project's Enarx.toml (None without a project)."""
    if project is None:
        return None
    from enarx_pkg import manifest

    return manifest.load(project / "Enarx.toml").signing  # type: ignore[attr-defined]
