"""The keyword table: what normalisation does with each JSON Schema keyword, and the vocabularies
the passes share (one place to read or change a decision).


``normalize(schema)`` turns a user schema into one that
``xgrammar.Grammar.from_json_schema(s, any_whitespace=False, strict_mode=True)`` compiles and
enforces faithfully, and lists the constraints the grammar cannot enforce so that they are
checked after decoding by ``validate`` (jsonschema, draft 2020-12, formats checked).

Two passes, each copying the tree once:

1. *canonicalise* (``NormalizedSchema.validation``): same meaning as the user's schema, written as
   draft 2020-12 with BFCL/Python/Java type names mapped. ``validate`` uses it.
2. *build* (``NormalizedSchema.schema``): keep what xgrammar enforces, rewrite what it gets wrong,
   drop (and record in ``unenforced``) what it cannot enforce, raise on what cannot be expressed.

Paths (``$.properties.x.items``) are in canonical coordinates, which equal the user's except for
the draft-4 ``items: [...]`` -> ``prefixItems`` rename.

Policy for properties a schema does not declare (``additional_properties``):

- ``"forbid"`` (the default for tool arguments): argument objects follow xgrammar strict mode:
  properties not declared are not generated, because a hallucinated argument name is the common
  failure and a Python tool called with an unexpected keyword raises. A *nested* object with no
  ``properties``, ``patternProperties`` or ``additionalProperties`` stays a free-form object. The
  *root* schema ``None``/``True``/``{}``/``{"type": "object"}`` (a tool without arguments) accepts
  ``{}`` only.
- ``"schema"`` (JSON Schema's own meaning; the default for ``response_format``): an object without
  ``additionalProperties`` takes any other property, as the specification says. Only a root of
  ``None`` (no parameters at all) means ``{}``. An object that must lack some property (a ``false``
  property schema) or says ``unevaluatedProperties: false`` stays closed: the grammar can only
  exclude declared names from the extra keys. Extra keys cost compile time: xgrammar builds a
  string automaton that excludes every declared name (~40 ms cold per object).

Either way, arrays declaring no ``items`` take any items and properties are generated in
declared order (extra properties after the declared ones).

| keyword | decision |
|---|---|
| ``type`` | enforced; ``dict``/``HashMap``/``Map``/``Hashtable``->object, ``float``/``double``->number, ``int``/``long``/``short``/``byte``->integer, ``bool``->boolean, ``str``/``char``->string, ``list``/``tuple``/``ArrayList``/``Array``/``Queue``/``Stack``->array, ``any``->no constraint; other names case-insensitively; unknown -> error |
| ``enum``, ``const`` | enforced; object/array values rewritten into structural schemas (xgrammar compares them as text with other separators) |
| ``properties``, ``required``, ``additionalProperties`` | enforced; a required name not declared is declared (any value); a ``false`` property is removed; draft-3 ``required: true`` on a property moves to the parent's list |
| ``patternProperties``, ``propertyNames``, ``pattern`` | enforced; patterns rewritten from search to full-match semantics; a pattern xgrammar cannot parse or would only approximate (look-around, back-references, ``\\b``, ``\\p{}``, ``\\Z``...) is dropped -> unenforced ``pattern``; a declared name matching a pattern gets both schemas, and so does the pattern's value; ``additionalProperties`` values also get every pattern's schema (xgrammar picks one path per key) |
| ``minLength``/``maxLength`` | enforced up to 2 / 8: xgrammar unrolls them, ~25 ms of compile time per unit with a 129k vocabulary (``maxLength: 100`` takes ~3 s); larger bounds, and any next to ``pattern`` (ignored there by xgrammar), -> unenforced |
| ``format`` | enforced for date, date-time, time, duration, email, hostname, ipv4, ipv6, uuid, uri, uri-reference, uri-template, json-pointer, relative-json-pointer (date exactly, by a calendar regex with leap years; date-time and time by shape only, so also listed unenforced); others -> unenforced |
| ``minimum``/``maximum``/``exclusive*`` | enforced; draft-4 boolean ``exclusiveMinimum``/``Maximum`` converted; bounds of integers rounded inwards |
| ``multipleOf`` | enforced for integers with an integer divisor and no bound (xgrammar ignores it next to ``minimum``/``maximum``); otherwise unenforced (draft-3 ``divisibleBy`` mapped) |
| ``items``, ``prefixItems``, ``minItems``, ``maxItems`` | enforced; draft-4 ``items: [...]``/``additionalItems`` mapped |
| ``minProperties``, ``maxProperties`` | enforced |
| ``uniqueItems``, ``contains``/``minContains``/``maxContains``, ``dependentRequired``, ``dependentSchemas``/``dependencies``, ``if``/``then``/``else``, ``unevaluated*`` (schemas) | unenforced |
| ``not`` | ``not: {type: T}`` rewritten into the complementary ``type``; any other ``not`` -> unenforced |
| ``allOf`` | merged into the parent (types intersected, properties united, bounds tightened, anyOf branches crossed up to 256, beyond -> error); conflicting patterns/formats -> unenforced; a branch that is a recursive ``$ref`` still being built -> unenforced ``allOf`` |
| ``anyOf`` | enforced; sibling keywords distributed into every branch (xgrammar ignores one or the other); siblings of a recursive branch -> unenforced ``anyOf`` |
| unsatisfiable parts (``false``, ``not: {}``, crossed bounds, empty type intersection) | an optional property or an anyOf branch that matches nothing is removed; items/additionalProperties become ``false``; elsewhere -> error |
| ``oneOf`` | enforced as ``anyOf``; exclusivity unenforced unless branches have disjoint types/constants |
| ``$ref`` | local refs (``#``, any JSON pointer, ``$anchor``) hoisted to top-level ``$defs``; recursion kept; remote or unresolvable -> error |
| ``nullable`` (OpenAPI) | mapped to a ``null`` type/enum member |
| ``disallow``, ``extends`` (draft 3), a root that matches nothing | error |
| anything else (``description``, ``title``, ``default``, ``examples``, ``$schema``, ``$id``, ``x-*``, junk such as ``optional``, ``_format``) | annotation, ignored (as JSON Schema says of unknown keywords) |

``normalize`` is a pure function of its input: callers may cache it by the schema's JSON text.

Upstream xgrammar 0.2.8 issues worked around here:

- ``pattern``/``patternProperties`` keys are matched as full matches, not searches (JSON Schema).
- ``const``/``enum`` with object or array values never match the ``", "``/``": "`` separators.
- ``anyOf``/``oneOf`` next to other keywords: one side is ignored.
- ``allOf`` with more than one branch: only the first is used.
- ``minLength``/``maxLength`` next to ``pattern`` are ignored.
- each key takes one of ``properties``, ``patternProperties``, ``additionalProperties``: a declared
  name may take (or repeat under) a pattern's schema, and a key matching a pattern may take the
  ``additionalProperties`` schema, where JSON Schema applies all that match.
- with its cache enabled, compiling some grammars fails ("Check failed: per_rule_fsm_hashes...",
  e.g. a bounded pattern property); ``constrained.compiler.compile_grammar`` retries uncached.
- strict mode: a ``required`` property that is not declared makes the object unsatisfiable; an
  array with ``minItems`` but no ``items`` fails to compile; a bare object with ``minProperties``
  fails to compile; integer bounds must be whole numbers; draft-4 boolean ``exclusiveMinimum``
  and list-form ``items`` fail to compile.
- remote ``$ref`` only warns and then accepts anything; ``~1`` escapes in refs are not decoded.
- string ``minLength``/``maxLength`` compile in time linear in the bound (~25 ms per unit).
- ``multipleOf`` next to ``minimum``/``maximum`` is ignored silently.
- ``multipleOf`` on numbers and look-ahead in patterns are ignored with a warning only; ``^``/``$``
  inside a pattern are ignored with a warning.
- an integral float constant (``const: 0.0``) only matches ``0``.
- a ``false`` subschema or crossed bounds (``minimum`` > ``maximum``) fail to compile.
- ``format: date``/``date-time`` check the shape only (``2024-02-30`` passes); we replace ``date`` by an exact calendar pattern.
"""

from __future__ import annotations

from typing import Any

# What an object does with properties its schema does not declare (see the module docstring).
ADDITIONAL_PROPERTIES = ("forbid", "schema")

# --------------------------------------------------------------------------- vocabularies

_TYPES = ("null", "boolean", "object", "array", "number", "string", "integer")
_TYPE_ALIASES = {
    "dict": "object", "hashmap": "object", "map": "object", "hashtable": "object",
    "float": "number", "double": "number",
    "int": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "bool": "boolean", "str": "string", "char": "string",
    "list": "array", "tuple": "array", "arraylist": "array", "queue": "array", "stack": "array",
    "any": None,
}
_SCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
           "propertyNames", "unevaluatedItems", "unevaluatedProperties")
_SCHEMA_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCALAR = ("enum", "const", "required", "minLength", "maxLength", "pattern", "format",
           "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
           "minItems", "maxItems", "uniqueItems", "minContains", "maxContains",
           "minProperties", "maxProperties", "dependentRequired", "$ref", "$anchor", "$id", "id")
_XGRAMMAR_FORMATS = frozenset({
    "date", "date-time", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri",
    "uri-reference", "uri-template", "json-pointer", "relative-json-pointer"})
# Kept in the grammar, which checks their shape only (2024-02-30 passes): also checked after decoding.
_APPROXIMATE_FORMATS = frozenset({"date", "date-time", "time"})
# ...except `date`, which a regular expression can state exactly: real calendar dates from
# 0001-01-01 to 9999-12-31, February 29 in leap years only (what `datetime.date` accepts).
_YEAR = r"([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
DATE_PATTERN = (
    rf"^({_YEAR}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    rf"|02-(0[1-9]|1[0-9]|2[0-8]))|{_LEAP_YEAR}-02-29)$"
)
# xgrammar unrolls string length bounds; larger ones are checked after decoding (compile time).
_LENGTH_LIMITS = {"minLength": 2, "maxLength": 8}
# allOf of anyOfs is expanded into their cross product, up to this many branches.
_MAX_BRANCHES = 256
# Dropped from the grammar and checked after decoding, whatever their value.
_UNENFORCED = ("contains", "minContains", "maxContains", "dependentRequired", "dependentSchemas", "if")
# Keywords that constrain (everything else in a built node is gone by then).
_CONSTRAINTS = frozenset(_SCHEMA + _SCHEMA_MAP + _SCHEMA_LIST + _SCALAR + ("type",)) - {
    "$defs", "definitions", "$anchor", "$id", "id"}


def _child(path: str, key: str) -> str:
    return f"{path}.{key}"


def _types(s: dict) -> set[str]:
    t = s.get("type")
    return set(_TYPES) if t is None else set(t if isinstance(t, list) else [t])


def _same(x: Any, y: Any) -> bool:
    # JSON equality: 1 == 1.0 but True != 1
    return type(x) is type(y) and x == y if isinstance(x, bool) or isinstance(y, bool) else x == y
