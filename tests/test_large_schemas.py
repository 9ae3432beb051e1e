"""The generator of large real-world-shaped schemas (benchmarks.large_schemas) behind the compile-tail
measurement: deterministic, valid JSON Schema, the advertised shapes, and accepted by `normalize`."""

from __future__ import annotations

import json

import jsonschema
import pytest

from benchmarks.large_schemas import FAMILIES, generate
from constrained.schema import normalize
from constrained.types import LAZY_FROM_CHARS


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


def test_the_large_schema_bench_compiles_as_the_server_does_and_beside_xgrammar_alone():
    import gc

    from benchmarks.compile_times import format_large, measure_large

    try:  # as the server starts: start-up's objects frozen out of the collector's walks
        result = measure_large(2, "hermes", progress=False)  # articles_0, wide_0: past LAZY_FROM_CHARS
        assert result["heap_frozen"] and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # the rest of the test session as it was
    assert [r["route"] for r in result["rows"]] == ["llguidance", "llguidance"] and result["lazy_served"] == 2
    for r in result["rows"]:
        assert r["ebnf_chars"] >= LAZY_FROM_CHARS and 0 < r["ebnf_s"] < r["served_s"] and r["ebnf_s"] < r["xgrammar_s"]
        assert 0 < r["mask_us_p50"] <= r["mask_us_max"]
    table = format_large(result)
    assert "| articles_0 |" in table and "by llguidance" in table
