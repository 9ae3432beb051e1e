"""How a grammar-guided model writes a JSON value (coverage: instances fed to the grammar).

The key-order contract (README, "JSON Schema support"): an object's declared properties come first,
in the order the normalised schema declares them (``allOf`` branches merged in order, a ``$ref``'s
target's own order), then any other keys (``patternProperties``, ``additionalProperties``), in any
order (an open object with many declared names writes its other keys' colon compact, ``"other":1``:
`constrained.schema.extra_keys`). That holds at every depth: objects reached through ``$ref``, ``anyOf``/``oneOf`` branches,
``patternProperties`` and ``additionalProperties`` values, array items. `as_emitted` writes an
instance that way, following the schema the grammar was built from, so that coverage measures the
grammar and not the order an instance happened to be written in.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from ..schema import NormalizedSchema
from ..schema.canonical import _MISSING, _resolve_pointer
from ..schema.extra_keys import guards_extra_keys
from ..schema.keywords import _same, _types
from ..schema.validate import _validator


def as_emitted(instance: Any, normalized: NormalizedSchema, *, drop_undeclared: bool = False, drop_unmatched: bool = False) -> Any:
    """``instance`` as a grammar-guided model writes it: keys in the schema's declared order and
    integral floats as integers where the schema asks for an integer (from draft 6 on, where
    ``1.0`` is an integer; drafts 3/4 tell them apart, so the float stays a float). Under
    ``anyOf`` the first branch the instance fits is followed. ``drop_undeclared`` also leaves out
    the properties the strict grammar never generates; ``drop_unmatched`` every property an object
    neither declares nor matches by a pattern."""
    emitter = _Emitter(normalized.schema, drop_undeclared, normalized.draft >= 6, drop_unmatched)
    return emitter.emit(instance, normalized.schema, 0)


class _Emitter:
    def __init__(self, root: Any, drop_undeclared: bool, integral_floats: bool, drop_unmatched: bool = False) -> None:
        self.root = root if isinstance(root, dict) else {}
        self.drop_undeclared = drop_undeclared
        self.drop_unmatched = drop_unmatched
        self.integral_floats = integral_floats
        self._validator: Any = None

    def resolve(self, s: Any) -> Any:
        """Follow ``$ref`` chains (``#`` and JSON pointers; anything else: no preference)."""
        for _ in range(32):  # chains of refs, not cycles
            if not (isinstance(s, dict) and isinstance(s.get("$ref"), str)):
                break
            ref = s["$ref"]
            target = _resolve_pointer(self.root, ref) if ref == "#" or ref.startswith("#/") else _MISSING
            if target is _MISSING:
                return {}
            s = target
        return s

    def fits(self, value: Any, branch: Any) -> bool:
        if self._validator is None:
            self._validator = _validator()[0](_search_form(self.root))
        try:
            return next(self._validator.descend(value, _search_form(branch)), None) is None
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
        same = next((v for v in literal if _same(v, value) and (self.integral_floats or type(v) is type(value))), _MISSING)
        if same is not _MISSING:
            return same  # the grammar's own spelling of the constant (0 for 0.0)
        types = _types(s)
        if isinstance(value, float) and value.is_integer() and "integer" in types and "number" not in types and self.integral_floats:
            return int(value)
        if isinstance(value, dict):
            props = s.get("properties", {})
            ordered = {k: value[k] for k in props if k in value}
            extra = s.get("additionalProperties")
            patterns = s.get("patternProperties") or {}
            if not (self.drop_undeclared and extra in (None, False) and not patterns):
                ordered.update((k, v) for k, v in value.items() if k not in props and not (
                    self.drop_unmatched and _extra_schema(k, patterns, _MISSING) is _MISSING))
            compact = guards_extra_keys(s)
            return {(CompactKey(k) if compact and k not in props else k): self.emit(v, props[k] if k in props else _extra_schema(k, patterns, extra), depth + 1)
                    for k, v in ordered.items()}
        if isinstance(value, list):
            prefix = s.get("prefixItems", [])
            return [self.emit(v, prefix[i] if i < len(prefix) else s.get("items"), depth + 1)
                    for i, v in enumerate(value)]
        return value


class CompactKey(str):
    """An extra key of an object whose extra keys are guarded (`constrained.schema.extra_keys`):
    the grammar writes its colon compact, ``"other":1``; `dumps` does too."""


def dumps(value: Any, ensure_ascii: bool = False) -> str:
    """``json.dumps`` (its default separators), except after a `CompactKey`: ``":"``."""
    if isinstance(value, dict):
        return "{" + ", ".join(json.dumps(k, ensure_ascii=ensure_ascii) + (":" if isinstance(k, CompactKey) else ": ")
                               + dumps(v, ensure_ascii) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v, ensure_ascii) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii)


def _extra_schema(key: str, patterns: dict, extra: Any) -> Any:
    """The schema an undeclared key's value is written under: the first pattern the key matches
    (xgrammar's patterns are full matches), else ``additionalProperties``."""
    for pattern, sub in patterns.items():
        try:
            if re.fullmatch(pattern, key):
                return sub
        except re.error:
            continue
    return extra


def _search_form(schema: Any) -> Any:
    """A built schema with its full-match patterns written for jsonschema, which searches."""
    if isinstance(schema, list):
        return [_search_form(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "pattern" and isinstance(value, str):
            out[key] = f"^(?:{value})$"
        elif key == "patternProperties" and isinstance(value, dict):
            out[key] = {f"^(?:{k})$": _search_form(v) for k, v in value.items()}
        elif key in ("enum", "const"):
            out[key] = copy.deepcopy(value)
        else:
            out[key] = _search_form(value)
    return out
