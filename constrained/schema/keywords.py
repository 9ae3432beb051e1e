"""The keyword table: what normalisation does with each JSON Schema keyword, and the vocabularies
the passes share (one place to read or change a decision).


``normalize(schema)`` turns a user schema into one that
``xgrammar.Grammar.from_json_schema(s, any_whitespace=False, strict_mode=True)`` compiles and
enforces faithfully, and lists the constraints the grammar cannot enforce so that they are
checked after decoding by ``validate`` (jsonschema, draft 2020-12, formats checked).

Two passes, each copying the tree once:

1. *canonicalise* (``NormalizedSchema.validation``): same meaning as the user's schema under the
   draft its ``$schema`` declares (2020-12 when none), written as draft 2020-12 with BFCL/Python/Java
   type names mapped and every ``$ref`` resolved to a JSON pointer from the root (see
   ``canonical``). ``validate`` uses it.
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

Either way, arrays take any items beyond those ``items``/``prefixItems`` describe (JSON Schema's
meaning; xgrammar's strict mode would allow none).

Key order (the contract ``constrained.tools.emitted`` writes instances by): an object's declared
properties are generated first, in the order the normalised schema declares them (after ``allOf``
merging: the first branch's, then new names of later ones; through ``$ref``: the target's), then
any other keys (``patternProperties``, ``additionalProperties``) in any order, at every depth.

Published limits (the grammar rejects a value JSON Schema accepts): properties a schema does not
declare under ``"forbid"``; under ``"schema"``, extra keys of an object that must lack a declared
name, and extra keys beside ``patternProperties`` whose value breaks a pattern's or a declared
name's schema (xgrammar may write any key through ``additionalProperties``); numbers under bounds
with more than 6 decimals or an exponent; lone surrogate escapes (``\\ud800``) in strings with
length bounds. OpenAPI's ``nullable`` is read although no draft has it.

| keyword | decision |
|---|---|
| ``type`` | enforced; ``dict``/``HashMap``/``Map``/``Hashtable``->object, ``float``/``double``->number, ``int``/``long``/``short``/``byte``->integer, ``bool``->boolean, ``str``/``char``->string, ``list``/``tuple``/``ArrayList``/``Array``/``Queue``/``Stack``->array, ``any``->no constraint; other names case-insensitively; unknown -> error |
| ``enum``, ``const`` | enforced; object/array values rewritten into structural schemas (xgrammar compares them as text with other separators); scalar values that break a keyword beside them removed |
| ``properties``, ``required``, ``additionalProperties`` | enforced; a required name not declared is declared (any value); a ``false`` property is removed; draft-3 ``required: true`` on a property moves to the parent's list |
| ``patternProperties``, ``propertyNames``, ``pattern`` | enforced; patterns rewritten from search to full-match semantics; a pattern xgrammar cannot parse or would only approximate (look-around, back-references, ``\\b``, ``\\p{}``, ``\\Z``...) is dropped -> unenforced ``pattern``; a declared name matching a pattern gets both schemas, and so does the pattern's value; ``additionalProperties`` values also get every pattern's and every declared name's schema (xgrammar picks one path per key, and beside patterns writes extra keys as any string) |
| ``minLength``/``maxLength`` | enforced at any size, counting decoded characters (an escape is one character; `strings` rewrites xgrammar's rule, which forbids escapes): up to 8 as an exact chain of rules (~25-45 ms of compile time per unit with a 129k vocabulary), above it as one rule counted at run time (`constrained.lengths`: the compile cost of a free string, whatever the bound); next to ``pattern`` or ``format`` (ignored there by xgrammar) -> unenforced; next to ``enum`` the values are filtered; in the XML encoding's raw values (no closing quote to count to) bounds above 8 -> checked after decoding |
| ``format`` | enforced for date, date-time, time, duration, email, hostname, ipv4, ipv6, uuid, uri, uri-reference, uri-template, json-pointer, relative-json-pointer (date exactly, by a calendar regex with leap years; date-time and time by shape only, so also listed unenforced); others -> unenforced |
| ``minimum``/``maximum``/``exclusive*`` | enforced; draft-4 boolean ``exclusiveMinimum``/``Maximum`` converted; bounds of integers rounded inwards to inclusive ones; an integer bound beyond the int64 range (or not finite) -> unenforced |
| ``multipleOf`` | enforced for integers with an integer divisor up to 1024 and no bound (xgrammar ignores it next to ``minimum``/``maximum`` and above 1024); otherwise unenforced (draft-3 ``divisibleBy`` mapped) |
| ``items``, ``prefixItems``, ``minItems``, ``maxItems`` | enforced; draft-4 ``items: [...]``/``additionalItems`` mapped; a prefix item that matches nothing ends the array before it |
| ``minProperties``, ``maxProperties`` | enforced |
| ``uniqueItems``, ``contains``/``minContains``/``maxContains``, ``dependentRequired``, ``dependentSchemas``/``dependencies``, ``if``/``then``/``else``, ``unevaluated*`` (schemas) | unenforced |
| ``not`` | ``not: {type: T}`` rewritten into the complementary ``type`` (``not: {type: integer}`` also unenforced: xgrammar's numbers include integers); any other ``not`` -> unenforced |
| ``allOf`` | merged into the parent (types intersected, properties united, bounds tightened, anyOf branches crossed up to 256, beyond -> error); conflicting patterns/formats -> unenforced; a branch that is a recursive ``$ref`` still being built -> unenforced ``allOf`` |
| ``anyOf`` | enforced; sibling keywords distributed into every branch (xgrammar ignores one or the other); siblings of a recursive branch -> unenforced ``anyOf`` |
| unsatisfiable parts (``false``, ``not: {}``, crossed bounds, empty type intersection, more properties or items than an object or array can hold) | an optional property or an anyOf branch that matches nothing is removed; items/additionalProperties become ``false``; elsewhere -> error |
| ``oneOf`` | enforced as ``anyOf``; exclusivity unenforced unless branches have disjoint types/constants |
| ``$ref`` | resolved against the base URI of its subschema (nested ``$id``/``id``), JSON pointers, anchors (``$anchor``, ``"$id": "#foo"``) and relative refs to embedded resources; hoisted to top-level ``$defs``; recursion kept; remote or unresolvable -> error naming the ``$ref`` and its path; siblings of ``$ref`` ignored in drafts 3-7 (by ``$schema``; applied from 2019-09, the default) |
| ``nullable`` (OpenAPI) | mapped to a ``null`` type/enum member |
| a keyword the declared draft lacks (``const`` in draft 4, ``dependentRequired`` in draft 7...) | annotation (jsonschema's own tables); in drafts 3/4 ``exclusiveMinimum``/``Maximum`` are flags on ``minimum``/``maximum`` and ``1.0`` is not an integer |
| ``disallow``, ``extends`` (draft 3), a root that matches nothing | error |
| ``$dynamicRef``, ``$recursiveRef`` | error |
| a node without ``type`` | every type's keywords apply to values of that type, other values are free (xgrammar: every type named) |
| anything else (``description``, ``title``, ``default``, ``examples``, ``$schema``, ``$id``, ``x-*``, junk such as ``optional``, ``_format``) | annotation, ignored (as JSON Schema says of unknown keywords) |

``normalize`` is a pure function of its input: callers may cache it by the schema's JSON text.

Upstream xgrammar 0.2.8 issues worked around here:

- ``pattern``/``patternProperties`` keys are matched as full matches, not searches (JSON Schema).
- ``const``/``enum`` with object or array values never match the ``", "``/``": "`` separators.
- ``anyOf``/``oneOf`` next to other keywords: one side is ignored.
- ``allOf`` with more than one branch: only the first is used.
- ``minLength``/``maxLength`` next to ``pattern`` or ``format`` are ignored; bounded strings cannot
  hold escapes (``\\"``, ``\\n``) and can hold raw control characters.
- keywords of a type the node does not name are ignored (``{"minLength": 5}`` takes ``"ab"``): an
  untyped node with such keywords gets every type named.
- ``enum``/``const`` ignore every keyword beside them (``type``, lengths, bounds, pattern, format):
  the values that do not satisfy them are removed.
- integer bounds beyond the int64 range fail to compile ("Check failed ... Integer exceeds maximum
  limit"): such a bound is unenforced; an integer ``multipleOf`` above 1024 is ignored (a warning).
- numbers with bounds are written with at most 6 decimals and no exponent (``1e-07``, ``0.1234567``
  cannot be written).
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
- string ``minLength``/``maxLength`` compile in time linear in the bound (~25 ms per unit) and fill
  masks in milliseconds per token (0.2.8); 0.2.9 compiles them in constant time, for a rule of one
  character class only.
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
# String length bounds up to 8 are exact chains (`strings`): one set of token masks per character,
# ~25-45 ms of compile time each on a 129k vocabulary (shared between properties, and between
# grammars by a warm compiler). Larger bounds are one guarded rule each, counted at run time.
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
