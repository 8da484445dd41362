"""The schema in schemas/ is the one the package loads, and Enarx.toml.example covers all of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator

from enarx_pkg import manifest
from enarx_pkg.manifest import _schema
from tests.conftest import REPO

EXAMPLE = REPO / "Enarx.toml.example"
CANONICAL = REPO / "schemas" / "enarx-toml.schema.json"


def test_package_loads_exactly_the_canonical_schema() -> None:
    assert _schema.SCHEMA_PATH.resolve() == CANONICAL.resolve()
    assert _schema.schema() == json.loads(CANONICAL.read_text())


def test_schema_is_a_valid_2020_12_schema() -> None:
    schema = json.loads(CANONICAL.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_example_validates() -> None:
    model = manifest.load(EXAMPLE)
    assert model.package is not None and model.build is not None and model.secrets


def _properties(node: Any, defs: dict[str, Any], seen: frozenset[str] = frozenset()) -> Iterator[str]:
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _properties(defs[name], defs, seen | {name})
    for key, sub in node.get("properties", {}).items():
        yield key
        yield from _properties(sub, defs, seen)
    for word in ("items", "additionalProperties"):
        yield from _properties(node.get(word), defs, seen)


def test_example_mentions_every_schema_property() -> None:
    schema = json.loads(CANONICAL.read_text())
    text = EXAMPLE.read_text()
    missing = sorted({p for p in _properties(schema, schema["$defs"]) if p not in text})
    assert not missing, f"Enarx.toml.example does not show: {missing}"


def test_example_attestation_table_is_a_valid_policy() -> None:
    policy = REPO / "schemas" / "policy.schema.json"
    if not policy.exists():
        import pytest

        pytest.skip("schemas/policy.schema.json not written yet")
    model = manifest.load(EXAMPLE)
    Draft202012Validator(json.loads(policy.read_text())).validate(dict(model.attestation))
