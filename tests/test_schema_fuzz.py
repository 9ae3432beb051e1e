"""Differential fuzz (issue 17, class 8): generated schemas x generated instances. The grammar's
verdict (real xgrammar, the instance written as a grammar-guided model writes it) must equal
jsonschema's under the schema's own draft, or the difference must be one the library publishes:

- the grammar accepts an invalid instance: `unenforced_violations` names an unenforced keyword it
  breaks (`validate` reports it after decoding);
- the grammar rejects a valid instance: for properties the schema does not declare (the instance is
  accepted once they are left out): by design under the `forbid` policy; under `schema` where an
  object must lack a declared name (the grammar cannot exclude it from the extra keys, so the
  object stays closed), and where an object has ``patternProperties``: xgrammar may write any extra
  key through ``additionalProperties``, so its value must satisfy every pattern's (and declared
  name's) schema too; under drafts 3/4, where a float equal to an integer enum or const member
  (0.0 for 0) is valid: the grammar writes the member as JSON writes it.

Anything else is a bug. Numbers are drawn with at most two decimals and no exponent, which is what
xgrammar can write under numeric bounds (a documented limit, see `constrained.schema.keywords`)."""

from __future__ import annotations

import json

import jsonschema
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_schema import _COMPILER

from constrained.guards import matcher as guarded_matcher
from constrained.schema import UnsupportedSchemaError, normalize, unenforced_violations, validate
from constrained.schema.validate import _validator
from constrained.tools.coverage import schema_grammar
from constrained.tools.emitted import as_emitted

NAMES = ("a", "b", "c")
PATTERNS = ("^a", "b$", "[0-9]", "^[a-c]+$", "^x-", "é")
FORMATS = ("date", "email", "uuid", "date-time", "ipv4")
STRINGS = st.text(st.sampled_from('ab0x-é"\\\n'), max_size=5) | st.sampled_from(
    ["2024-02-29", "2023-02-29", "a@b.co", "not an email", "123e4567-e89b-12d3-a456-426614174000", "10.0.0.1",
     "2024-01-01T10:00:00Z", "x-tag", "abc"])
NUMBERS = st.integers(-6, 6) | st.floats(-6, 6, allow_nan=False).map(lambda f: round(f, 2))
SCALARS = st.none() | st.booleans() | NUMBERS | STRINGS
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from([*NAMES, "x-1", "z"]), inner, max_size=3), max_leaves=8)

_BOUND = st.integers(-4, 4) | st.sampled_from([0.5, -1.5, 2**70, -(2**70)])


def _leaf() -> st.SearchStrategy:
    integer = st.fixed_dictionaries({"type": st.just("integer")}, optional={
        "minimum": _BOUND, "maximum": _BOUND, "exclusiveMinimum": _BOUND, "multipleOf": st.sampled_from([2, 3, 2048])})
    number = st.fixed_dictionaries({"type": st.just("number")}, optional={
        "minimum": st.sampled_from([-1, 0.5, 2]), "exclusiveMaximum": st.sampled_from([0, 1.5, 5]), "multipleOf": st.just(0.5)})
    string = st.fixed_dictionaries({"type": st.just("string")}, optional={
        "minLength": st.sampled_from([0, 1, 2, 30]), "maxLength": st.sampled_from([0, 2, 3, 40]),
        "pattern": st.sampled_from(PATTERNS), "format": st.sampled_from(FORMATS)})
    untyped = st.fixed_dictionaries({}, optional={
        "minimum": st.just(2), "minLength": st.just(2), "pattern": st.just("^a"), "maxItems": st.just(1), "required": st.just(["a"])})
    enum = st.fixed_dictionaries({"enum": st.lists(SCALARS, min_size=1, max_size=4)}, optional={
        "type": st.sampled_from(["string", "integer", ["string", "null"]]), "maxLength": st.just(2), "minimum": st.just(0)})
    return st.one_of(integer, number, string, untyped, enum,
                     st.fixed_dictionaries({"type": st.sampled_from(["boolean", "null", ["integer", "string"], ["number", "null"]])}),
                     st.builds(lambda v: {"const": v}, SCALARS), st.just({}), st.just({"$ref": "#/$defs/leaf"}))


def _extend(inner: st.SearchStrategy) -> st.SearchStrategy:
    props = st.dictionaries(st.sampled_from(NAMES), inner, min_size=1, max_size=3)
    obj = props.flatmap(lambda p: st.fixed_dictionaries({"type": st.just("object"), "properties": st.just(p)}, optional={
        "required": st.lists(st.sampled_from(sorted(p)), unique=True, max_size=2),
        "additionalProperties": st.booleans() | inner, "patternProperties": st.builds(lambda s: {"^x-": s}, inner),
        "minProperties": st.just(1), "maxProperties": st.just(2)}))
    arr = st.fixed_dictionaries({"type": st.just("array")}, optional={
        "items": inner, "prefixItems": st.lists(inner, min_size=1, max_size=2), "minItems": st.just(1), "maxItems": st.just(2),
        "uniqueItems": st.just(True)})
    two = st.lists(inner, min_size=2, max_size=2)
    return st.one_of(obj, arr, st.builds(lambda b: {"anyOf": b}, two), st.builds(lambda b: {"oneOf": b}, two),
                     st.builds(lambda b: {"allOf": b}, two),
                     st.builds(lambda t: {"not": {"type": t}}, st.sampled_from(["string", "integer", "null"])),
                     st.builds(lambda s: {**s, "$ref": "#/$defs/leaf"}, inner.filter(lambda s: isinstance(s, dict))))


NODES = st.recursive(_leaf(), _extend, max_leaves=6)
DRAFTS = st.sampled_from([None, "http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-04/schema#"])


@st.composite
def cases(draw):
    draft = draw(DRAFTS)
    node = draw(NODES)
    leaf = draw(_leaf().filter(lambda s: "$ref" not in s))
    defs = "definitions" if draft else "$defs"
    schema = json.loads(json.dumps({"type": "object", "properties": {"v": node}, "required": ["v"], defs: {"leaf": leaf}})
                        .replace('"#/$defs/leaf"', f'"#/{defs}/leaf"'))
    if draft:
        schema["$schema"] = draft
    return schema, {"v": draw(VALUES)}, draw(st.sampled_from(["schema", "forbid"]))


def _accepts(norm, value, **drop) -> bool:
    matcher = guarded_matcher(_COMPILER.compile_grammar(schema_grammar(norm.schema)), terminate_without_stop_token=True)
    text = json.dumps(as_emitted(value, norm, **drop), ensure_ascii=False)
    return matcher.accept_string(text) and matcher.is_completed()


def _integral_floats_as_ints(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    return value


def _referee(schema, instance) -> bool:
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=_validator()[1]).is_valid(instance)  # formats checked as validate() does


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_grammar_verdict_equals_jsonschema_or_is_published(case):
    schema, instance, policy = case
    try:
        norm = normalize(schema, additional_properties=policy)
    except UnsupportedSchemaError as exc:  # named; the schema is refused, nothing to compare
        assert exc.keyword and exc.path.startswith("$")
        assume(False)
    valid = _referee(schema, instance)
    accepted = _accepts(norm, instance)
    if accepted and not valid:
        assert unenforced_violations(instance, norm), ("accepted, invalid, no unenforced keyword", norm.schema, norm.unenforced)
    elif valid and not accepted:
        explained = False
        for drop in ("drop_undeclared", "drop_unmatched"):  # see the module docstring
            dropped = as_emitted(instance, norm, **{drop: True})
            if dropped != as_emitted(instance, norm) and (drop == "drop_undeclared" or "patternProperties" in json.dumps(norm.schema)):
                # rejected for its extra keys: without them it is accepted, or no longer valid (minProperties)
                explained |= _accepts(norm, dropped) or not _referee(schema, dropped)
        if norm.draft < 6:
            # drafts 3/4: enum and const compare numbers by value (0.0 is 0) while `type: integer`
            # refuses 0.0, so the emitter keeps a float's spelling; the grammar writes the member
            # as JSON writes it (0): the same value, spelled as the grammar spells it
            explained |= _accepts(norm, _integral_floats_as_ints(instance))
        assert explained, ("valid, rejected", norm.schema)
    # what validate() reports after decoding agrees with jsonschema on what the grammar lets through
    if accepted:
        assert (validate(instance, norm) == []) == valid, (validate(instance, norm), norm.validation)
