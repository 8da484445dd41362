"""Option values converted without pydantic, for the plain types enarx-pkg's options use.

typer 0.29 converts every option value that is not a flag through a pydantic ``TypeAdapter``;
importing pydantic and building the first adapter costs about 100 ms a start, a quarter of
packaging a 50 MB module (``bench/build.py``). enarx-pkg's options are ``str``, ``Path``, ``int``,
``float``, ``bool`` and lists of them, none with range or path checks. :func:`install` gives each
such parameter a converter that returns what the adapter would for a well-formed value, and hands
anything else (``--port abc``, a value of another type) to typer's own conversion, so refusals come
out worded exactly as typer words them.

It relies on two attributes of typer's parameters (``type_descriptor`` and ``_runtime_param``,
which ``get_runtime_param`` fills on first use). typer is pinned in requirements.txt; should they
change, :func:`install` leaves the parameter alone: slower, never different.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# ParameterInfo attributes that make typer check more than the type (all off in enarx-pkg today)
_CHECKS = ("min", "max", "clamp", "parser", "formats", "exists", "resolve_path", "allow_dash", "path_type",
           "writable")


class _NotPlain(Exception):
    """This value needs typer's own conversion (it may be refused, with typer's message)."""


def install(command: Any, ctx: Any) -> None:
    """Give every plain parameter of ``command`` (and of its sub-commands) the fast converter.

    ``ctx`` is the context ``command`` runs in, or its parent's (None: not known yet): click makes
    the ``--help`` option per context, and it is a parameter like the others."""
    if ctx is not None and ctx.command is not command:
        ctx = type(ctx)(command, parent=ctx, **command.context_settings)  # as click will make it
    help_option = command.get_help_option(ctx) if ctx is not None else None
    for param in (*getattr(command, "params", ()), *([help_option] if help_option else [])):
        _install(param)
    for sub in getattr(command, "commands", {}).values():
        install(sub, ctx)


def _install(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", False) is not None:
        return  # not a typer parameter, or its converter is already chosen
    info = descriptor.parameter_info
    if any(getattr(info, name, None) not in (None, False) for name in _CHECKS):
        return
    if not (getattr(info, "file_okay", True) and getattr(info, "dir_okay", True)):
        return
    annotation = descriptor.annotation
    many = bool(descriptor.is_list)
    item = get_args(annotation)[0] if many and len(get_args(annotation)) == 1 else annotation
    convert = _CONVERTERS.get(item)
    if convert is not None:
        param._runtime_param = _Plain(convert, many)


class _Plain:
    """Stands in for typer's runtime parameter: ``coerce(value, param, ctx)`` as typer calls it."""

    def __init__(self, convert: Callable[[Any], Any], many: bool) -> None:
        self.convert, self.many = convert, many

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        try:
            if self.many and isinstance(value, (list, tuple)):
                return [self.convert(v) for v in value]
            if not self.many and not multi:
                return self.convert(value)
        except _NotPlain:
            pass
        param._runtime_param = None  # typer builds its own (pydantic) converter and gives its verdict
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _NotPlain


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _NotPlain


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    raise _NotPlain


def _float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _FLOAT.fullmatch(value):
        return float(value)
    raise _NotPlain


def _path(value: Any) -> Path:
    """``Path(value)``; an existing path this process cannot read goes to typer, which refuses it."""
    if not isinstance(value, (str, Path)) or value == "":
        raise _NotPlain
    path = Path(value)
    if os.path.exists(path) and not os.access(path, os.R_OK):
        raise _NotPlain
    return path


_CONVERTERS: dict[Any, Callable[[Any], Any]] = {str: _str, bool: _bool, int: _int, float: _float, Path: _path}
