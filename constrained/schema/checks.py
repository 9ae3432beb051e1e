"""What a schema must pass before normalisation builds anything from it; each failure is an
UnsupportedSchemaError naming the keyword and path (the server's 400, `check-tools`' report):

- `check_depth` (the user's schema, before any pass): nesting deeper than `MAX_DEPTH` levels of
  JSON, which every later pass (and the prompt's `json.dumps`) would meet as a RecursionError;
- `check_schema` (the canonical schema): every `pattern` and `patternProperties` key runs on RE2
  (`regex`), and no keyword contradicts another where a schema author cannot have meant it
  (`UnsatisfiableSchemaError`): crossed bounds (`minimum` > `maximum`, `minLength` > `maxLength`,
  `minItems` > `maxItems`, `minProperties` > `maxProperties`, an empty numeric range), an empty
  `enum`, a `required` property whose schema is `false`, and a `required` property that cannot
  appear because the object declares its properties and closes the others (`additionalProperties:
  false`, or absent under the `forbid` policy).

Both walk iteratively: a schema too deep for recursion is what they report.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsatisfiableSchemaError, UnsupportedSchemaError
from .keywords import _SCHEMA, _SCHEMA_LIST, _SCHEMA_MAP, _TYPES, _child
from .regex import check_pattern, search

# Levels of JSON nesting a schema may have (objects and arrays). The deepest schema of the
# 3,899 in shared/data/maskbench has 63; Python's recursion limit (1000 frames) allows roughly
# 450 levels of `properties` through normalisation and validation.
MAX_DEPTH = 128

_BOUNDS = (("minLength", "maxLength", "string"), ("minItems", "maxItems", "array"), ("minProperties", "maxProperties", "object"))


def check_depth(schema: Any, path: str = "$") -> None:
    if _deepest(schema) < MAX_DEPTH:
        return
    # too deep: walk again, naming the path (a walk without paths is ~3x faster on large schemas)
    stack = [(schema, path, "schema", 0)]
    while stack:
        node, where, keyword, depth = stack.pop()
        if isinstance(node, dict):
            children = [(v, _child(where, str(k)), k if k in _KEYWORDS else keyword) for k, v in node.items()]
        elif isinstance(node, list):
            children = [(v, f"{where}[{i}]", keyword) for i, v in enumerate(node)]
        else:
            continue
        if depth >= MAX_DEPTH:
            raise UnsupportedSchemaError(keyword, where, f"the schema nests deeper than {MAX_DEPTH} levels of JSON (the limit)")
        stack.extend((v, w, k, depth + 1) for v, w, k in children)


def _deepest(schema: Any) -> int:
    """The levels of objects and arrays in `schema`, counted up to MAX_DEPTH + 1."""
    deepest, level = 0, [schema]
    while level and deepest <= MAX_DEPTH:
        level = [v for node in level if isinstance(node, (dict, list)) for v in (node.values() if isinstance(node, dict) else node)]
        deepest += 1
    return deepest


_KEYWORDS = frozenset(_SCHEMA + _SCHEMA_MAP + _SCHEMA_LIST)


def check_schema(canonical: Any, additional_properties: str = "forbid") -> None:
    # (node, path, check contradictions, check required names): under `not` and `if` a
    # contradiction may be meant (`not: {minLength: 5, maxLength: 3}`), so only patterns are
    # checked there; a branch (allOf, anyOf, oneOf, then, else, a definition) describes a value
    # together with its siblings, so its `required` may name what they declare.
    stack: list[tuple[Any, str, bool, bool]] = [(canonical, "$", True, True)]
    while stack:
        node, path, contradictions, own_properties = stack.pop()
        if not isinstance(node, dict):
            continue
        _check_node(node, path, contradictions, own_properties, additional_properties)
        for key, value in node.items():
            where = _child(path, key)
            meant = contradictions and key not in ("not", "if")
            own = own_properties and meant and key not in _BRANCHES
            if key in _SCHEMA:
                stack.append((value, where, meant, own))
            elif key in _SCHEMA_MAP and isinstance(value, dict):
                stack.extend((sub, _child(where, name), meant, own) for name, sub in value.items())
            elif key in _SCHEMA_LIST and isinstance(value, list):
                stack.extend((sub, f"{where}[{i}]", meant, own) for i, sub in enumerate(value))


_BRANCHES = ("allOf", "anyOf", "oneOf", "then", "else", "dependentSchemas", "$defs", "definitions")


def _check_node(s: dict, path: str, contradictions: bool, own_properties: bool, policy: str) -> None:
    if "pattern" in s:
        check_pattern(s["pattern"], "pattern", _child(path, "pattern"))
    patterns = s.get("patternProperties")
    if isinstance(patterns, dict):
        for source in patterns:
            check_pattern(source, "patternProperties", _child(_child(path, "patternProperties"), source))
    if not contradictions:
        return
    types = _allowed_types(s)
    for low, high, kind in _BOUNDS:
        if kind in types and _number(s.get(low)) and _number(s.get(high)) and s[low] > s[high]:
            raise UnsatisfiableSchemaError(low, path, f"{low} {s[low]} is greater than {high} {s[high]}")
    if types & {"number", "integer"}:
        _check_range(s, path)
    if s.get("enum") == []:
        raise UnsatisfiableSchemaError("enum", path, "the enum is empty")
    required = s.get("required")
    if isinstance(required, list) and "object" in types:
        _check_required(s, required, path, own_properties, policy)


def _check_range(s: dict, path: str) -> None:
    # the tightest bound on each side; at equal values the exclusive one is tighter
    lows = [(s[k], k.startswith("exclusive"), k) for k in ("minimum", "exclusiveMinimum") if _number(s.get(k))]
    highs = [(s[k], not k.startswith("exclusive"), k) for k in ("maximum", "exclusiveMaximum") if _number(s.get(k))]
    if not lows or not highs:
        return
    (low, _, low_key), (high, _, high_key) = max(lows), min(highs)
    if low > high or (low == high and "exclusive" in low_key + high_key):
        raise UnsatisfiableSchemaError(low_key, path, f"no number is {low_key} {low} and {high_key} {high}")


def _check_required(s: dict, required: list, path: str, own_properties: bool, policy: str) -> None:
    props: dict = s["properties"] if isinstance(s.get("properties"), dict) else {}
    for name in required:
        if props.get(name) is False:
            raise UnsatisfiableSchemaError("required", _child(path, "required"), f"required property {name!r} has the schema false")
    # Only an object that declares its own properties can say which may appear (a bare `required`
    # in an allOf/oneOf branch requires properties that its siblings declare).
    combined = {"allOf", "anyOf", "oneOf", "$ref", "if", "dependentSchemas"} & set(s)
    if not own_properties or "properties" not in s or combined:
        return
    extra = s.get("additionalProperties")
    closed = extra is False or (extra is None and policy == "forbid")
    if not closed:
        return
    patterns: dict = s["patternProperties"] if isinstance(s.get("patternProperties"), dict) else {}
    for name in required:
        if isinstance(name, str) and name not in props and not any(search(p, name) for p in patterns):
            why = "additionalProperties is false" if extra is False else "undeclared properties are forbidden (the forbid policy)"
            raise UnsatisfiableSchemaError("required", _child(path, "required"),
                                           f"required property {name!r} is not declared in properties, and {why}")


def _allowed_types(s: dict) -> set[str]:
    t = s.get("type")
    names = t if isinstance(t, list) else [t] if isinstance(t, str) else list(_TYPES)
    out = set(names)
    if "number" in out:
        out.add("integer")
    return out


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
