"""JSON Schema normalisation for xgrammar 0.2.8 (tool-call arguments).

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

import copy
import datetime
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import xgrammar

__all__ = [
    "NormalizedSchema",
    "Unenforced",
    "UnsupportedSchemaError",
    "as_emitted",
    "normalize",
    "unenforced_violations",
    "validate",
]


class UnsupportedSchemaError(ValueError):
    """A schema keyword that can be neither enforced nor checked after decoding."""

    def __init__(self, keyword: str, path: str, reason: str):
        self.keyword = keyword
        self.path = path
        self.reason = reason
        super().__init__(f"unsupported JSON Schema keyword {keyword!r} at {path}: {reason}")


@dataclass(frozen=True)
class Unenforced:
    keyword: str
    path: str


@dataclass(frozen=True)
class NormalizedSchema:
    schema: dict
    unenforced: tuple[Unenforced, ...]
    original: Any
    # Draft 2020-12 form with the user's meaning (type names mapped); what ``validate`` checks.
    validation: Any = field(default=None, repr=False, compare=False)


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


# --------------------------------------------------------------------------- pass 1: canonical


class _Canonicalizer:
    """Copy the schema into draft 2020-12 with mapped type names; same meaning."""

    def __init__(self) -> None:
        self.refs: list[str] = []
        self.seen: set[int] = set()

    def run(self, schema: Any) -> Any:
        out = self.node(schema, "$")
        # Refs may point into non-schema keywords (``#/ddd/x``); canonicalise those targets too.
        for ref in self.refs:
            target = _resolve_pointer(out, ref)
            if isinstance(target, dict) and id(target) not in self.seen:
                canon = self.node(target, "$")
                target.clear()
                target.update(canon)
        return out

    def node(self, s: Any, path: str) -> Any:
        if isinstance(s, bool):
            return s
        if not isinstance(s, dict):
            raise UnsupportedSchemaError("schema", path, f"a schema must be an object or a boolean, got {type(s).__name__}")
        out: dict = {}
        lifted: list[str] = []
        for key, value in s.items():
            p = _child(path, key)
            if key == "type":
                out["type"] = _map_type(value, p)
                if out["type"] is None:
                    del out["type"]
            elif key == "properties" and isinstance(value, dict):
                props = {}
                for name, sub in value.items():
                    # draft 3: ``required: true`` on the property itself
                    if isinstance(sub, dict) and isinstance(sub.get("required"), bool):
                        if sub["required"]:
                            lifted.append(name)
                        sub = {k: v for k, v in sub.items() if k != "required"}
                    props[name] = self.node(sub, _child(p, name))
                out[key] = props
            elif key in _SCHEMA_MAP and isinstance(value, dict):
                out[key] = {name: self.node(sub, _child(p, name)) for name, sub in value.items()}
            elif key == "items" and isinstance(value, list):  # draft 4 tuple form
                out["prefixItems"] = [self.node(sub, f"{path}.prefixItems[{i}]") for i, sub in enumerate(value)]
                if "additionalItems" in s:
                    out["items"] = self.node(s["additionalItems"], _child(path, "additionalItems"))
            elif key == "additionalItems":
                if not isinstance(s.get("items"), list):
                    continue  # meaningless without tuple-form items (JSON Schema ignores it)
            elif key in _SCHEMA:
                out[key] = self.node(value, p)
            elif key in _SCHEMA_LIST and isinstance(value, list):
                out[key] = [self.node(sub, f"{p}[{i}]") for i, sub in enumerate(value)]
            elif key == "dependencies" and isinstance(value, dict):
                for name, dep in value.items():
                    if isinstance(dep, list):
                        out.setdefault("dependentRequired", {})[name] = dep
                    else:
                        out.setdefault("dependentSchemas", {})[name] = self.node(dep, _child(p, name))
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if value and bound in s:
                    out[key] = s[bound]
            elif key in ("minimum", "maximum") and s.get("exclusiveM" + key[1:]) is True:
                continue  # became exclusiveMinimum/Maximum above or below
            elif key == "divisibleBy":
                out["multipleOf"] = value
            elif key == "nullable":
                continue  # applied after the loop
            elif key in ("disallow", "extends"):
                raise UnsupportedSchemaError(key, p, "draft-3 keyword")
            elif key == "$ref":
                if not isinstance(value, str) or not value.startswith("#"):
                    raise UnsupportedSchemaError("$ref", p, f"only local references are supported, got {value!r}")
                self.refs.append(value)
                out[key] = value
            else:
                out[key] = value  # other validation keywords and annotations, unchanged
        if lifted:
            required = list(out.get("required") or [])
            out["required"] = required + [n for n in lifted if n not in required]
        if s.get("nullable") is True:
            _add_null(out)
        self.seen.add(id(out))
        return out


def _map_type(value: Any, path: str) -> Any:
    names = value if isinstance(value, list) else [value]
    mapped: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise UnsupportedSchemaError("type", path, f"type names must be strings, got {name!r}")
        low = name.lower()
        if low in _TYPES:
            t = low
        elif low in _TYPE_ALIASES:
            t = _TYPE_ALIASES[low]
            if t is None:
                return None  # ``any`` anywhere in the list: no constraint
        else:
            raise UnsupportedSchemaError("type", path, f"unknown type {name!r}")
        if t not in mapped:
            mapped.append(t)
    return mapped if isinstance(value, list) else mapped[0]


def _add_null(s: dict) -> None:
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if "null" not in types:
            s["type"] = [*types, "null"]
    if "enum" in s and None not in s["enum"]:
        s["enum"] = [*s["enum"], None]


def _resolve_pointer(root: Any, ref: str) -> Any:
    """Resolve ``#/a/b`` in ``root``; returns ``_MISSING`` when absent."""
    node = root
    for token in ref[1:].split("/")[1:]:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return _MISSING
    return node


_MISSING = object()


def _pointer_path(ref: str) -> str:
    tokens = [unquote(t).replace("~1", "/").replace("~0", "~") for t in ref[1:].split("/")[1:]]
    return "$" + "".join(f"[{t}]" if t.isdigit() else f".{t}" for t in tokens)


def _find_anchor(root: Any, name: str) -> Any:
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("$anchor") == name or node.get("$id") == "#" + name or node.get("id") == "#" + name:
                return node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return _MISSING


# --------------------------------------------------------------------------- pass 2: grammar


class _Builder:
    """Build the schema handed to xgrammar from a canonical schema."""

    def __init__(self, root: Any, open_objects: bool = False) -> None:
        self.root = root
        self.open_objects = open_objects  # additional_properties="schema"
        self.unenforced: list[Unenforced] = []
        self.def_names: dict[str, str] = {}
        self.defs: dict[str, Any] = {}
        self.merging: set[tuple[int, int]] = set()

    def unenforce(self, keyword: str, path: str) -> None:
        item = Unenforced(keyword, path)
        if item not in self.unenforced:
            self.unenforced.append(item)

    def build(self) -> dict:
        out = self.node(self.root, "$")
        if self.defs:
            out = {**out, "$defs": self.defs} if isinstance(out, dict) else {"$defs": self.defs}
        return out

    # -- nodes

    def node(self, s: Any, path: str) -> Any:
        """Built form of canonical ``s``; raises ``_Unsatisfiable`` when nothing can match."""
        if s is True:
            return {}
        if s is False:
            raise _Unsatisfiable("false", path, "the schema accepts nothing")
        out: dict = {}
        ref = None
        for key, value in s.items():
            handler = _HANDLERS.get(key)
            if handler is not None:
                handler(self, out, s, key, value, _child(path, key))
            elif key == "$ref":
                ref = self.ref(value, _child(path, key))
            # anything else is an annotation or a canonical-only location ($defs, definitions)
        _fix_object(out, s)
        if self.open_objects:
            _open_object(out, s)
        if out.get("patternProperties"):
            self.fix_pattern_properties(out, s, path)
        _fix_array(out)
        self.fix_multiple_of(out, path)
        _check_bounds(out, path)
        if ref is not None and not out and "allOf" not in s:
            return ref
        parts = [(ref, "$ref", _child(path, "$ref"))] if ref is not None else []
        parts += [(self.node(sub, f"{path}.allOf[{i}]"), "allOf", f"{path}.allOf[{i}]")
                  for i, sub in enumerate(s.get("allOf", ()))]
        merged: Any = out
        for part, keyword, where in parts:
            try:
                merged = self.merge(merged, part, path)
            except _InProgress:
                # a reference to a definition being built cannot be inlined: check it later
                self.unenforce(keyword, where)
        return self.distribute(merged, path)

    def ref(self, ref: str, path: str) -> dict:
        if ref == "#":
            return {"$ref": "#"}
        if ref not in self.def_names:
            if ref.startswith("#/"):
                target = _resolve_pointer(self.root, ref)
                target_path = _pointer_path(ref)
            else:
                target = _find_anchor(self.root, ref[1:])
                target_path = path
            if target is _MISSING:
                raise UnsupportedSchemaError("$ref", path, f"cannot resolve {ref!r}")
            name = re.sub(r"[^A-Za-z0-9_]", "_", ref[2:])[-48:] or "anchor"
            while name in self.defs:
                name += "_"
            self.def_names[ref] = name
            self.defs[name] = None  # placeholder while building: recursion refers to the name
            self.defs[name] = self.node(target, target_path)
        return {"$ref": f"#/$defs/{self.def_names[ref]}"}

    def deref(self, s: Any) -> Any:
        """Inline a hoisted ``$ref`` (one level) so that it can be merged."""
        if isinstance(s, dict) and set(s) == {"$ref"}:
            body = self.defs.get(s["$ref"].rsplit("/", 1)[1]) if s["$ref"] != "#" else None
            if body is None:
                raise _InProgress("$ref", s["$ref"], "recursive reference")
            return body
        return s

    # -- combinators

    def distribute(self, s: Any, path: str) -> Any:
        """xgrammar ignores anyOf or its siblings: push the siblings into every branch."""
        if not isinstance(s, dict) or "anyOf" not in s:
            return s
        rest = {k: v for k, v in s.items() if k != "anyOf"}
        branches = s["anyOf"]
        if rest:
            branches = self.branches(lambda b: self.merge_or_keep(rest, b, path), branches, "anyOf", path)
        return {"anyOf": branches} if len(branches) > 1 else branches[0]

    def merge_or_keep(self, rest: dict, branch: Any, path: str) -> Any:
        try:
            return self.merge(rest, branch, path)
        except _InProgress:
            # a recursive branch cannot take its siblings: check them after decoding
            self.unenforce("anyOf", _child(path, "anyOf"))
            return branch

    def branches(self, make: Callable[[Any], Any], items: list, keyword: str, path: str) -> list:
        """``make`` applied to each item, leaving out those that can match nothing."""
        out = []
        for item in items:
            try:
                out.append(make(item))
            except _Unsatisfiable:
                continue
        if not out:
            raise _Unsatisfiable(keyword, path, "no branch can match")
        return out

    def merge(self, a: Any, b: Any, path: str) -> Any:
        """Intersection of two built schemas (allOf), as far as the grammar needs it."""
        if a == {} or b == {}:
            return b if a == {} else a
        a, b = self.deref(a), self.deref(b)
        key = (id(a), id(b))
        if key in self.merging:  # recursive definitions merged into each other
            raise _InProgress("allOf", path, "recursive merge")
        self.merging.add(key)
        try:
            return self.merge_dicts(a, b, path)
        finally:
            self.merging.discard(key)

    def merge_dicts(self, a: dict, b: dict, path: str) -> Any:
        if "anyOf" in a or "anyOf" in b:
            left = a.get("anyOf", [a])
            right = b.get("anyOf", [b])
            base = self.merge({k: v for k, v in a.items() if k != "anyOf"},
                              {k: v for k, v in b.items() if k != "anyOf"}, path)
            pairs = [(x, y) for x in left for y in right]
            if len(pairs) > _MAX_BRANCHES:
                raise UnsupportedSchemaError("allOf", path, f"{len(pairs)} anyOf combinations (limit {_MAX_BRANCHES})")
            branches = self.branches(lambda xy: self.merge(self.merge(base, xy[0], path), xy[1], path),
                                     pairs, "allOf", path)
            return {"anyOf": branches} if len(branches) > 1 else branches[0]
        out = dict(a)
        for key, value in b.items():
            if key not in out:
                out[key] = value
                continue
            mine = out[key]
            if key == "type":
                out[key] = _intersect_types(mine, value, path)
            elif key in ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"):
                out[key] = max(mine, value)
            elif key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"):
                out[key] = min(mine, value)
            elif key == "required":
                out[key] = mine + [n for n in value if n not in mine]
            elif key == "enum":
                out[key] = [v for v in mine if any(_same(v, w) for w in value)]
            elif key in ("properties", "patternProperties"):
                out[key] = {**mine, **{n: self.merge(mine[n], sub, path) if n in mine else sub for n, sub in value.items()}}
            elif key in ("items", "additionalProperties", "propertyNames"):
                out[key] = False if mine is False or value is False else self.merge(
                    {} if mine is True else mine, {} if value is True else value, path)
            elif key == "prefixItems":
                n = max(len(mine), len(value))
                out[key] = [self.merge(x, y, path) for x, y in
                            zip(mine + [{}] * (n - len(mine)), value + [{}] * (n - len(value)))]
            elif key == "multipleOf":
                out[key] = math.lcm(mine, value)
            elif key == "const" and not _same(mine, value):
                raise _Unsatisfiable("const", path, "two different constants")
            elif mine != value:  # pattern, format: keep one, check the other after decoding
                self.unenforce(key, path)
        free = [x for x in (a, b) if x.get("additionalProperties") is True and "properties" not in x]
        if free and out.get("additionalProperties") is True and "properties" in out and len(free) == 1 and \
                "additionalProperties" not in (b if free[0] is a else a):
            del out["additionalProperties"]  # free-form & declared: strict policy, declared only
        if "const" in out and "enum" in out:
            out["enum"] = [v for v in out["enum"] if _same(v, out["const"])]
            del out["const"]
        if "enum" in out and not out["enum"]:
            raise _Unsatisfiable("enum", path, "no value satisfies every branch")
        self.fix_multiple_of(out, path)
        _check_bounds(out, path)
        return out

    def fix_pattern_properties(self, out: dict, s: dict, path: str) -> None:
        """xgrammar lets each key take ONE of ``properties``, ``patternProperties`` and
        ``additionalProperties`` (a declared name may even take a pattern's schema, or repeat as a
        pattern key), where JSON Schema applies every one that matches. Merge the schemas so that
        whichever way xgrammar goes, the value satisfies all that can apply:
        a declared name gets the schemas of the patterns it matches; a pattern's value also those of
        the declared names it matches; an additional value those of every pattern."""
        props = out.get("properties") or {}
        required = set(out.get("required") or ())
        built = out["patternProperties"]
        originals = list(built.values())
        where = _child(path, "patternProperties")
        for source in s.get("patternProperties") or {}:
            key = _fullmatch_pattern(source)
            if key not in built:
                continue  # dropped: unenforced already
            try:
                matched = [n for n in props if re.search(source, n)]
            except re.error:  # an ECMA-262 pattern Python cannot read: which names it matches is unknown
                matched = list(props)
                self.unenforce("patternProperties", _child(where, source))
            pattern_schema = built[key]
            for name in matched:
                pattern_schema = self.merge_or_false(pattern_schema, props[name], where)
                merged = self.merge_or_false(props[name], built[key], where)
                if merged is False:
                    if name in required:
                        raise _Unsatisfiable("patternProperties", where, f"property {name!r} cannot match its pattern's schema")
                    del props[name]  # must be absent; as an extra key it would escape its schema:
                    if out.get("additionalProperties") not in (None, False):
                        out["additionalProperties"] = False
                else:
                    props[name] = merged
            if pattern_schema is False:
                del built[key]  # no value fits: keys matching it cannot appear through it
            else:
                built[key] = pattern_schema
        extra = out.get("additionalProperties")
        if extra not in (None, False):
            extra = {} if extra is True else extra
            for sub in originals:
                extra = self.merge_or_false(extra, sub, where)
            out["additionalProperties"] = True if extra == {} else extra
        if not built:
            del out["patternProperties"]

    def merge_or_false(self, a: Any, b: Any, path: str) -> Any:
        """``merge``; ``False`` when nothing matches both (or either is already ``False``); ``a``
        (and ``b`` unenforced) when one is recursive."""
        if a is False or b is False:
            return False
        try:
            return self.merge(a, b, path)
        except _InProgress:
            self.unenforce("patternProperties", path)
            return a
        except _Unsatisfiable:
            return False

    def fix_multiple_of(self, out: dict, path: str) -> None:
        """xgrammar ignores multipleOf next to a bound: keep the bound, check multipleOf later."""
        if "multipleOf" in out and {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(out):
            del out["multipleOf"]
            self.unenforce("multipleOf", _child(path, "multipleOf"))


class _Unsatisfiable(UnsupportedSchemaError):
    """No value matches; a parent may prune the branch or property instead of failing."""


class _InProgress(UnsupportedSchemaError):
    """A recursive reference was to be inlined while its definition is still being built."""


_BOUNDS = (("minimum", "maximum"), ("minLength", "maxLength"), ("minItems", "maxItems"),
           ("minProperties", "maxProperties"))


def _check_bounds(s: dict, path: str) -> None:
    """Crossed bounds: nothing can match (xgrammar would refuse to compile)."""
    for low, high in _BOUNDS:
        if low in s and high in s and s[low] > s[high]:
            raise _Unsatisfiable(low, path, f"{low} {s[low]} is greater than {high} {s[high]}")
    low = max((s[k] for k in ("minimum", "exclusiveMinimum") if k in s), default=None)
    high = min((s[k] for k in ("maximum", "exclusiveMaximum") if k in s), default=None)
    exclusive = "exclusiveMinimum" in s or "exclusiveMaximum" in s
    if low is not None and high is not None and (low > high or (low == high and exclusive)):
        raise _Unsatisfiable("minimum", path, "the numeric range is empty")


def _intersect_types(a: Any, b: Any, path: str) -> Any:
    left = set(a if isinstance(a, list) else [a])
    right = set(b if isinstance(b, list) else [b])
    # integer is a subset of number
    both = (left & right) | ({"integer"} if ("integer" in left and "number" in right) or ("number" in left and "integer" in right) else set())
    if not both:
        raise _Unsatisfiable("type", path, f"no type satisfies both {a!r} and {b!r}")
    ordered = [t for t in _TYPES if t in both]
    return ordered[0] if len(ordered) == 1 else ordered


def _same(x: Any, y: Any) -> bool:
    # JSON equality: 1 == 1.0 but True != 1
    return type(x) is type(y) and x == y if isinstance(x, bool) or isinstance(y, bool) else x == y


def _is_free_object(s: dict) -> bool:
    """No constraint at all, or just ``type: object``: the tool takes no arguments."""
    return not (set(s) & _CONSTRAINTS - {"type"}) and s.get("type", "object") == "object"


def _types(s: dict) -> set[str]:
    t = s.get("type")
    return set(_TYPES) if t is None else set(t if isinstance(t, list) else [t])


def _fix_object(out: dict, s: dict) -> None:
    if "properties" in out or "required" in out:
        props = out.setdefault("properties", {})
        extra = out.get("additionalProperties", {})
        for name in out.get("required", []):
            if name not in props:  # strict mode would make the object unsatisfiable
                props[name] = {} if extra is True or extra is False else extra
    declared = {"properties", "patternProperties", "additionalProperties"} & set(out)
    implied = out.get("type") is not None or {"minProperties", "maxProperties", "propertyNames"} & set(out)
    combined = {"anyOf", "oneOf", "allOf", "$ref"} & set(s)  # the branches declare the shape
    if "object" in _types(out) and not declared and implied and not combined:
        out["additionalProperties"] = True  # free-form object, explicitly


def _open_object(out: dict, s: dict) -> None:
    """additional_properties="schema": an object that does not say otherwise takes extra keys."""
    if "object" not in _types(out) or "additionalProperties" in out or {"anyOf", "$ref"} & set(out):
        return
    if out.get("type") is None and not {"properties", "patternProperties", "required"} & set(out):
        return  # not about objects (a bare {} is already any value)
    pruned = set(s.get("properties") or ()) - set(out.get("properties") or ())
    if pruned or s.get("unevaluatedProperties") is False:
        return  # a name that must be absent cannot be excluded from the extra keys: stay closed
    out["additionalProperties"] = True


def _fix_array(out: dict) -> None:
    if "array" in _types(out) and out.get("type") is not None and "items" not in out and "prefixItems" not in out:
        out["items"] = {}


# -- keyword handlers: (builder, out, source, key, value, path)


def _keep(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    out[key] = value


def _drop(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    b.unenforce(key, path)


def _ignore(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    pass


def _bound(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UnsupportedSchemaError(key, path, f"expected a number, got {value!r}")
    if _types(s) <= {"integer"} and value != int(value):
        # integer bounds must be whole numbers for xgrammar
        if key in ("minimum", "exclusiveMinimum"):
            out["minimum"] = math.ceil(value)
        else:
            out["maximum"] = math.floor(value)
        return
    out[key] = value


def _length(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if "pattern" in s and "string" in _types(s):
        b.unenforce(key, path)  # xgrammar ignores lengths next to a pattern
    elif value > _LENGTH_LIMITS[key]:
        b.unenforce(key, path)  # each unit costs ~25 ms of compile time with a 129k vocabulary
    else:
        out[key] = value


def _pattern(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    full = _fullmatch_pattern(value)
    if full is None:
        b.unenforce(key, path)
    else:
        out[key] = full


def _format(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if value == "date" and "pattern" not in s:
        out["pattern"] = DATE_PATTERN
        return
    if value in _XGRAMMAR_FORMATS:
        out[key] = value
    if value not in _XGRAMMAR_FORMATS or value in _APPROXIMATE_FORMATS:
        b.unenforce(key, path)


def _multiple_of(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if _types(s) <= {"integer"} and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        out[key] = value
    else:
        b.unenforce(key, path)


def _unique_items(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if value is True:
        b.unenforce(key, path)


def _unevaluated(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if value is not False:  # false is what strict mode does anyway
        b.unenforce(key, path)


def _const(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if isinstance(value, (dict, list)):
        out.update(_literal_schema(value))
    else:
        out[key] = _scalar(value)


def _enum(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if not isinstance(value, list) or not value:
        raise UnsupportedSchemaError(key, path, "enum must be a non-empty list")
    if any(isinstance(v, (dict, list)) for v in value):
        out["anyOf"] = [_literal_schema(v) for v in value]
    else:
        out[key] = [_scalar(v) for v in value]


def _scalar(value: Any) -> Any:
    """xgrammar writes an integral float constant as an integer (0.0 as ``0``): say so."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _literal_schema(value: Any) -> dict:
    """A structural schema matching exactly ``value`` (xgrammar's own const text never matches)."""
    if isinstance(value, dict):
        return {"type": "object", "properties": {k: _literal_schema(v) for k, v in value.items()},
                "required": list(value), "additionalProperties": False}
    if isinstance(value, list):
        return {"type": "array", "prefixItems": [_literal_schema(v) for v in value], "items": False,
                "minItems": len(value)}
    return {"const": _scalar(value)}


def _subschema(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    try:
        sub = b.node(value, path)
    except _Unsatisfiable:
        if key == "propertyNames":
            raise
        sub = False  # no item / no additional property can match: none may appear
    if key == "propertyNames" and sub == {}:
        return
    out[key] = sub


def _properties(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    props = {}
    for name, sub in value.items():
        p = _child(path, name)
        if key == "patternProperties":
            name = _fullmatch_pattern(name)
            if name is None:
                b.unenforce(key, p)
                continue
        try:
            props[name] = b.node(sub, p)
        except _Unsatisfiable:
            # the property must be absent: strict mode does not generate undeclared names
            if name in (s.get("required") or ()):
                raise
    out[key] = props


def _list(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if key == "prefixItems":
        out[key] = [b.node(sub, f"{path}[{i}]") for i, sub in enumerate(value)]
        return
    branches = b.branches(lambda i: b.node(value[i], f"{path}[{i}]"), list(range(len(value))), key, path)
    if key == "oneOf" and not _disjoint(value):
        b.unenforce("oneOf", path)
    if "anyOf" in out:  # anyOf and oneOf together: both must hold
        both = b.merge({"anyOf": out["anyOf"]}, {"anyOf": branches}, path)
        branches = both.get("anyOf", [both])
    out["anyOf"] = branches


def _disjoint(branches: list) -> bool:
    """Cheap proof that at most one oneOf branch can match (distinct types or constants)."""
    seen_types: set[str] = set()
    seen_values: list = []
    if all(isinstance(x, dict) and "type" in x for x in branches):
        for x in branches:
            t = _types(x) | ({"integer"} if "number" in _types(x) else set())
            if t & seen_types:
                break
            seen_types |= t
        else:
            return True
    for x in branches:
        if not isinstance(x, dict) or not ("const" in x or "enum" in x):
            return False
        values = [x["const"]] if "const" in x else x["enum"]
        if any(_same(v, w) for v in values for w in seen_values):
            return False
        seen_values += values
    return True


def _not(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if value is True or value == {}:
        raise _Unsatisfiable("not", path, "the schema accepts nothing")
    if value is False:
        return
    if isinstance(value, dict) and set(value) & _CONSTRAINTS == {"type"} and "type" in value:
        excluded = _types(value) | ({"integer"} if "number" in _types(value) else set())
        allowed = [t for t in _TYPES if t in _types(s) and t not in excluded]
        if "number" in excluded and "integer" in allowed:
            allowed.remove("integer")
        if not allowed:
            raise _Unsatisfiable("not", path, "the schema accepts nothing")
        out["type"] = allowed[0] if len(allowed) == 1 else allowed
        return
    b.unenforce(key, path)


_HANDLERS: dict[str, Callable[..., None]] = {
    "type": _keep,
    "enum": _enum, "const": _const,
    "minLength": _length, "maxLength": _length, "pattern": _pattern, "format": _format,
    "minimum": _bound, "maximum": _bound, "exclusiveMinimum": _bound, "exclusiveMaximum": _bound,
    "multipleOf": _multiple_of,
    "minItems": _keep, "maxItems": _keep, "uniqueItems": _unique_items,
    "items": _subschema, "prefixItems": _list,
    "properties": _properties, "patternProperties": _properties,
    "additionalProperties": _subschema, "propertyNames": _subschema,
    "required": _keep, "minProperties": _keep, "maxProperties": _keep,
    "anyOf": _list, "oneOf": _list, "not": _not,
    "unevaluatedItems": _unevaluated, "unevaluatedProperties": _unevaluated,
    **{k: _drop for k in _UNENFORCED},
    "then": _ignore, "else": _ignore,  # recorded as ``if`` (meaningless without it)
}


# --------------------------------------------------------------------------- patterns

_UNSUPPORTED_REGEX = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[bBAZzpPk]|\\[1-9]|\{,")


@functools.lru_cache(maxsize=4096)
def _fullmatch_pattern(pattern: str) -> str | None:
    """Rewrite a JSON Schema (search) pattern as the full-match regex xgrammar expects.

    ``None`` when xgrammar cannot compile the pattern or would only approximate it.
    """
    if not isinstance(pattern, str) or _UNSUPPORTED_REGEX.search(pattern):
        return None
    alternatives = []
    for alt in _scan(pattern)[0]:
        body = alt[1:] if alt.startswith("^") else ".*" + alt
        body = body[:-1] if _ends_with_anchor(body) else body + ".*"
        if _scan(body)[1]:
            return None  # xgrammar ignores anchors inside a regex: it would accept more
        alternatives.append(body)
    full = alternatives[0] if len(alternatives) == 1 else "|".join(f"(?:{a})" for a in alternatives)
    try:
        xgrammar.Grammar.from_regex(full)
    except Exception:  # noqa: BLE001 - any parse failure means: check after decoding
        return None
    return full


def _scan(pattern: str) -> tuple[list[str], bool]:
    """Top-level ``|`` alternatives of ``pattern``, and whether it holds an anchor (``^``, ``$``)
    outside character classes."""
    parts, depth, in_class, start, i, anchored = [], 0, False, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 1
            i += pattern[i : i + 1] == "^"
            i += pattern[i : i + 1] == "]"  # a leading ``]`` is a literal
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c in "^$":
            anchored = True
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts, anchored


def _ends_with_anchor(p: str) -> bool:
    if not p.endswith("$"):
        return False
    backslashes = len(p[:-1]) - len(p[:-1].rstrip("\\"))
    return backslashes % 2 == 0


# --------------------------------------------------------------------------- public API


def normalize(schema: dict | bool | None, *, additional_properties: str = "forbid") -> NormalizedSchema:
    """Normalise a tool's parameter schema for xgrammar (see the module docstring).

    ``additional_properties``: ``"forbid"`` generates declared properties only; ``"schema"``
    follows JSON Schema (an object without ``additionalProperties`` takes any other property)."""
    if additional_properties not in ADDITIONAL_PROPERTIES:
        raise ValueError(f"additional_properties must be one of {ADDITIONAL_PROPERTIES}, got {additional_properties!r}")
    canonical = None if schema is None else _Canonicalizer().run(schema)
    open_objects = additional_properties == "schema"
    if canonical is None or (not open_objects and _takes_no_arguments(canonical)):
        # validation too: a tool without arguments gets ``{}``
        return NormalizedSchema(_no_arguments(), (), schema, _no_arguments())
    if open_objects and (canonical is True or canonical == {}):
        canonical = {"type": "object"}  # arguments are an object, whatever the schema allows
    builder = _Builder(canonical, open_objects)
    grammar_schema = builder.build()
    return NormalizedSchema(grammar_schema, tuple(builder.unenforced), schema, canonical)


def _takes_no_arguments(canonical: Any) -> bool:
    if canonical is None or canonical is True:
        return True
    return isinstance(canonical, dict) and _is_free_object(canonical)


def _no_arguments() -> dict:
    return {"type": "object", "properties": {}, "additionalProperties": False}


@functools.lru_cache(maxsize=1)
def _validator() -> tuple[Any, Any]:
    """jsonschema's draft 2020-12 validator class and a format checker that also checks
    date-time and time (jsonschema needs an optional package for those)."""
    import jsonschema

    cls = jsonschema.Draft202012Validator
    checker = copy.deepcopy(cls.FORMAT_CHECKER)
    checker.checks("date-time")(lambda v: not isinstance(v, str) or _check_datetime(v))
    checker.checks("time")(lambda v: not isinstance(v, str) or _check_datetime("2000-01-01T" + v))
    return cls, checker


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _check_datetime(value: str) -> bool:
    if not _RFC3339.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return False
    return True


def _errors(instance: Any, normalized: NormalizedSchema) -> list:
    cls, checker = _validator()
    return list(cls(normalized.validation, format_checker=checker).iter_errors(instance))


def validate(instance: Any, normalized: NormalizedSchema) -> list[str]:
    """jsonschema errors of ``instance`` (``"$.a.b: message"``); ``[]`` when valid."""
    return [f"{err.json_path}: {err.message}" for err in _errors(instance, normalized)]


def unenforced_violations(instance: Any, normalized: NormalizedSchema) -> list[Unenforced]:
    """The unenforced keywords that ``instance`` violates (it may violate others too).

    An error counts against an unenforced keyword when it comes from that keyword or from inside
    the subschema it holds; failing that, from a keyword of the same name elsewhere (paths
    through ``$ref`` chains or merged ``allOf`` branches do not always map back)."""
    if not normalized.unenforced:
        return []
    found: list[Unenforced] = []
    stack = _errors(instance, normalized)
    while stack:
        err = stack.pop()
        stack.extend(err.context or ())
        path = _schema_path(normalized.validation, err.absolute_schema_path)
        match = [u for u in normalized.unenforced if any(
            path == p or path.startswith((p + ".", p + "[")) for p in _covered_paths(u))]
        match = match or [u for u in normalized.unenforced if u.keyword == err.validator][:1]
        found += [u for u in match if u not in found]
    return found


def _covered_paths(u: Unenforced) -> tuple[str, ...]:
    """Schema paths whose errors an unenforced keyword accounts for (``if`` covers then/else)."""
    if u.keyword == "if":
        base = u.path[: -len(".if")]
        return u.path, base + ".then", base + ".else"
    return (u.path,)


def _schema_path(root: Any, tokens: Any) -> str:
    """jsonschema's ``absolute_schema_path`` as our ``$.a.b`` path, following ``$ref``."""
    path, node = "$", root
    tokens = list(tokens)
    for i, token in enumerate(tokens):
        if token == "$ref" and isinstance(node, dict) and isinstance(node.get("$ref"), str) and i + 1 < len(tokens):
            ref = node["$ref"]
            path, node = (_pointer_path(ref), _resolve_pointer(root, ref)) if ref.startswith("#/") else ("$", root)
            continue
        try:
            node = node[token]
        except (KeyError, IndexError, TypeError):
            node = None
        path += f"[{token}]" if isinstance(token, int) else f".{token}"
    return path


def as_emitted(instance: Any, normalized: NormalizedSchema, *, drop_undeclared: bool = False) -> Any:
    """``instance`` as a grammar-guided model writes it: keys in the schema's declared order
    (xgrammar generates properties in that order) and integral floats as integers where the
    schema asks for an integer. Under ``anyOf`` the first branch the instance fits is followed.
    ``drop_undeclared`` also leaves out the properties the strict grammar never generates."""
    return _Emitter(normalized.schema, drop_undeclared).emit(instance, normalized.schema, 0)


class _Emitter:
    def __init__(self, root: Any, drop_undeclared: bool) -> None:
        self.root = root if isinstance(root, dict) else {}
        self.drop_undeclared = drop_undeclared
        self._validator: Any = None

    def resolve(self, s: Any) -> Any:
        for _ in range(32):  # chains of refs, not cycles
            if not (isinstance(s, dict) and isinstance(s.get("$ref"), str)):
                break
            ref = s["$ref"]
            s = self.root if ref == "#" else self.root.get("$defs", {}).get(ref.rsplit("/", 1)[1])
        return s

    def fits(self, value: Any, branch: Any) -> bool:
        if self._validator is None:
            self._validator = _validator()[0](self.root)
        try:
            return next(self._validator.descend(value, branch), None) is None
        except Exception:  # noqa: BLE001 - a schema jsonschema cannot read: no preference
            return False

    def emit(self, value: Any, s: Any, depth: int) -> Any:
        s = self.resolve(s)
        if not isinstance(s, dict) or depth > 64:
            return value
        if "anyOf" in s:
            branch = next((b for b in s["anyOf"] if self.fits(value, b)), s["anyOf"][0])
            return self.emit(value, branch, depth + 1)
        literal = [s["const"]] if "const" in s else s.get("enum", ())
        same = next((v for v in literal if _same(v, value)), _MISSING)
        if same is not _MISSING:
            return same  # the grammar's own spelling of the constant (0 for 0.0)
        if isinstance(value, float) and value.is_integer() and _types(s) <= {"integer"}:
            return int(value)
        if isinstance(value, dict):
            props = s.get("properties", {})
            ordered = {k: value[k] for k in props if k in value}
            extra = s.get("additionalProperties")
            if not (self.drop_undeclared and extra in (None, False) and "patternProperties" not in s):
                ordered.update((k, v) for k, v in value.items() if k not in props)
            return {k: self.emit(v, props.get(k, extra), depth + 1) for k, v in ordered.items()}
        if isinstance(value, list):
            prefix = s.get("prefixItems", [])
            return [self.emit(v, prefix[i] if i < len(prefix) else s.get("items"), depth + 1)
                    for i, v in enumerate(value)]
        return value
