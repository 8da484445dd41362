"""Enarx.toml: load, check and normalise it (DESIGN §3).

``load``/``loads`` accept both Enarx dialects plus the enarx-pkg sections and return the frozen
:class:`~enarx_pkg.manifest.model.EnarxToml`, or raise :class:`ManifestError` listing every problem
with its file, line, column and key path. ``to_toml`` writes the normalised form.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from enarx_pkg.errors import NotFoundError
from enarx_pkg.manifest._serialise import to_dict, to_toml
from enarx_pkg.manifest.model import EnarxToml
from enarx_pkg.manifest.problems import ManifestError, Problem

__all__ = ["MAX_BYTES", "MAX_DEPTH", "EnarxToml", "ManifestError", "Problem", "load", "loads", "to_dict",
           "to_toml"]

MAX_BYTES = 1 << 20  # an Enarx.toml is a few KiB; anything near this is a mistake or an attack
MAX_DEPTH = 16  # nesting of tables/arrays (attestation policies are the deepest, ~4)
FILENAME = "Enarx.toml"


def load(path: str | Path) -> EnarxToml:
    """Load ``path`` (an Enarx.toml, or a directory containing one)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    try:
        with path.open("rb") as f:
            size = _size(f.fileno())
            if size > MAX_BYTES:  # refuse before reading, let alone parsing
                raise _too_big(str(path), size)
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file", hint="run `enarx-pkg init` to create one") from None
    except IsADirectoryError:
        raise NotFoundError(f"{path}: is a directory") from None
    except OSError as exc:
        raise ManifestError([Problem(str(path), None, None, "", f"cannot read: {exc.strerror}")]) from None
    return loads(data, path=path)


def loads(text: str | bytes, path: str | Path | None = None) -> EnarxToml:
    """Parse and check Enarx.toml text; ``path`` is used in messages and kept on the model."""
    from enarx_pkg.manifest._normalise import Context, build_model
    from enarx_pkg.manifest._positions import locate
    from enarx_pkg.manifest._schema import check

    file = str(path) if path is not None else FILENAME
    doc, source = _parse(text, file)
    ctx = Context(file, locate(source))
    problems = check(doc, file, ctx.positions)
    if problems:
        raise ManifestError(problems)
    model = build_model(doc, ctx, Path(path) if path is not None else None)
    if ctx.problems:
        raise ManifestError(ctx.problems)
    return model


def _parse(text: str | bytes, file: str) -> tuple[dict[str, Any], str]:
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_BYTES:
        raise _too_big(file, size)
    source = _decode(text, file) if isinstance(text, bytes) else text
    try:
        doc = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax(file, str(exc)) from None
    except RecursionError:
        raise ManifestError([Problem(file, None, None, "", "nested too deeply",
                                     expected=f"at most {MAX_DEPTH} levels")]) from None
    if not doc:
        raise ManifestError([Problem(file, 1, 1, "", "the file has no settings",
                                     expected="at least [package] and [build]; `enarx-pkg init` writes them")])
    if _depth(doc) > MAX_DEPTH:
        raise ManifestError([Problem(file, None, None, "", "nested too deeply",
                                     expected=f"at most {MAX_DEPTH} levels")])
    return doc, source


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ManifestError([Problem(file, line, column, "", f"byte 0x{data[exc.start]:02x} is not UTF-8",
                                     expected="a UTF-8 text file")]) from None


def _syntax(file: str, message: str) -> ManifestError:
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    line, column = (int(match[1]), int(match[2])) if match else (None, None)
    what = message[: match.start()] if match else re.sub(r"\s*\(at end of document\)$", "", message)
    return ManifestError([Problem(file, line, column, "", f"invalid TOML: {what}")])


def _too_big(file: str, size: int) -> ManifestError:
    return ManifestError([Problem(file, None, None, "", f"the file is {size} bytes, too large to be an Enarx.toml",
                                  expected=f"at most {MAX_BYTES} bytes")])


def _size(fd: int) -> int:
    import os
    import stat

    st = os.fstat(fd)
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _depth(value: Any) -> int:
    """Deepest nesting of tables and arrays, without recursion (the input is untrusted)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest
