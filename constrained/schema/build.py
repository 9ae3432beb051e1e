"""Pass 2 of normalisation: the schema handed to xgrammar, built from a canonical schema. Keeps what
xgrammar enforces, rewrites what it gets wrong, drops (and records as unenforced) what it cannot
enforce, and raises on what cannot be expressed (see `keywords` for the table)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ..errors import UnsupportedSchemaError
from .canonical import _MISSING, _pointer_path, _resolve_pointer
from .keywords import (
    _APPROXIMATE_FORMATS,
    _CONSTRAINTS,
    _MAX_BRANCHES,
    _TYPES,
    _UNENFORCED,
    _XGRAMMAR_FORMATS,
    DATE_PATTERN,
    _child,
    _same,
    _types,
)
from .patterns import _fullmatch_pattern
from .regex import search


@dataclass(frozen=True)
class Unenforced:
    keyword: str
    path: str

class _Builder:
    """Build the schema handed to xgrammar from a canonical schema."""

    def __init__(self, root: Any, open_objects: bool = False, ref_paths: dict[str, str] | None = None) -> None:
        self.root = root
        self.ref_paths = ref_paths or {}  # canonical ref -> the user's path, where they differ
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
        failed = {f"#/$defs/{name}": ref for ref, name in self.def_names.items() if name not in self.defs}
        dangling = sorted(failed[r] for r in _refs_in(out, self.defs) if r in failed)
        if dangling:  # a recursive definition that matched nothing, still referred to from inside
            raise UnsupportedSchemaError("$ref", "$", f"{dangling[0]!r} is recursive and matches nothing")
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
        if not {"anyOf", "oneOf", "allOf", "$ref"} & set(s):  # else the branches and targets type it
            _widen_untyped(out, root=path == "$")
        self.fix_literals(out, path, s)
        self.fix_string(out, path)
        self.fix_integer_bounds(out, path)
        if set(s.get("properties") or ()) - set(out.get("properties") or ()) and out.get("additionalProperties") not in (None, False):
            out["additionalProperties"] = False  # a name that must be absent cannot be excluded from the extra keys
        _fix_object(out, s)
        if self.open_objects:
            _open_object(out, s)
        if out.get("patternProperties"):
            self.fix_pattern_properties(out, s, path)
        _fix_array(out)
        self.fix_multiple_of(out, path)
        _check_bounds(out, path)
        if not {"anyOf", "oneOf", "allOf", "$ref"} & set(s):  # else counted once merged
            _check_property_counts(out, path)
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
            # canonical refs are JSON pointers from the root (`canonical` resolved the user's)
            target = _resolve_pointer(self.root, ref)
            target_path = self.ref_paths.get(ref) or _pointer_path(ref)
            if target is _MISSING:
                raise UnsupportedSchemaError("$ref", path, f"cannot resolve {ref!r}")
            name = re.sub(r"[^A-Za-z0-9_]", "_", unquote(ref[2:]))[-48:] or "root"
            while name in self.defs:
                name += "_"
            self.def_names[ref] = name
            self.defs[name] = None  # placeholder while building: recursion refers to the name
            try:
                self.defs[name] = self.node(target, target_path)
            except _Unsatisfiable:
                del self.defs[name]  # the referring property or branch is pruned instead
                raise
        if self.def_names[ref] not in self.defs:
            raise _Unsatisfiable("$ref", path, f"{ref!r} matches nothing")
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
            return self.finish(s, path)
        rest = {k: v for k, v in s.items() if k != "anyOf"}
        branches = s["anyOf"]
        if rest:
            branches = self.branches(lambda b: self.merge_or_keep(rest, b, path), branches, "anyOf", path)
        branches = [self.finish(b, path) for b in branches]
        return {"anyOf": branches} if len(branches) > 1 else branches[0]

    def finish(self, s: Any, path: str) -> Any:
        """A merged node xgrammar reads as it means: typed where its keywords need a type."""
        if isinstance(s, dict) and _widen_untyped(s, root=path == "$"):
            _fix_array(s)
            _free_object(s)
        return s

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
        self.fix_literals(out, path)
        self.fix_string(out, path)
        self.fix_integer_bounds(out, path)
        self.fix_multiple_of(out, path)
        _check_bounds(out, path)
        _check_property_counts(out, path)
        return out

    def fix_pattern_properties(self, out: dict, s: dict, path: str) -> None:
        """xgrammar lets each key take ONE of ``properties``, ``patternProperties`` and
        ``additionalProperties`` (a declared name may even take a pattern's schema, or repeat as a
        pattern key), where JSON Schema applies every one that matches. Merge the schemas so that
        whichever way xgrammar goes, the value satisfies all that can apply:
        a declared name gets the schemas of the patterns it matches; a pattern's value also those of
        the declared names it matches; an additional value those of every pattern and every declared
        name (next to patterns, xgrammar writes extra keys as any string, declared names included)."""
        props = out.get("properties") or {}
        required = set(out.get("required") or ())
        built = out["patternProperties"]
        originals = list(built.values())
        where = _child(path, "patternProperties")
        for source in s.get("patternProperties") or {}:
            key = _fullmatch_pattern(source)
            if key not in built:
                continue  # dropped: unenforced already
            matched = [n for n in props if search(source, n)]  # RE2: linear time (checked by checks.check_schema)
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
            # with patterns, xgrammar's extra keys are any string: a declared name too
            for sub in [*originals, *props.values()]:
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

    def fix_integer_bounds(self, out: dict, path: str) -> None:
        """Where integers are the only numbers: whole inclusive bounds (xgrammar needs whole numbers,
        and fails beyond the int64 range with "Check failed: ... Integer exceeds maximum limit";
        such a bound is left to the check after decoding)."""
        types = _types(out)
        if "integer" not in types or "number" in types:
            return
        for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            if key not in out:
                continue
            value = out.pop(key)
            low = key in ("minimum", "exclusiveMinimum")
            if low:
                whole = math.ceil(value) if key == "minimum" else math.floor(value) + 1
            else:
                whole = math.floor(value) if key == "maximum" else math.ceil(value) - 1
            if not _INT64[0] <= whole <= _INT64[1]:
                self.unenforce(key, _child(path, key))  # an unbounded integer rule
                continue
            name = "minimum" if low else "maximum"
            out[name] = whole if name not in out else (max if low else min)(out[name], whole)

    def fix_string(self, out: dict, path: str) -> None:
        """xgrammar ignores minLength/maxLength next to a pattern or a format: check them later."""
        if {"pattern", "format"} & set(out):
            for key in ("minLength", "maxLength"):
                if key in out:
                    del out[key]
                    self.unenforce(key, _child(path, key))

    def fix_literals(self, out: dict, path: str, source: dict | None = None) -> None:
        """xgrammar writes an enum's (or const's) values and ignores every other keyword: keep the
        values that satisfy the scalar keywords beside them (types, lengths, bounds, patterns,
        formats), then drop those keywords. ``source``: the canonical node (JSON Schema's own
        keywords, patterns that search); else ``out``'s built ones (full-match patterns)."""
        if "enum" not in out and "const" not in out:
            return
        checks = {k: (source or out)[k] for k in _LITERAL_CHECKS if k in (source or out)}
        if not checks:
            return
        values = out["enum"] if "enum" in out else [out["const"]]
        try:
            fits = _literal_check(checks, full_match=source is None)
            kept = [v for v in values if fits(v)]
        except re.error:  # a pattern Python cannot read: which values match it is unknown
            self.unenforce("pattern", _child(path, "pattern"))
            kept = values
        if not kept:
            raise _Unsatisfiable("enum" if "enum" in out else "const", path, "no value satisfies the keywords beside it")
        for key in _LITERAL_CHECKS:
            out.pop(key, None)
        checked = {_child(path, key) for key in checks if key != "pattern" or kept is not values}
        self.unenforced = [u for u in self.unenforced if u.path not in checked]
        if "enum" in out:
            out["enum"] = kept


def _refs_in(*nodes: Any) -> set[str]:
    """Every ``$ref`` value in ``nodes``."""
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                found.add(node["$ref"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


class _Unsatisfiable(UnsupportedSchemaError):
    """No value matches; a parent may prune the branch or property instead of failing."""


class _InProgress(UnsupportedSchemaError):
    """A recursive reference was to be inlined while its definition is still being built."""


_INT64 = (-(2**63), 2**63 - 1)
# Keywords that apply to one type of value each (xgrammar reads them only when the type is named).
_TYPED_KEYWORDS = {
    "string": {"minLength", "maxLength", "pattern", "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "array": {"items", "prefixItems", "minItems", "maxItems"},
    "object": {"properties", "patternProperties", "additionalProperties", "required", "minProperties",
               "maxProperties", "propertyNames"},
}
# What an enum's scalar values are checked against (xgrammar writes the values only).
_LITERAL_CHECKS = ("type", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
                   "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_BOUNDS = (("minimum", "maximum"), ("minLength", "maxLength"), ("minItems", "maxItems"),
           ("minProperties", "maxProperties"))


def _check_bounds(s: dict, path: str) -> None:
    """Crossed bounds: nothing can match (xgrammar would refuse to compile)."""
    for low_key, high_key in _BOUNDS:
        if low_key in s and high_key in s and s[low_key] > s[high_key]:
            raise _Unsatisfiable(low_key, path, f"{low_key} {s[low_key]} is greater than {high_key} {s[high_key]}")
    low = max((s[k] for k in ("minimum", "exclusiveMinimum") if k in s), default=None)
    high = min((s[k] for k in ("maximum", "exclusiveMaximum") if k in s), default=None)
    exclusive = "exclusiveMinimum" in s or "exclusiveMaximum" in s
    if low is not None and high is not None and (low > high or (low == high and exclusive)):
        raise _Unsatisfiable("minimum", path, "the numeric range is empty")


def _check_property_counts(s: dict, path: str) -> None:
    """Counts no object or array can meet (xgrammar refuses to compile them): more required names
    than ``maxProperties``; a closed object (strict mode: no ``additionalProperties`` means none)
    with fewer declared names than ``minProperties``; more ``minItems`` than a closed tuple holds.
    ``prefixItems`` beyond ``maxItems`` are dropped (xgrammar refuses them too)."""
    if s.get("type") is None:
        return
    if len(s.get("prefixItems") or ()) > s.get("maxItems", math.inf):  # items past maxItems never apply
        s["prefixItems"] = s["prefixItems"][: s["maxItems"]]
        if not s["prefixItems"]:
            del s["prefixItems"]
    impossible = set()
    if "object" in _types(s):
        required = len(set(s.get("required") or ()))
        closed = s.get("additionalProperties") in (None, False) and not s.get("patternProperties")
        if s.get("maxProperties", required) < required or (closed and s.get("minProperties", 0) > len(s.get("properties") or {})):
            impossible.add("object")
    if "array" in _types(s) and s.get("items") is False and s.get("minItems", 0) > len(s.get("prefixItems") or ()):
        impossible.add("array")
    if not impossible:
        return
    left = [t for t in _TYPES if t in _types(s) and t not in impossible]
    if not left:
        raise _Unsatisfiable("minItems" if "array" in impossible else "minProperties", path, "no value has that many items or properties")
    s["type"] = _type_value(left)  # other types stay possible


def _type_value(names: list[str]) -> Any:
    """A ``type`` value (in the given order) without ``integer`` beside ``number``, which includes
    it and whose bounds need not be whole."""
    kept = [t for t in dict.fromkeys(names) if not (t == "integer" and "number" in names)]
    return kept[0] if len(kept) == 1 else kept


def _intersect_types(a: Any, b: Any, path: str) -> Any:
    left = set(a if isinstance(a, list) else [a])
    right = set(b if isinstance(b, list) else [b])
    # integer is a subset of number
    both = (left & right) | ({"integer"} if ("integer" in left and "number" in right) or ("number" in left and "integer" in right) else set())
    if not both:
        raise _Unsatisfiable("type", path, f"no type satisfies both {a!r} and {b!r}")
    ordered = [t for t in _TYPES if t in both]
    return _type_value(ordered)


def _is_free_object(s: dict) -> bool:
    """No constraint at all, or just ``type: object``: the tool takes no arguments."""
    return not (set(s) & _CONSTRAINTS - {"type"}) and s.get("type", "object") == "object"


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


def _widen_untyped(out: dict, root: bool = False) -> bool:
    """xgrammar ignores keywords of a type the node does not name (``{"minLength": 5}`` takes any
    string): name every type, so that each type's keywords apply to its values and other values stay
    free, as JSON Schema says. The root of arguments is an object whatever it says (as before)."""
    if "type" in out or {"enum", "const", "anyOf", "$ref"} & set(out):
        return False
    typed = {t for t, keys in _TYPED_KEYWORDS.items() if keys & set(out)}
    if not typed:
        return False
    out["type"] = "object" if root and typed == {"object"} else [t for t in _TYPES if t != "integer"]
    return True


def _free_object(out: dict) -> None:
    if "object" in _types(out) and not {"properties", "patternProperties", "additionalProperties"} & set(out):
        out["additionalProperties"] = True


def _literal_check(checks: dict, full_match: bool) -> Callable[[Any], bool]:
    """Whether a literal satisfies `checks` (one validator for all of an enum's values)."""
    from .validate import _validator  # here: validate imports this module

    if set(checks) == {"type"}:  # the common case (`"type": "string"` beside an enum), without a validator
        types = checks["type"] if isinstance(checks["type"], list) else [checks["type"]]
        return lambda value: any(_is_json_type(value, t) for t in types)
    schema = dict(checks)
    if "pattern" in schema:
        re.compile(schema["pattern"])
        if full_match:  # ours are full-match regexes; jsonschema searches
            schema["pattern"] = f"^(?:{schema['pattern']})$"
    cls, checker = _validator()
    return cls(schema, format_checker=checker).is_valid


def _is_json_type(value: Any, name: str) -> bool:
    """JSON Schema's `type` (2020-12: an integer is any number with no fraction; a boolean is no number)."""
    if isinstance(value, bool):
        return name == "boolean"
    if name in ("number", "integer") and isinstance(value, (int, float)):
        return name == "number" or isinstance(value, int) or value.is_integer()
    return isinstance(value, _PYTHON_TYPES.get(name, ()))


_PYTHON_TYPES: dict[str, Any] = {"string": str, "null": type(None), "array": list, "object": dict}


def _fix_array(out: dict) -> None:
    """Items beyond ``prefixItems`` (or all of them) are free unless ``items`` says otherwise; xgrammar's
    strict mode would allow none."""
    if "array" in _types(out) and out.get("type") is not None and "items" not in out:
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
    if not math.isfinite(value):
        b.unenforce(key, path)  # checked after decoding
        return
    out[key] = value  # integer bounds are made whole by _Builder.fix_integer_bounds


def _length(b: _Builder, out: dict, s: dict, key: str, value: Any, path: str) -> None:
    if ("pattern" in s or s.get("format") in _XGRAMMAR_FORMATS) and "string" in _types(s):
        b.unenforce(key, path)  # xgrammar ignores lengths next to a pattern or a format
    else:  # above the chain's limit the bound is counted at run time (constrained.lengths)
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
    # xgrammar ignores an integer multipleOf above 1024 (with a warning only)
    if _types(s) <= {"integer"} and isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1024:
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
        out[key] = []
        for i, sub in enumerate(value):
            try:
                out[key].append(b.node(sub, f"{path}[{i}]"))
            except _Unsatisfiable:  # no item i can match: the array stops before it
                out["maxItems"] = min(out.get("maxItems", i), i)
                break
        if not out[key]:
            del out[key]
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
        out["type"] = _type_value(allowed)
        if "number" in allowed and "integer" in excluded:
            b.unenforce(key, path)  # "a number, not an integer": xgrammar's numbers include integers
        return
    b.unenforce(key, path)


_HANDLERS: dict[str, Callable[..., None]] = {
    "type": lambda b, out, s, key, value, path: out.update(type=_type_value(value if isinstance(value, list) else [value])),
    "enum": _enum, "const": _const,
    "minLength": _length, "maxLength": _length, "pattern": _pattern, "format": _format,
    "minimum": _bound, "maximum": _bound, "exclusiveMinimum": _bound, "exclusiveMaximum": _bound,
    "multipleOf": _multiple_of,
    "minItems": _keep, "uniqueItems": _unique_items,
    "maxItems": lambda b, out, s, key, value, path: out.update(maxItems=min(value, out.get("maxItems", value))),
    "items": _subschema, "prefixItems": _list,
    "properties": _properties, "patternProperties": _properties,
    "additionalProperties": _subschema, "propertyNames": _subschema,
    "required": _keep, "minProperties": _keep, "maxProperties": _keep,
    "anyOf": _list, "oneOf": _list, "not": _not,
    "unevaluatedItems": _unevaluated, "unevaluatedProperties": _unevaluated,
    **{k: _drop for k in _UNENFORCED},
    "then": _ignore, "else": _ignore,  # recorded as ``if`` (meaningless without it)
}
