"""Semantic Versioning 2.0.0 (https://semver.org): parse, order by precedence, bump.

Used by ``enarx-pkg version bump``. A bump gives the smallest version of that level greater than the
current one, so bumping a pre-release releases it (``1.3.0-rc.2`` -> ``minor`` -> ``1.3.0``), as npm
does; ``--pre LABEL`` asks for the next pre-release instead (``1.3.0-rc.2`` -> ``1.3.0-rc.3``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from enarx_pkg.errors import UsageError

# The grammar from semver.org (also the pattern in schemas/enarx-toml.schema.json).
_NUM = r"0|[1-9]\d*"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_LABEL = re.compile(rf"^{_PRE_ID}(?:\.{_PRE_ID})*$")
PARTS = ("major", "minor", "patch")
MAX_LENGTH = 256  # a version is a few characters; refuse before the regex sees a megabyte


@dataclass(frozen=True)
class Version:
    """One semantic version; ``pre`` holds the pre-release identifiers (numbers as ``int``)."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(str(i) for i in self.pre)
        return text + (f"+{self.build}" if self.build else "")

    def precedence(self) -> tuple[object, ...]:
        """A key ordering versions as semver §11 does (build metadata is ignored)."""
        # A release ranks above its pre-releases; numeric identifiers rank below alphanumeric ones,
        # and a longer list of identifiers ranks above its own prefix (tuple order gives that).
        ids = tuple((0, i, "") if isinstance(i, int) else (1, 0, i) for i in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, ids)


def parse(text: str) -> Version | None:
    """The version ``text`` spells, or None if it is not a semantic version 2.0."""
    match = _SEMVER.match(text) if len(text) <= MAX_LENGTH else None
    if not match:
        return None
    pre = tuple(_identifiers(match["pre"])) if match["pre"] else ()
    return Version(int(match["major"]), int(match["minor"]), int(match["patch"]), pre, match["build"] or "")


def _identifiers(text: str) -> list[int | str]:
    return [int(i) if i.isdigit() else i for i in text.split(".")]


def bump(current: Version, part: str, pre: str | None = None) -> Version:
    """The next ``part`` (major, minor, patch) version after ``current``; a pre-release of it with ``pre``."""
    if part not in PARTS:
        raise UsageError(f"{part!r} is not a part of a version", hint="use major, minor or patch")
    core = _next_core(current, part)
    if pre is None:
        return Version(*core)
    label = _label(pre)
    same_line = (current.major, current.minor, current.patch) == core and current.pre[:-1] == label
    last = current.pre[-1] if current.pre else None
    number = last + 1 if same_line and isinstance(last, int) else 1
    return Version(*core, pre=(*label, number))


def _next_core(v: Version, part: str) -> tuple[int, int, int]:
    # A pre-release of x.0.0 / x.y.0 / x.y.z is already "the next" major / minor / patch: release it.
    if part == "major":
        return (v.major, 0, 0) if v.pre and v.minor == v.patch == 0 else (v.major + 1, 0, 0)
    if part == "minor":
        return (v.major, v.minor, 0) if v.pre and v.patch == 0 else (v.major, v.minor + 1, 0)
    return (v.major, v.minor, v.patch) if v.pre else (v.major, v.minor, v.patch + 1)


def _label(pre: str) -> tuple[int | str, ...]:
    if len(pre) > MAX_LENGTH or not _LABEL.match(pre):
        raise UsageError(f"--pre {pre!r} is not a pre-release label",
                         hint="use letters, digits and '-', dot-separated, no leading zeros: e.g. rc, beta, alpha")
    return tuple(_identifiers(pre))


def next_version(current: str, target: str, pre: str | None = None) -> str:
    """Resolve ``version bump TARGET``: a part name or an explicit version, always newer than ``current``."""
    old = parse(current)
    if old is None:  # the loader checked it already; this is a guard, not a user path
        raise UsageError(f"the current version {current!r} is not a semantic version")
    if target in PARTS:
        new = bump(old, target, pre)
    else:
        if pre is not None:
            raise UsageError("--pre goes with major, minor or patch", hint=f"write the label into the version: "
                                                                         f"{target}-{pre}")
        parsed = parse(target)
        if parsed is None:
            raise UsageError(f"{target!r} is not major, minor, patch or a semantic version",
                             hint="e.g. 1.2.3, 2.0.0-rc.1 (semver.org)")
        new = parsed
    if new.precedence() <= old.precedence():
        raise UsageError(f"{new} is not newer than the current version {old}",
                         hint="a version only moves forward; edit Enarx.toml by hand to go back")
    return str(new)
