"""How a grammar-guided model writes a JSON value (coverage: instances fed to the grammar)."""

from __future__ import annotations

from typing import Any

from ..schema import NormalizedSchema
from ..schema.keywords import _same, _types
from ..schema.validate import _validator

_MISSING = object()


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
