"""Structural checks from ``schemas/enarx-toml.schema.json``, turned into problems a person can act on.

``enarx_pkg/manifest/enarx-toml.schema.json`` is a symlink to the canonical ``schemas/`` file, so an
editable install, a fresh clone and a built wheel (setuptools copies the target) all read one schema.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from enarx_pkg.manifest import _fastcheck
from enarx_pkg.manifest._positions import Path as KeyPath
from enarx_pkg.manifest._positions import Positions
from enarx_pkg.manifest.problems import Problem

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SCHEMA_PATH = Path(__file__).with_name("enarx-toml.schema.json")

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
    "array": "an array", "object": "a table", "null": "nothing",
}


@functools.cache
def schema() -> dict[str, Any]:
    """The Enarx.toml JSON Schema (2020-12), parsed once."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def check(doc: dict[str, Any], file: str, positions: Positions) -> list[Problem]:
    """Every structural problem in ``doc`` (parsed TOML), located in the source."""
    if _fastcheck.verdict(schema(), doc) is True:
        return []  # exactly what jsonschema would conclude, without importing it (~70 ms)
    problems: list[Problem] = []
    for error in _validator().iter_errors(doc):
        problems.extend(_translate(error, file, positions))
    return problems


def key_path(path: KeyPath) -> str:
    """``("files", 2, "port")`` -> ``files[2].port``; keys that are not bare are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if part and all(c.isalnum() or c in "_-" for c in part) else json.dumps(part)
            text += f".{name}" if text else name
    return text


def render(value: Any, path: KeyPath) -> str:
    """How a found value is shown; values under ``[secrets]`` are never echoed."""
    if path and path[0] == "secrets" and not isinstance(value, dict):
        return _TYPE_NAMES.get(_kind(value), "a datetime")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = json.dumps(value)
        return shown if len(shown) <= 42 else shown[:40] + '..."'
    if isinstance(value, int | float):
        return str(value)
    return _TYPE_NAMES.get(_kind(value), _kind(value))


def _kind(value: Any) -> str:
    kinds = [(bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
             (dict, "object")]
    return next((name for cls, name in kinds if isinstance(value, cls)), "datetime")


def _translate(error: ValidationError, file: str, positions: Positions) -> Iterator[Problem]:
    path: KeyPath = tuple(error.absolute_path)
    rule = str(error.validator)
    sub: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}

    def problem(at: KeyPath, message: str, *, key: bool = False, **extra: str | None) -> Problem:
        line, col = (positions.of_key(at) if key else positions.of_value(at)) or (None, None)
        return Problem(file, line, col, key_path(at), message, **extra)

    if "propertyNames" in error.relative_schema_path:
        name = str(error.instance)
        yield problem((*path, name), f"'{name}' is not a valid key name", key=True, found=name,
                      expected=sub.get("x-expected"))
    elif rule == "additionalProperties":
        allowed = sorted(sub.get("properties", {}))
        for name in sorted(set(cast(dict[str, Any], error.instance)) - set(allowed)):
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            yield problem((*path, name), f"unknown key '{name}'", key=True, found=name,
                          expected="one of " + ", ".join(allowed), suggestion=close[0] if close else None)
    elif rule == "required":
        for name in cast(list[str], error.validator_value):
            if name not in cast(dict[str, Any], error.instance):
                because = sub.get("x-because")
                yield problem(path, f"missing key '{name}'" + (f": {because}" if because else ""), key=True)
    elif path[:1] == ("secrets",) and len(path) == 2 and not isinstance(error.instance, dict):
        if rule != "type":
            return  # the type error below says it better
        yield problem(path, "secret given as a literal value", found=render(error.instance, path),
                      expected='a table such as { env = "VAR" } or { file = "path" }')
    else:
        message, expected = _describe(rule, error.instance, error.validator_value, sub, path)
        yield problem(path, message, expected=expected, found=render(error.instance, path))


def _describe(rule: str, found: Any, limit: Any, sub: dict[str, Any], path: KeyPath) -> tuple[str, str | None]:
    shown = render(found, path)
    if rule == "type":
        wanted = [limit] if isinstance(limit, str) else list(limit)
        kind = _TYPE_NAMES.get(_kind(found), "a datetime")
        message = f"found {kind}" if shown == kind else f"{shown} is {kind}"
        return message, " or ".join(_TYPE_NAMES[w] for w in wanted)
    if rule == "enum":
        return f"{shown} is not allowed", "one of " + ", ".join(render(v, ()) for v in limit)
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{shown} is out of range", _range(sub)
    if rule == "minLength":
        return "is empty", "a non-empty string"
    if rule == "maxLength":
        return f"{shown} is too long", f"at most {limit} characters"
    if rule == "minItems":
        return "is empty", f"at least {limit} item{'s' if limit != 1 else ''}"
    if rule == "uniqueItems":
        return "lists the same value twice", "each value once"
    return f"{shown} is not valid", sub.get("x-expected") or sub.get("description")


def _range(sub: dict[str, Any]) -> str:
    low, high = sub.get("minimum"), sub.get("maximum")
    if low is not None and high is not None:
        return f"{low}..{high}"
    if "exclusiveMinimum" in sub:
        return f"> {sub['exclusiveMinimum']}"
    return f">= {low}" if low is not None else f"<= {high}"


def suggest(name: str, allowed: list[str]) -> str | None:
    """The closest valid spelling of ``name``, if one is close enough."""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    return close[0] if close else None
