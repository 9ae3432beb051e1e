"""Schema conformance on shapes found in real corpora (issue 17), one section per class of failure;
every schema here is our own. Each asserts the grammar (real xgrammar) and `validate` against what
JSON Schema says, with jsonschema itself (the document's own draft) as the referee."""

from __future__ import annotations

import functools
import json

import jsonschema
import pytest
import xgrammar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_schema import _COMPILER, accepts, raw_accepts

from constrained import ebnf as E
from constrained.codecs.python import python_value_rules
from constrained.guards import matcher as guarded_matcher
from constrained.schema import Unenforced, UnsupportedSchemaError, normalize, unenforced_violations, validate
from constrained.schema.strings import LENGTH_CHAIN_LIMIT, exact_string_lengths
from constrained.schema.validate import _validator
from constrained.tools.check_tools import check_tools
from constrained.tools.coverage import schema_grammar
from constrained.tools.emitted import as_emitted

DRAFT4 = "http://json-schema.org/draft-04/schema#"
DRAFT6 = "http://json-schema.org/draft-06/schema#"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2019 = "https://json-schema.org/draft/2019-09/schema"
DRAFT2020 = "https://json-schema.org/draft/2020-12/schema"


def referee(schema, instance) -> bool:
    """jsonschema's verdict under the draft the schema declares."""
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=_validator()[1]).is_valid(instance)  # formats checked as validate() does


def agree(schema, instance, policy="schema") -> bool:
    """Grammar and post-decoding validation both say what jsonschema says."""
    verdict = referee(schema, instance)
    norm = normalize(schema, additional_properties=policy)
    return accepts(schema, instance, policy) == verdict and (validate(instance, norm) == []) == verdict


# --------------------------------------------------------------------------- 1. $ref siblings by draft


def _ref_with_sibling(draft):
    schema = {"definitions": {"d": {"type": "string"}}, "type": "object",
              "properties": {"x": {"$ref": "#/definitions/d", "type": "object"}}, "required": ["x"]}
    return {"$schema": draft, **schema} if draft else schema


@pytest.mark.parametrize("draft", [DRAFT4, DRAFT6, DRAFT7])
def test_ref_siblings_are_ignored_before_2019(draft):
    schema = _ref_with_sibling(draft)
    assert referee(schema, {"x": "a string"})
    assert accepts(schema, {"x": "a string"}) and validate({"x": "a string"}, normalize(schema)) == []
    assert not accepts(schema, {"x": {}}) and validate({"x": {}}, normalize(schema))


@pytest.mark.parametrize("draft", [DRAFT2019, DRAFT2020, None])
def test_ref_siblings_apply_from_2019_and_by_default(draft):
    schema = _ref_with_sibling(draft)
    assert not referee(schema, {"x": "a string"})
    # string and object at once: nothing fits the required property
    with pytest.raises(UnsupportedSchemaError):
        normalize(schema)
    optional = {**schema, "required": []}
    assert agree(optional, {"x": "a string"}) and agree(optional, {})


def test_root_ref_beside_definitions_in_draft7():
    """typescript-json-schema's shape: a root $ref next to the definitions it points into."""
    schema = {"$schema": DRAFT7, "$ref": "#/definitions/Args", "definitions": {"Args": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}}}
    for instance in ({"n": 1}, {"n": "1"}, {}, {"n": 1, "m": 2}):
        assert agree(schema, instance, "forbid"), instance


def test_draft3_required_beside_ref_is_ignored():
    schema = {"$schema": "http://json-schema.org/draft-03/schema#", "type": "object",
              "properties": {"a": {"$ref": "#/definitions/s", "required": True}}, "definitions": {"s": {"type": "string"}}}
    assert "required" not in normalize(schema).schema
    assert accepts(schema, {}) and accepts(schema, {"a": "x"}) and not accepts(schema, {"a": 1})


# --------------------------------------------------------------------------- 2. $id and base URIs


def test_nested_id_makes_pointer_refs_relative_to_it():
    """Inside a subschema with its own $id, '#/definitions/x' is that subschema's definition."""
    schema = {"type": "object", "definitions": {"name": {"type": "integer"}}, "properties": {
        "item": {"$id": "http://example.com/item.json", "definitions": {"name": {"type": "string"}},
                 "type": "object", "properties": {"name": {"$ref": "#/definitions/name"}}}}}
    assert referee(schema, {"item": {"name": "x"}}) and not referee(schema, {"item": {"name": 1}})
    assert agree(schema, {"item": {"name": "x"}}) and agree(schema, {"item": {"name": 1}})


def test_nested_id_without_the_target_is_a_named_error():
    """The jsonschema.net shape: "$id": "/properties/x/..." then "#/definitions/..." meant for the root."""
    schema = {"type": "object", "definitions": {"cvars": {"type": "string"}}, "properties": {"x": {
        "$id": "/properties/x", "type": "array", "items": {"$id": "/properties/x/items", "type": "object",
                                                            "properties": {"name": {"$ref": "#/definitions/cvars"}}}}}}
    with pytest.raises(UnsupportedSchemaError) as info:
        normalize(schema)
    assert info.value.keyword == "$ref"
    assert info.value.path == "$.properties.x.items.properties.name.$ref"
    assert "/properties/x/items" in info.value.reason and "#/definitions/cvars" in str(info.value)


def test_draft4_reads_id_not_dollar_id():
    """In draft 4 the base-URI keyword is "id": "$id" is an unknown keyword there."""
    props = {"x": {"$id": "/properties/x", "type": "array", "items": {"$ref": "#/definitions/s"}}}
    schema = {"$schema": DRAFT4, "type": "object", "definitions": {"s": {"type": "string"}}, "properties": props}
    assert agree(schema, {"x": ["a"]}) and agree(schema, {"x": [1]})
    moved = {"$schema": DRAFT4, "type": "object", "definitions": {"s": {"type": "string"}},
             "properties": {"x": {"id": "/properties/x", "type": "array", "items": {"$ref": "#/definitions/s"}}}}
    with pytest.raises(UnsupportedSchemaError, match="definitions/s"):
        normalize(moved)


def test_relative_refs_reach_embedded_resources():
    schema = {"$id": "https://example.com/tool.json", "type": "object", "properties": {
        "a": {"$ref": "item.json"}, "b": {"$ref": "https://example.com/item.json#/properties/v"},
        "c": {"$ref": "tool.json#/$defs/count"}},
        "$defs": {"item": {"$id": "item.json", "type": "object", "properties": {"v": {"enum": ["x", "y"]}}},
                  "count": {"type": "integer", "minimum": 0}}}
    for instance in ({"a": {"v": "x"}, "b": "y", "c": 3}, {"a": {"v": "z"}}, {"b": "z"}, {"c": -1}):
        assert agree(schema, instance), instance


@pytest.mark.parametrize(("ref", "words"), [
    ("#/definitions/missing", ["nothing at", "/definitions/missing"]),
    ("#nowhere", ["no anchor", "nowhere"]),
    ("other.json#/a", ["other.json", "remote references are not fetched"]),
    ("#/definitions", ["not a schema"]),
])
def test_unresolvable_refs_name_the_ref_and_its_path(ref, words):
    schema = {"type": "object", "definitions": {"ok": {"type": "string"}}, "properties": {"x": {"$ref": ref}}}
    if ref == "#/definitions":
        schema["definitions"] = ["not", "a", "schema"]
    with pytest.raises(UnsupportedSchemaError) as info:
        normalize(schema)
    assert (info.value.keyword, info.value.path) == ("$ref", "$.properties.x.$ref")
    for word in words:
        assert word in info.value.reason


def test_check_tools_reports_a_bad_ref_per_tool_and_goes_on():
    tools = [{"type": "function", "function": {"name": n, "parameters": p}} for n, p in (
        ("broken", {"type": "object", "properties": {"x": {"$id": "/x", "items": {"$ref": "#/definitions/d"}}}, "definitions": {"d": {}}}),
        ("fine", {"type": "object", "properties": {"y": {"type": "integer", "maximum": 2**70}}}),
    )]
    broken, fine = check_tools(tools, dialects=["hermes"])
    assert not broken["compiled"] and "'$ref'" in broken["error"] and "$.properties.x.items.$ref" in broken["error"]
    assert fine["ok"] and fine["unenforced"] == ["maximum at $.properties.y.maximum"]


# --------------------------------------------------------------------------- 3. integers beyond 64 bits


@pytest.mark.parametrize("schema", [
    {"type": "integer", "minimum": -(2**70), "maximum": 2**70},
    {"type": "integer", "exclusiveMaximum": 1e30},
    {"type": ["integer", "null"], "minimum": -1e20},
    {"type": "integer", "minimum": 0, "maximum": 9.3e18},
])
def test_integer_bounds_beyond_int64_compile_and_are_checked_after_decoding(schema):
    norm = normalize(schema)
    assert {u.keyword for u in norm.unenforced} <= {"minimum", "maximum", "exclusiveMaximum"} and norm.unenforced
    assert accepts(schema, 5)
    too_big = 10**40 if "aximum" in str(norm.unenforced) else -(10**40)
    assert validate(too_big, norm) and unenforced_violations(too_big, norm)


def test_integer_bounds_at_the_int64_edges_are_enforced():
    schema = {"type": "integer", "minimum": -(2**63), "exclusiveMaximum": 2**63}
    assert normalize(schema).unenforced == ()
    assert accepts(schema, 2**63 - 1) and accepts(schema, -(2**63)) and not accepts(schema, 2**63)


def test_fractional_bounds_on_an_integer_union_are_rounded():
    schema = {"type": ["integer", "null"], "minimum": 0.5, "exclusiveMaximum": 3}
    assert normalize(schema).unenforced == ()
    assert accepts(schema, 1) and accepts(schema, 2) and accepts(schema, None)
    assert not accepts(schema, 0) and not accepts(schema, 3)


# --------------------------------------------------------------------------- 4. long lengths


def test_lengths_up_to_the_chain_limit_are_exact_rules():
    n = LENGTH_CHAIN_LIMIT
    assert n >= 8
    schema = {"type": "object", "properties": {"code": {"type": "string", "minLength": n, "maxLength": n},
                                               "name": {"type": "string", "maxLength": n}}}
    assert normalize(schema).unenforced == ()
    assert "strlen_g" not in str(schema_grammar(normalize(schema).schema))
    assert accepts(schema, {"code": "\"" * n, "name": "x" * n})
    assert not accepts(schema, {"code": "0" * (n - 1)}) and not accepts(schema, {"name": "x" * (n + 1)})


@pytest.mark.parametrize(("low", "high"), [(0, 9), (0, 1000), (9, None), (40, 40), (3, 300), (1000, 1000)])
def test_lengths_above_the_chain_limit_are_enforced(low, high):
    """Counted at run time (constrained.lengths), escapes and non-BMP characters as one each."""
    schema = {"type": "string", "minLength": low, **({"maxLength": high} if high is not None else {})}
    norm = normalize(schema)
    assert norm.unenforced == ()
    assert "strlen_g" in str(schema_grammar(norm.schema))
    top = high if high is not None else low + 20
    for k in sorted({0, max(0, low - 1), low, top, top + 1}):
        for unit in ("x", "\n", "😀", '"'):
            text = unit * k
            assert accepts(schema, text) == (low <= k <= top or (high is None and k >= low)), (low, high, k, unit)


def test_length_chains_are_shared_between_properties():
    """One chain per bound, whatever the number of properties (and tools) that use it."""
    props = {f"p{i}": {"type": "string", "maxLength": 7} for i in range(6)}
    rules = E.json_schema_rules(normalize({"type": "object", "properties": props}).schema, "t0_").rules
    assert sum(1 for name in rules if "strlen" in name) == 8  # s0..s7


def test_bounded_strings_in_python_literals():
    """The pythonic codec rewrites the same rules: no `\\/` escape, `)` may follow a string."""
    frag = python_value_rules({"type": "string", "minLength": 1, "maxLength": 3}, "v_")
    grammar = f"root ::= {frag.root} \")\"\n" + "".join(f"{k} ::= {v}\n" for k, v in frag.rules.items())
    compiled = _COMPILER.compile_grammar(xgrammar.Grammar.from_ebnf(grammar))
    for text, ok in (('"a\\"b")', True), ('"abc")', True), ('"abcd")', False), ('"")', False), ('"\\/")', False)):
        matcher = guarded_matcher(compiled, terminate_without_stop_token=True)
        assert (matcher.accept_string(text) and matcher.is_completed()) == ok, text


def test_lengths_next_to_a_format_or_enum_are_not_lost():
    fmt = normalize({"type": "string", "format": "email", "maxLength": 8})
    assert Unenforced("maxLength", "$.maxLength") in fmt.unenforced
    enum = {"type": "string", "enum": ["a", "bb", "ccc"], "maxLength": 2}
    assert normalize(enum).schema["enum"] == ["a", "bb"] and not accepts(enum, "ccc")


def test_exact_string_lengths_leave_other_grammars_alone():
    text = str(xgrammar.Grammar.from_json_schema(json.dumps({"type": "string"})))
    assert exact_string_lengths(text) == text


# --------------------------------------------------------------------------- 6. escapes count as one character


def test_escapes_are_characters_in_short_bounds():
    schema = {"type": "object", "properties": {"html": {"type": "string", "minLength": 1}, "line": {"type": "string", "maxLength": 4}}}
    assert accepts(schema, {"html": '<iframe src="{url}" width="{width}">'})
    assert accepts(schema, {"line": "a\r\nb"}) and not accepts(schema, {"line": "a\r\nbc"})
    assert accepts(schema, {"line": "\\\t\u0001\U0001F600"})


@functools.cache
def _length_matcher_grammar(low, high):
    schema = {"type": "string", "minLength": low, **({"maxLength": high} if high is not None else {})}
    norm = normalize(schema)
    assert norm.unenforced == ()
    return _COMPILER.compile_grammar(schema_grammar(norm.schema))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.characters(codec="utf-8"), max_size=10), low=st.integers(0, 4),
       span=st.one_of(st.none(), st.integers(0, 4)), ascii_only=st.booleans())
def test_every_json_string_fitting_the_bounds_is_accepted(text, low, span, ascii_only):
    """Whatever json.dumps writes (escapes, control characters, \\u escapes, surrogate pairs), the
    grammar accepts exactly the strings whose decoded length fits."""
    high = None if span is None else low + span
    matcher = guarded_matcher(_length_matcher_grammar(low, high), terminate_without_stop_token=True)
    written = json.dumps(text, ensure_ascii=ascii_only)
    fits = low <= len(text) and (high is None or len(text) <= high)
    assert (matcher.accept_string(written) and matcher.is_completed()) == fits


# --------------------------------------------------------------------------- 7. key order through $ref


COMPOSE = {
    "$schema": DRAFT7, "type": "object", "additionalProperties": False,
    "patternProperties": {"^x-": {}},
    "properties": {"version": {"type": "string"}, "services": {
        "type": "object", "additionalProperties": False,
        "patternProperties": {"^[a-zA-Z0-9._-]+$": {"$ref": "#/definitions/service"}}}},
    "definitions": {
        "service": {"type": "object", "additionalProperties": False, "patternProperties": {"^x-": {}},
                    "properties": {"image": {"type": "string"}, "ports": {"type": "array", "items": {"$ref": "#/definitions/port"}},
                                   "depends_on": {"oneOf": [{"type": "array", "items": {"type": "string"}},
                                                            {"type": "object", "additionalProperties": {"$ref": "#/definitions/dep"}}]},
                                   "environment": {"type": "object", "additionalProperties": {"type": ["string", "number", "null"]}}}},
        "port": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"target": {"type": "integer"}, "published": {"type": "string"}},
                                                "additionalProperties": False}]},
        "dep": {"type": "object", "properties": {"condition": {"type": "string"}, "restart": {"type": "boolean"}}, "additionalProperties": False},
    },
}
COMPOSE_INSTANCE = {  # keys deliberately out of declared order at every depth
    "x-common": {"a": 1},
    "services": {"web": {"x-meta": 1, "depends_on": {"db": {"restart": True, "condition": "healthy"}},
                         "ports": [{"published": "80", "target": 8080}, "443:443"], "image": "nginx",
                         "environment": {"B": "2", "A": None}}},
    "version": "3.9",
}


def test_key_order_contract_holds_at_every_depth():
    assert referee(COMPOSE, COMPOSE_INSTANCE)
    norm = normalize(COMPOSE)
    emitted = as_emitted(COMPOSE_INSTANCE, norm)
    assert list(emitted) == ["version", "services", "x-common"]
    web = emitted["services"]["web"]
    assert list(web) == ["image", "ports", "depends_on", "environment", "x-meta"]
    assert list(web["ports"][0]) == ["target", "published"] and list(web["depends_on"]["db"]) == ["condition", "restart"]
    assert accepts(COMPOSE, COMPOSE_INSTANCE, "forbid") and accepts(COMPOSE, COMPOSE_INSTANCE, "schema")
    # the contract is declaration order: the same instance in its own order is not generated
    assert not raw_accepts(COMPOSE, json.dumps(COMPOSE_INSTANCE))


def test_invalid_compose_instances_are_rejected():
    bad_port = json.loads(json.dumps(COMPOSE_INSTANCE))
    bad_port["services"]["web"]["ports"][0]["target"] = "8080"
    unknown = json.loads(json.dumps(COMPOSE_INSTANCE))
    unknown["services"]["web"]["volumes"] = []
    for instance in (bad_port, unknown):
        assert not referee(COMPOSE, instance) and not accepts(COMPOSE, instance, "schema")


# --------------------------------------------------------------------------- 8. other $ref forms


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"x": {"$ref": "#flag"}}, "$defs": {"f": {"$anchor": "flag", "type": "boolean"}}},
    {"$schema": DRAFT7, "type": "object", "properties": {"x": {"$ref": "#flag"}}, "definitions": {"f": {"$id": "#flag", "type": "boolean"}}},
    {"$id": "https://example.com/s", "type": "object", "properties": {"x": {"$ref": "flag.json"}},
     "$defs": {"f": {"$id": "flag.json", "type": "boolean"}}},
    {"type": "object", "properties": {"x": {"$ref": "#/ext%20ra/flag"}}, "ext ra": {"flag": {"type": "boolean"}}},
])
def test_anchor_and_relative_refs(schema):
    assert agree(schema, {"x": True}) and agree(schema, {"x": 1})
    # the emitter (and the raw-xgrammar baseline's) follows or ignores any ref form without crashing
    assert as_emitted({"x": True}, normalize(schema)) == {"x": True}
    from constrained.schema import NormalizedSchema

    assert as_emitted({"x": True}, NormalizedSchema(schema, (), schema)) == {"x": True}


def test_ref_to_a_boolean_schema():
    schema = {"type": "object", "properties": {"never": {"$ref": "#/$defs/no"}, "any": {"$ref": "#/$defs/yes"}},
              "$defs": {"no": False, "yes": True}}
    for instance in ({"any": [1]}, {"never": 1}, {}):
        assert agree(schema, instance), instance


def test_untyped_keywords_apply_to_their_type_only():
    """xgrammar ignores a keyword whose type is not named; JSON Schema lets other types through."""
    for schema, instances in (
            ({"minimum": 5}, [3, 7, "x", None]),
            ({"minLength": 3}, ["ab", "abc", 1, []]),
            ({"minItems": 2}, [[1], [1, 2], {}, 0]),
            ({"pattern": "^a"}, ["ba", "ab", 5]),
            ({"properties": {"a": {"type": "integer"}}, "required": ["a"]}, [{"a": "x"}, {"a": 1}, {}, "s", 3])):
        wrapped = {"type": "object", "properties": {"v": schema}, "required": ["v"]}
        for value in instances:
            assert agree(wrapped, {"v": value}), (schema, value)


def test_enum_values_that_break_their_siblings_are_removed():
    schema = {"type": "object", "properties": {"v": {"type": "string", "enum": ["a", 1, "bbb", None], "pattern": "^[ab]+$", "maxLength": 2}}}
    for value in ("a", 1, "bbb", None):
        assert agree(schema, {"v": value}), value


@pytest.mark.parametrize("low", [0, 1, 2, 3])
@pytest.mark.parametrize("span", [None, 0, 1, 2])
def test_every_small_bound_counts_escapes(low, span):
    """xgrammar prints {0, 1} and {1, 1} in their own forms: each is rewritten too."""
    high = None if span is None else low + span
    for k in range(6):
        for text in ("\n" * k, "é" * k, '"' * k):
            matcher = guarded_matcher(_length_matcher_grammar(low, high), terminate_without_stop_token=True)
            fits = low <= k and (high is None or k <= high)
            assert (matcher.accept_string(json.dumps(text)) and matcher.is_completed()) == fits, (low, high, text)
