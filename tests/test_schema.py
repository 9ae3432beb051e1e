"""Normalisation rules of constrained.schema, each against xgrammar 0.2.8 itself."""

from __future__ import annotations

import json

import pytest
import xgrammar
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from constrained.guards import matcher as guarded_matcher
from constrained.schema import (
    Unenforced,
    UnsupportedSchemaError,
    normalize,
    unenforced_violations,
    validate,
)
from constrained.tools.coverage import schema_grammar
from constrained.tools.emitted import as_emitted

# An empty vocabulary: string acceptance only, and compiles in microseconds.
_COMPILER = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo([]), cache_enabled=False)


def accepts(schema, instance, additional_properties="forbid") -> bool:
    """Does the grammar of ``normalize(schema)`` accept ``instance`` as our dialects emit it?"""
    norm = normalize(schema, additional_properties=additional_properties)
    matcher = guarded_matcher(_COMPILER.compile_grammar(schema_grammar(norm.schema)), terminate_without_stop_token=True)
    text = json.dumps(as_emitted(instance, norm), ensure_ascii=False)
    return matcher.accept_string(text) and matcher.is_completed()


def keywords(schema) -> set[str]:
    return {u.keyword for u in normalize(schema).unenforced}


# --------------------------------------------------------------------------- no arguments


@pytest.mark.parametrize("schema", [None, {}, True, {"type": "object"}, {"type": "object", "description": "x"}])
def test_tool_without_arguments_accepts_empty_object_only(schema):
    assert accepts(schema, {})
    assert not accepts(schema, {"a": 1})
    assert not accepts(schema, [])
    assert validate({"a": 1}, normalize(schema))


def test_nested_bare_object_stays_free_form():
    schema = {"type": "object", "properties": {"meta": {"type": "object"}}}
    assert accepts(schema, {"meta": {"anything": [1, "x"]}})


def test_undeclared_properties_are_not_generated():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert accepts(schema, {"a": 1})
    assert not accepts(schema, {"a": 1, "hallucinated": 2})


# --------------------------------------------------------------------------- additional_properties="schema"


def test_schema_policy_takes_undeclared_properties_after_the_declared_ones():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}
    assert accepts(schema, {"a": 1, "b": "x", "extra": [1, {"k": None}], "more": 2}, "schema")
    assert accepts(schema, {"a": 1, "extra": True}, "schema")
    assert not accepts(schema, {"extra": True}, "schema")  # required still required
    assert not accepts(schema, {"a": 1, "b": 2}, "schema")  # declared types still enforced


@pytest.mark.parametrize("name", ["a", "b"])
def test_schema_policy_never_repeats_a_declared_name_as_an_extra_key(name):
    """{"a": 1, "a": "x"} parses to {"a": "x"}, which breaks a's type: the extra keys exclude declared names."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    norm = normalize(schema, additional_properties="schema")
    matcher = guarded_matcher(_COMPILER.compile_grammar(schema_grammar(norm.schema)), terminate_without_stop_token=True)
    assert not matcher.accept_string(f'{{"a": 1, "b": 2, "{name}": "x"}}')


def test_schema_policy_keeps_explicit_additional_properties():
    closed = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    assert not accepts(closed, {"a": 1, "x": 2}, "schema")
    typed = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}}
    assert accepts(typed, {"a": 1, "x": "y"}, "schema")
    assert not accepts(typed, {"a": 1, "x": 2}, "schema")


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "integer"}, "gone": False}},  # "gone" must be absent
    {"type": "object", "properties": {"a": {"type": "integer"}}, "unevaluatedProperties": False},
])
def test_schema_policy_stays_closed_where_extra_keys_cannot_be_exact(schema):
    assert accepts(schema, {"a": 1}, "schema")
    assert not accepts(schema, {"a": 1, "gone": 2}, "schema")


def test_schema_policy_root_object_takes_any_object_but_no_parameters_means_none():
    assert accepts({"type": "object"}, {"key": "value"}, "schema")
    assert accepts({"type": "object", "properties": {}}, {"key": [1]}, "schema")
    assert accepts({}, {"key": 1}, "schema")
    assert not accepts({}, [1], "schema")  # arguments are an object
    assert accepts(None, {}, "schema")
    assert not accepts(None, {"key": 1}, "schema")


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="additional_properties"):
        normalize({"type": "object"}, additional_properties="allow")


# --------------------------------------------------------------------------- type names


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("dict", {"k": 1}, [1]),
        ("float", 1.5, "1.5"),
        ("int", 3, 3.5),
        ("bool", True, 1),
        ("Boolean", False, "false"),
        ("str", "x", 1),
        ("String", "x", None),
        ("list", [1, "a"], {}),
        ("tuple", [1, 2], "12"),
        ("ArrayList", [1], {}),
        ("HashMap", {"k": "v"}, "k"),
        ("long", 12, 1.5),
        ("double", 2.5, "x"),
        ("char", "c", 1),
    ],
)
def test_python_and_java_type_names_map(name, good, bad):
    schema = {"type": "object", "properties": {"x": {"type": name}}, "required": ["x"]}
    assert accepts(schema, {"x": good})
    assert not accepts(schema, {"x": bad})
    assert validate({"x": good}, normalize(schema)) == []


@pytest.mark.parametrize("name", ["any", "Any"])
def test_any_removes_the_type(name):
    schema = {"type": "object", "properties": {"x": {"type": name}}, "required": ["x"]}
    for value in (1, "s", [1], {"a": None}, None):
        assert accepts(schema, {"x": value})


def test_type_lists_map_and_keep_null():
    norm = normalize({"type": "object", "properties": {"x": {"type": ["float", "int"]}, "y": {"type": ["string", "null"]}}})
    assert norm.schema["properties"]["x"]["type"] == "number"  # which includes integers
    assert norm.schema["properties"]["y"]["type"] == ["string", "null"]


def test_unknown_type_names_raise_with_keyword_and_path():
    with pytest.raises(UnsupportedSchemaError) as info:
        normalize({"type": "object", "properties": {"x": {"type": "Widget"}}})
    assert info.value.keyword == "type"
    assert info.value.path == "$.properties.x.type"
    assert "'type'" in str(info.value) and "$.properties.x.type" in str(info.value)


# --------------------------------------------------------------------------- OpenAI strict


def test_openai_strict_shape_passes_through():
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"anyOf": [{"type": "string", "enum": ["c", "f"]}, {"type": "null"}]},
            "note": {"type": ["string", "null"]},
        },
        "required": ["city", "unit", "note"],
        "additionalProperties": False,
    }
    norm = normalize(schema)
    assert norm.unenforced == ()
    assert accepts(schema, {"city": "Paris", "unit": None, "note": "x"})
    assert accepts(schema, {"city": "Paris", "unit": "c", "note": None})
    assert not accepts(schema, {"city": "Paris", "unit": "k", "note": None})
    assert not accepts(schema, {"city": "Paris", "unit": "c"})


def test_openapi_nullable_becomes_a_null_union():
    schema = {"type": "object", "properties": {"x": {"type": "integer", "nullable": True}}, "required": ["x"]}
    assert accepts(schema, {"x": None})
    assert validate({"x": None}, normalize(schema)) == []


# --------------------------------------------------------------------------- $ref


def test_recursive_defs_compile_and_recurse():
    schema = {
        "$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node",
    }
    assert accepts(schema, {"kids": [{"kids": []}, {"kids": [{"kids": []}]}]})
    assert not accepts(schema, {"kids": [{"kids": [1]}]})


def test_definitions_and_escaped_pointers_are_hoisted():
    schema = {
        "definitions": {"a/b": {"type": "integer"}},
        "type": "object",
        "properties": {"x": {"$ref": "#/definitions/a~1b"}, "y": {"$ref": "#/properties/x"}},
    }
    assert accepts(schema, {"x": 1, "y": 2})
    assert not accepts(schema, {"x": "1"})


@pytest.mark.parametrize("ref", ["http://example.com/s.json", "other.json#/a", "#/definitions/missing"])
def test_remote_or_unresolvable_refs_raise(ref):
    with pytest.raises(UnsupportedSchemaError) as info:
        normalize({"type": "object", "properties": {"x": {"$ref": ref}}})
    assert info.value.keyword == "$ref"
    assert info.value.path == "$.properties.x.$ref"


# --------------------------------------------------------------------------- rewritten keywords


def test_patterns_search_like_json_schema():
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": "[0-9]"}}, "required": ["x"]}
    assert accepts(schema, {"x": "ab1cd"})
    assert not accepts(schema, {"x": "abcd"})
    anchored = {"type": "string", "pattern": "^ab"}
    assert accepts(anchored, "abc") and not accepts(anchored, "cab")


def test_pattern_properties_keys_search():
    schema = {"type": "object", "patternProperties": {"^a": {"type": "integer"}}}
    assert accepts(schema, {"abc": 1})
    assert not accepts(schema, {"abc": "x"})


def raw_accepts(schema, text, additional_properties="forbid") -> bool:
    """Does the grammar accept this exact text (duplicate keys and key order included)?"""
    norm = normalize(schema, additional_properties=additional_properties)
    matcher = guarded_matcher(_COMPILER.compile_grammar(schema_grammar(norm.schema)), terminate_without_stop_token=True)
    return matcher.accept_string(text) and matcher.is_completed()


def test_declared_name_matching_a_pattern_satisfies_both_schemas():
    """xgrammar lets "n" take the pattern's schema instead of its own (or repeat as a pattern key)."""
    schema = {"type": "object", "properties": {"n": {"type": ["integer", "string"]}},
              "patternProperties": {"^.*$": {"type": "string"}}}
    assert raw_accepts(schema, '{"n": "x"}') and raw_accepts(schema, '{"n": "x", "k": "y"}')
    assert not raw_accepts(schema, '{"n": 1}')  # 1 is not a string: JSON Schema applies both
    assert not raw_accepts(schema, '{"n": "x", "n": 1}')  # a repeated key would override n


@pytest.mark.parametrize("policy", ["forbid", "schema"])
def test_additional_value_satisfies_the_patterns_its_key_may_match(policy):
    """xgrammar lets a key matching a pattern take the additionalProperties schema instead."""
    schema = {"type": "object", "properties": {"basic": {"type": "string"}},
              "patternProperties": {".*": {"type": "string"}}, "additionalProperties": {"type": ["string", "integer"]}}
    assert raw_accepts(schema, '{"basic": "x", "other": "y"}', policy)
    assert not raw_accepts(schema, '{"basic": "x", "other": 123}', policy)
    open_schema = {"type": "object", "properties": {"basic": {"type": "string"}}, "patternProperties": {".*": {"type": "string"}}}
    assert not raw_accepts(open_schema, '{"basic": "x", "other": 123}', "schema")


def test_pattern_matching_two_names_it_contradicts_once():
    """The pattern's value must fit both names; after the first makes it unsatisfiable, the second
    still gets its own (merged) schema and the pattern is dropped."""
    schema = {"type": "object", "properties": {"ab": {"type": "integer"}, "ac": {"type": "string"}},
              "patternProperties": {"^a": {"type": "string"}}}
    norm = normalize(schema)
    assert norm.schema["properties"] == {"ac": {"type": "string"}} and "patternProperties" not in norm.schema
    assert raw_accepts(schema, '{"ac": "x"}')
    assert not raw_accepts(schema, '{"ab": 1}')  # integer and string at once: ab must be absent


def test_pattern_contradicting_a_required_property_is_unsatisfiable():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "patternProperties": {"n": {"type": "string"}},
              "required": ["n"]}
    with pytest.raises(UnsupportedSchemaError, match="patternProperties"):
        normalize(schema)


def test_regex_the_grammar_cannot_enforce_is_checked_after_decoding():
    schema = {"type": "string", "pattern": r"^admin.*\b$"}  # \b: xgrammar cannot, RE2 can
    norm = normalize(schema)
    assert norm.unenforced == (Unenforced("pattern", "$.pattern"),)
    assert unenforced_violations("admin!", norm) == [Unenforced("pattern", "$.pattern")]
    assert unenforced_violations("admin", norm) == []


def test_regex_that_cannot_run_in_linear_time_is_refused():
    """Look-around and back-references need a backtracking engine: refused, naming keyword and path."""
    for schema, keyword, path in (
        ({"type": "string", "pattern": r"^(?!admin).*$"}, "pattern", "$.pattern"),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": r"(x)\1"}}}, "pattern", "$.properties.a.pattern"),
        ({"type": "object", "patternProperties": {"^(?<=a)b": {}}}, "patternProperties", "$.patternProperties.^(?<=a)b"),
        ({"type": "object", "properties": {"a": {"not": {"pattern": "a{1,5000}"}}}}, "pattern", "$.properties.a.not.pattern"),
    ):
        with pytest.raises(UnsupportedSchemaError) as info:
            normalize(schema)
        assert (info.value.keyword, info.value.path) == (keyword, path)
        assert "linear time" in str(info.value)


def test_allof_is_merged():
    schema = {"allOf": [
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        {"properties": {"b": {"type": "string"}, "a": {"minimum": 3}}, "required": ["b"]},
    ]}
    assert accepts(schema, {"a": 3, "b": "x"})
    assert not accepts(schema, {"a": 3})
    assert not accepts(schema, {"a": 2, "b": "x"})


def test_anyof_siblings_are_distributed():
    schema = {"type": "integer", "anyOf": [{"minimum": 5}, {"maximum": 0}]}
    assert accepts(schema, 7) and accepts(schema, -1)
    assert not accepts(schema, 3)


def test_draft4_boolean_exclusive_minimum_and_tuple_items():
    schema = {"type": "array", "items": [{"type": "integer", "minimum": 0, "exclusiveMinimum": True}], "additionalItems": {"type": "string"}}
    assert accepts(schema, [1, "a", "b"])
    assert not accepts(schema, [0])
    assert not accepts(schema, [1, 2])


def test_draft3_required_true_moves_to_the_parent():
    schema = {"type": "object", "properties": {"a": {"type": "string", "required": True}, "b": {"type": "string", "optional": True}}}
    assert normalize(schema).schema["required"] == ["a"]
    assert not accepts(schema, {"b": "x"})
    assert validate({"b": "x"}, normalize(schema))


def test_object_and_array_constants_match_json_dumps_output():
    schema = {"type": "object", "properties": {"x": {"const": {"a": [1, 2]}}, "y": {"enum": [[1], {"k": None}]}}}
    assert accepts(schema, {"x": {"a": [1, 2]}, "y": {"k": None}})
    assert not accepts(schema, {"x": {"a": [1, 3]}})


def test_required_but_undeclared_property_is_declared_where_extra_properties_may_appear():
    schema = {"type": "object", "properties": {"a": {}}, "required": ["b"]}
    assert accepts(schema, {"b": 1}, additional_properties="schema")
    assert accepts({**schema, "additionalProperties": {"type": "integer"}}, {"b": 1})
    assert accepts({"type": "object", "properties": {"a": {}}, "patternProperties": {"^b": {}}, "required": ["b"]}, {"b": 1})
    # a bare `required` in a branch names what its siblings declare
    assert accepts({"type": "object", "properties": {"a": {}, "b": {}}, "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"b": 1})


UNSATISFIABLE = [  # (schema, policy, keyword, path): contradictions a schema author cannot have meant
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}}}, "forbid", "minimum", "$.properties.n"),
    ({"type": "object", "properties": {"n": {"exclusiveMinimum": 2, "maximum": 2}}}, "schema", "exclusiveMinimum", "$.properties.n"),
    ({"type": "object", "properties": {"s": {"type": "string", "minLength": 4, "maxLength": 2}}}, "forbid", "minLength", "$.properties.s"),
    ({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 1}}}, "forbid", "minItems", "$.properties.l"),
    ({"type": "object", "properties": {"o": {"type": "object", "minProperties": 2, "maxProperties": 1}}}, "schema", "minProperties", "$.properties.o"),
    ({"type": "object", "properties": {"e": {"enum": []}}}, "forbid", "enum", "$.properties.e"),
    ({"type": "object", "properties": {"x": False, "y": {}}, "required": ["x"]}, "schema", "required", "$.required"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "forbid", "required", "$.required"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"], "additionalProperties": False}, "schema", "required", "$.required"),
    ({"type": "object", "properties": {"deep": {"type": "array", "items": {"type": "object", "properties": {"a": {}}, "required": ["b"]}}}},
     "forbid", "required", "$.properties.deep.items.required"),
]


@pytest.mark.parametrize("schema, policy, keyword, path", UNSATISFIABLE)
def test_unsatisfiable_schemas_are_refused_naming_keyword_and_path(schema, policy, keyword, path):
    from constrained.errors import UnsatisfiableSchemaError

    with pytest.raises(UnsatisfiableSchemaError) as info:
        normalize(schema, additional_properties=policy)
    assert (info.value.keyword, info.value.path) == (keyword, path)
    assert "can match nothing" in str(info.value)


def test_contradictions_under_not_are_meant():
    schema = {"type": "string", "not": {"minLength": 5, "maxLength": 3}}  # not (nothing) = anything
    assert normalize(schema).unenforced and accepts(schema, "abc")


def test_fractional_integer_bounds_round_inwards():
    schema = {"type": "integer", "minimum": 0.5, "exclusiveMaximum": 3.5}
    assert accepts(schema, 1) and accepts(schema, 3)
    assert not accepts(schema, 0) and not accepts(schema, 4)


def test_not_type_becomes_the_complement():
    schema = {"not": {"type": "string"}}
    assert normalize(schema).unenforced == ()
    assert accepts(schema, 1) and not accepts(schema, "s")


def test_not_empty_schema_removes_the_property():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "gone": {"not": {}}}}
    assert accepts(schema, {"a": 1})
    assert not accepts(schema, {"gone": 1})


# --------------------------------------------------------------------------- unenforced


@pytest.mark.parametrize(
    ("schema", "keyword", "violating"),
    [
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems", [1, 1]),
        ({"type": "number", "multipleOf": 0.5}, "multipleOf", 0.3),
        ({"type": "string", "format": "regex"}, "format", "(unclosed"),
        ({"type": "string", "format": "date-time"}, "format", "2024-02-30T10:00:00Z"),
        ({"type": "array", "items": {}, "contains": {"const": 5}}, "contains", [1]),
        ({"type": "object", "properties": {"a": {}, "b": {}}, "dependentRequired": {"a": ["b"]}}, "dependentRequired", {"a": 1}),
        ({"type": "object", "properties": {"a": {}, "b": {}}, "dependencies": {"a": ["b"]}}, "dependentRequired", {"a": 1}),
        ({"type": "object", "properties": {"a": {}, "b": {}}, "if": {"properties": {"a": {"const": 1}}, "required": ["a"]}, "then": {"required": ["b"]}}, "if", {"a": 1}),
        ({"type": "integer", "not": {"const": 3}}, "not", 3),
        ({"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]}, "oneOf", 2),
        ({"type": "integer", "maximum": 2**64}, "maximum", 2**65),
        ({"type": "integer", "multipleOf": 2048}, "multipleOf", 5),
        ({"type": "string", "format": "email", "maxLength": 5}, "maxLength", "longer@example.com"),
        ({"type": "integer", "minimum": 0, "multipleOf": 12}, "multipleOf", 25),
    ],
)
def test_unenforced_keywords_are_listed_and_caught_after_decoding(schema, keyword, violating):
    norm = normalize(schema)
    assert keyword in {u.keyword for u in norm.unenforced}
    assert accepts(schema, violating)  # the grammar lets it through ...
    assert validate(violating, norm)  # ... validation after decoding does not
    assert keyword in {u.keyword for u in unenforced_violations(violating, norm)}


def test_disjoint_oneof_is_fully_enforced():
    assert "oneOf" not in keywords({"oneOf": [{"type": "integer"}, {"type": "string"}]})


def test_small_lengths_and_integer_multiple_of_are_enforced():
    schema = {"type": "object", "properties": {"s": {"type": "string", "minLength": 1, "maxLength": 3}, "n": {"type": "integer", "multipleOf": 3}}}
    assert normalize(schema).unenforced == ()
    assert accepts(schema, {"s": "abc", "n": 9})
    assert not accepts(schema, {"s": ""}) and not accepts(schema, {"s": "abcd"}) and not accepts(schema, {"n": 4})


@pytest.mark.parametrize("keyword", ["disallow", "extends"])
def test_draft3_only_keywords_raise(keyword):
    with pytest.raises(UnsupportedSchemaError) as info:
        normalize({"type": "object", "properties": {"x": {keyword: "string"}}})
    assert info.value.keyword == keyword


def test_unknown_keywords_are_annotations():
    norm = normalize({"type": "object", "properties": {"x": {"type": "string", "x-ui": 1, "_format": "k", "emum": [1]}}})
    assert norm.schema["properties"]["x"] == {"type": "string"}
    assert norm.unenforced == ()


def test_normalize_is_pure():
    schema = {"type": "object", "properties": {"x": {"type": "dict", "required": True}}}
    before = json.dumps(schema)
    assert normalize(schema) == normalize(schema)
    assert json.dumps(schema) == before


def test_emitted_form_follows_the_schema():
    norm = normalize({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"const": 0}}})
    assert list(as_emitted({"b": 1.0, "a": 2}, norm)) == ["a", "b"]
    assert json.dumps(as_emitted({"c": 0.0, "b": 1.0, "z": 1}, norm)) == '{"b": 1, "c": 0, "z": 1}'
    assert as_emitted({"z": 1, "a": 2}, norm, drop_undeclared=True) == {"a": 2}


# --------------------------------------------------------------------------- property test

_SCALARS = st.one_of(
    st.fixed_dictionaries({"type": st.just("integer")}, optional={"minimum": st.integers(-5, 5), "maximum": st.integers(-5, 5)}),
    st.fixed_dictionaries({"type": st.just("string")}, optional={"maxLength": st.integers(0, 3), "enum": st.lists(st.text("ab", max_size=2), min_size=1, max_size=3, unique=True)}),
    st.fixed_dictionaries({"type": st.just("boolean")}),
    st.fixed_dictionaries({"type": st.sampled_from([["number", "null"], ["string", "null"]])}),
)
_OBJECTS = st.dictionaries(st.sampled_from("abc"), _SCALARS, min_size=1, max_size=3).flatmap(
    lambda props: st.fixed_dictionaries({
        "type": st.just("object"),
        "properties": st.just(props),
        "required": st.lists(st.sampled_from(sorted(props)), unique=True),
        "additionalProperties": st.just(False),
    })
)
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-7, 7), st.floats(-3, 3, allow_nan=False).map(lambda f: round(f, 2)), st.text("ab", max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=_OBJECTS, instance=st.dictionaries(st.sampled_from("abcd"), _VALUES, max_size=4))
def test_grammar_and_validation_agree_on_enforced_keywords(schema, instance):
    try:
        norm = normalize(schema)
    except UnsupportedSchemaError as exc:  # crossed bounds, or no enum value fits, on a required property
        assert exc.keyword in ("minimum", "enum")
        assume(False)
    assert norm.unenforced == ()
    assert accepts(schema, instance) == (validate(instance, norm) == [])


def test_format_date_is_enforced_exactly_against_the_calendar():
    import datetime
    import re

    from constrained.schema import DATE_PATTERN

    norm = normalize({"type": "object", "properties": {"d": {"type": "string", "format": "date"}}})
    assert norm.unenforced == () and norm.schema["properties"]["d"]["pattern"] == DATE_PATTERN
    rx = re.compile(DATE_PATTERN)
    for year in (0, 1, 4, 100, 400, 1900, 2000, 2023, 2024, 2100, 9999):
        for month in range(0, 14):
            for day in range(0, 33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    datetime.date.fromisoformat(text)
                    real = True
                except ValueError:
                    real = False
                assert bool(rx.match(text)) == real, text


def test_hostile_patterns_run_in_linear_time():
    """`^(a+)+$` against 34 `a` and a `b` backtracks ~2**34 steps in Python's `re` (hours, holding
    the GIL); normalisation (which declared names a pattern matches) and validation (pattern,
    patternProperties, additionalProperties) run it on RE2. A subprocess, so that a regression
    fails by its timeout instead of hanging the suite."""
    import subprocess
    import sys

    code = """
from constrained.schema import normalize, validate
name = "a" * 34 + "b"
schema = {"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}}, "properties": {name: {"type": "string", "pattern": "^(a|aa)+$"}},
          "required": [name], "additionalProperties": False}
norm = normalize(schema, additional_properties="schema")
errors = validate({name: name, "a" * 40: "x", "a" * 34 + "c": 1}, norm)
print(len(errors), sorted(e.split(":")[0] for e in errors))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    # the name fails its pattern, "aaa...a" its integer type, "aaa...c" is no declared or pattern name
    assert out.stdout.split()[0] == "3"


def test_too_deep_schemas_are_refused_naming_the_limit_and_path():
    from constrained.schema.checks import MAX_DEPTH

    schema: dict = {"type": "string"}
    for _ in range(MAX_DEPTH // 2):  # two levels of JSON each
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(UnsupportedSchemaError) as info:
        normalize(schema)
    assert f"deeper than {MAX_DEPTH} levels" in str(info.value)
    assert info.value.path == "$" + ".properties.a" * (MAX_DEPTH // 2) and info.value.keyword == "properties"
    normalize(schema["properties"]["a"])  # one level less is served


_JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3),
                            lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=4)
_TYPE_NAMES = st.sampled_from(["string", "integer", "number", "boolean", "null", "array", "object"])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_JSON_VALUES, st.one_of(_TYPE_NAMES, st.lists(_TYPE_NAMES, min_size=1, max_size=3)))
def test_an_enum_value_fits_its_type_as_json_schema_says(value, type_):
    """The enum filter's type-only check (no validator: the common case on large schemas) agrees
    with jsonschema's, e.g. on 1.0 as an integer and True as no number."""
    import jsonschema

    from constrained.schema.build import _literal_check

    assert _literal_check({"type": type_}, full_match=True)(value) == jsonschema.Draft202012Validator({"type": type_}).is_valid(value)
