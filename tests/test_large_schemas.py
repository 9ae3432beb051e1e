"""The generator of large real-world-shaped schemas (benchmarks.large_schemas) behind the compile-tail
measurement: deterministic, valid JSON Schema, the advertised shapes, and accepted by `normalize`."""

from __future__ import annotations

import json

import jsonschema
import pytest

from benchmarks.large_schemas import FAMILIES, generate
from constrained.schema import normalize


def test_the_same_seed_gives_the_same_schemas_and_another_seed_others():
    assert json.dumps(generate(10, 3)) == json.dumps(generate(10, 3))
    assert json.dumps(generate(5, 0)) != json.dumps(generate(5, 1))
    assert [name.rsplit("_", 1)[0] for name, _ in generate(10)] == list(FAMILIES) * 2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_valid_large_and_normalizes(family):
    schema = FAMILIES[family](0)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert len(json.dumps(schema)) > 10_000
    norm = normalize(schema)
    assert norm.schema


def test_articles_have_open_types_with_many_declared_names():
    """The shape that makes the tail: content types of 40-60 properties, some open to extra keys."""
    defs = FAMILIES["articles"](0)["definitions"]
    types = [d for name, d in defs.items() if name.startswith("type_")]
    assert types and all(40 <= len(t["properties"]) - 2 <= 60 for t in types if "related" in t["properties"])
    assert any(t["additionalProperties"] == {} for t in types)
