"""A quick, exact "is this document valid?" for the Enarx.toml schema, without importing jsonschema.

jsonschema costs ~70 ms to import, as much as running a small workload, and ``run`` re-checks the
packaged Enarx.toml every time. Almost every document is valid, and deciding *that* needs only a
small interpreter of the JSON Schema keywords the schema uses. :func:`verdict` answers ``True``
(valid), ``False`` (invalid) or ``None`` (a keyword or value it does not decide exactly); only a
``True`` is acted on: anything else goes to jsonschema, which finds and describes the problems.
So the error messages are jsonschema's, and the schema file stays the single source of truth.

Each keyword below follows the 2020-12 validation spec as jsonschema 4 implements it (``re.search``
for ``pattern``, code points for lengths, ``1.0`` is an integer, ``true`` is not a number). A keyword
this module does not know, a ``$ref`` that is not ``#/$defs/NAME``, or a non-string ``enum``
value makes the verdict ``None``, so an extended schema is never judged by half its rules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

Verdict = bool | None
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "default",
                          "examples", "x-expected", "x-because"})
_TYPES = frozenset({"object", "array", "string", "boolean", "null", "number", "integer"})


def verdict(schema: dict[str, Any], instance: Any) -> Verdict:
    """Whether ``instance`` is valid against ``schema`` (a root schema with ``$defs``), or None."""
    return _Checker(schema).check(schema, instance)


def _all(verdicts: Any) -> Verdict:
    """False if any is False, else None if any is None, else True (evaluating lazily)."""
    unknown = False
    for v in verdicts:
        if v is False:
            return False
        unknown = unknown or v is None
    return None if unknown else True


def _kind_of(instance: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(instance, dict)
    if kind == "array":
        return isinstance(instance, list)
    if kind == "string":
        return isinstance(instance, str)
    if kind == "boolean":
        return isinstance(instance, bool)
    if kind == "null":
        return instance is None
    if isinstance(instance, bool) or not isinstance(instance, int | float):
        return False
    return kind == "number" or isinstance(instance, int) or instance.is_integer()


@functools.lru_cache(maxsize=64)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class _Checker:
    def __init__(self, root: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = root.get("$defs", {})

    def check(self, schema: Any, instance: Any) -> Verdict:
        if schema is True or schema is False:
            return schema
        if not isinstance(schema, dict):
            return None
        return _all(self._keyword(key, value, schema, instance) for key, value in schema.items()
                    if key not in _ANNOTATIONS)

    def _keyword(self, key: str, value: Any, schema: dict[str, Any], instance: Any) -> Verdict:
        rule: Callable[[Any, dict[str, Any], Any], Verdict] | None = getattr(self, _RULES.get(key, "-"), None)
        return None if rule is None else rule(value, schema, instance)

    def _ref(self, ref: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        prefix = "#/$defs/"
        name = ref[len(prefix):] if isinstance(ref, str) and ref.startswith(prefix) else None
        if name is None or name not in self.defs or "/" in name or "~" in name:
            return None
        return self.check(self.defs[name], instance)

    def _type(self, kinds: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        wanted = [kinds] if isinstance(kinds, str) else kinds
        if not set(wanted) <= _TYPES:
            return None
        return any(_kind_of(instance, k) for k in wanted)

    def _enum(self, values: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        if not all(isinstance(v, str) for v in values):
            return None  # jsonschema's equality (1 == 1.0, true != 1) is not needed for strings
        return isinstance(instance, str) and instance in values

    def _const(self, value: Any, s: dict[str, Any], instance: Any) -> Verdict:
        return self._enum([value], s, instance)

    def _min_length(self, limit: int, _s: dict[str, Any], instance: Any) -> Verdict:
        return not isinstance(instance, str) or len(instance) >= limit

    def _max_length(self, limit: int, _s: dict[str, Any], instance: Any) -> Verdict:
        return not isinstance(instance, str) or len(instance) <= limit

    def _pattern(self, pattern: str, _s: dict[str, Any], instance: Any) -> Verdict:
        return not isinstance(instance, str) or _regex(pattern).search(instance) is not None

    def _minimum(self, limit: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        return not _kind_of(instance, "number") or not instance < limit  # NaN passes, as in jsonschema

    def _maximum(self, limit: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        return not _kind_of(instance, "number") or not instance > limit

    def _exclusive_minimum(self, limit: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        return not _kind_of(instance, "number") or not instance <= limit

    def _min_items(self, limit: int, _s: dict[str, Any], instance: Any) -> Verdict:
        return not isinstance(instance, list) or len(instance) >= limit

    def _unique_items(self, unique: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        if unique is False or not isinstance(instance, list):
            return True
        if unique is not True or not all(isinstance(v, str) for v in instance):
            return None  # jsonschema's own equality decides mixed lists
        return len(set(instance)) == len(instance)

    def _items(self, sub: Any, s: dict[str, Any], instance: Any) -> Verdict:
        if "prefixItems" in s:
            return None
        return not isinstance(instance, list) or _all(self.check(sub, v) for v in instance)

    def _required(self, names: list[str], _s: dict[str, Any], instance: Any) -> Verdict:
        return not isinstance(instance, dict) or all(n in instance for n in names)

    def _properties(self, props: dict[str, Any], _s: dict[str, Any], instance: Any) -> Verdict:
        if not isinstance(instance, dict):
            return True
        return _all(self.check(sub, instance[k]) for k, sub in props.items() if k in instance)

    def _additional(self, sub: Any, s: dict[str, Any], instance: Any) -> Verdict:
        if "patternProperties" in s:
            return None
        if not isinstance(instance, dict):
            return True
        known = s.get("properties", {})
        return _all(self.check(sub, v) for k, v in instance.items() if k not in known)

    def _property_names(self, sub: Any, _s: dict[str, Any], instance: Any) -> Verdict:
        return not isinstance(instance, dict) or _all(self.check(sub, k) for k in instance)

    def _all_of(self, subs: list[Any], _s: dict[str, Any], instance: Any) -> Verdict:
        return _all(self.check(sub, instance) for sub in subs)

    def _one_of(self, subs: list[Any], _s: dict[str, Any], instance: Any) -> Verdict:
        verdicts = [self.check(sub, instance) for sub in subs]
        return None if None in verdicts else verdicts.count(True) == 1

    def _if(self, cond: Any, s: dict[str, Any], instance: Any) -> Verdict:
        matched = self.check(cond, instance)
        if matched is None:
            return None
        branch = s.get("then" if matched else "else", True)
        return self.check(branch, instance)

    def _branch(self, _sub: Any, _s: dict[str, Any], _instance: Any) -> Verdict:
        return True  # then/else are applied by _if (and mean nothing without an if)


_RULES = {
    "$ref": "_ref", "type": "_type", "enum": "_enum", "const": "_const", "minLength": "_min_length",
    "maxLength": "_max_length", "pattern": "_pattern", "minimum": "_minimum", "maximum": "_maximum",
    "exclusiveMinimum": "_exclusive_minimum", "minItems": "_min_items", "uniqueItems": "_unique_items",
    "items": "_items", "required": "_required", "properties": "_properties",
    "additionalProperties": "_additional", "propertyNames": "_property_names", "allOf": "_all_of",
    "oneOf": "_one_of", "if": "_if", "then": "_branch", "else": "_branch",
}
