"""The quick schema check must never disagree with jsonschema: it only lets a document skip jsonschema
when jsonschema would accept it. Checked on every TOML document in tests/manifest, the examples, and
systematic and random mutations of them (missing keys, wrong types, bad values, unknown keys).
"""

from __future__ import annotations

import ast
import copy
import datetime
import json
import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from enarx_pkg.manifest import _fastcheck
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "schemas" / "enarx-toml.schema.json").read_text())
JSONSCHEMA = Draft202012Validator(SCHEMA)
HERE = Path(__file__).parent

ODD_VALUES: list[Any] = [
    None, "", "x", "a:b", "A=B", "/abs", "tls", "listen", "connect", "0.1.0", "1.2", 0, 1, -1, 1.0, 1.5, 443,
    65536, math.nan, math.inf, True, False, [], ["a"], ["a", "a"], [1], [True], {}, {"zz": 1}, {"env": "X"},
    {"env": "X", "file": "y"}, {"kind": "listen"}, {"kind": "connect", "host": "h"},
    datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), datetime.date(2024, 1, 1),
]


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every TOML document the manifest tests use (files, and string literals that parse as TOML)."""
    files = [*sorted((HERE / "data").glob("*.toml")), *sorted(REPO.glob("examples/*/Enarx.toml")),
             REPO / "Enarx.toml.example"]
    for path in files:
        yield path.name, tomllib.loads(path.read_text())
    for source in sorted(HERE.glob("test_*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "=" in node.value:
                try:
                    doc = tomllib.loads(node.value)
                except tomllib.TOMLDecodeError:
                    continue
                if doc:
                    yield f"{source.name}:{node.lineno}", doc


DOCUMENTS = list(_documents())


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*at, key))


def _replace(doc: dict[str, Any], at: tuple[Any, ...], value: Any) -> dict[str, Any]:
    new = copy.deepcopy(doc)
    parent = new
    for key in at[:-1]:
        parent = parent[key]
    parent[at[-1]] = value
    return new


def _delete(doc: dict[str, Any], at: tuple[Any, ...]) -> dict[str, Any]:
    new = copy.deepcopy(doc)
    parent = new
    for key in at[:-1]:
        parent = parent[key]
    del parent[at[-1]]
    return new


def _mutations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for at in _paths(doc):
        if not at:
            continue
        yield _delete(doc, at)
        for value in ODD_VALUES:
            yield _replace(doc, at, value)
        if isinstance(_get(doc, at), dict):
            yield _replace(doc, at, {**_get(doc, at), "unknown_key": 1})


def _get(doc: Any, at: tuple[Any, ...]) -> Any:
    for key in at:
        doc = doc[key]
    return doc


def _agrees(doc: Any) -> None:
    quick = _fastcheck.verdict(SCHEMA, doc)
    assert quick is None or quick == JSONSCHEMA.is_valid(doc), (quick, doc)


def test_documents_were_found() -> None:
    names = [name for name, _ in DOCUMENTS]
    assert len(DOCUMENTS) > 30 and "minimal.toml" in names and any(".py:" in n for n in names)


@pytest.mark.parametrize(("name", "doc"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_agrees_with_jsonschema_on_every_test_document(name: str, doc: dict[str, Any]) -> None:
    _agrees(doc)


@pytest.mark.parametrize(("name", "doc"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_agrees_with_jsonschema_on_every_mutation(name: str, doc: dict[str, Any]) -> None:
    for mutated in _mutations(doc):
        _agrees(mutated)


def test_decides_every_valid_example_without_jsonschema() -> None:
    """The point of the quick check: valid documents (what ``run`` re-checks) never need jsonschema."""
    valid = [(name, doc) for name, doc in DOCUMENTS if JSONSCHEMA.is_valid(doc)]
    assert len(valid) > 10
    assert [name for name, doc in valid if _fastcheck.verdict(SCHEMA, doc) is not True] == []


def test_invalid_documents_are_not_passed() -> None:
    invalid = [doc for _, doc in DOCUMENTS if not JSONSCHEMA.is_valid(doc)]
    assert invalid and all(_fastcheck.verdict(SCHEMA, doc) is not True for doc in invalid)


@pytest.mark.parametrize("schema", [
    {"type": "object", "unevaluatedProperties": False},  # a keyword it does not implement
    {"$ref": "https://example.com/other.json"},  # a reference it cannot resolve
    {"enum": [1, "a"]},  # jsonschema's number/boolean equality
    {"type": "datetime"},  # not a JSON type
    {"additionalProperties": False, "patternProperties": {"^a": {}}},
])
def test_what_it_cannot_decide_goes_to_jsonschema(schema: dict[str, Any]) -> None:
    assert _fastcheck.verdict(schema, {"a": 1}) is None


_NAMES = sorted({k for _, doc in DOCUMENTS for at in _paths(doc) for k in at if isinstance(k, str)} | {"zz"})
_LEAVES = st.one_of(st.sampled_from(ODD_VALUES[:23]), st.integers(-3, 70000), st.text(max_size=4))
_VALUES = st.recursive(_LEAVES, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(_NAMES), inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from([doc for _, doc in DOCUMENTS]), data=st.data())
def test_agrees_with_jsonschema_on_random_subtrees(base: dict[str, Any], data: st.DataObject) -> None:
    paths = [at for at in _paths(base) if at]
    at = data.draw(st.sampled_from(paths))
    _agrees(_replace(base, at, data.draw(_VALUES)))
