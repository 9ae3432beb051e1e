"""Pass 1 of normalisation: copy a user schema into draft 2020-12 with BFCL/Python/Java type names
mapped; same meaning (what `validate` checks)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from ..errors import UnsupportedSchemaError
from .keywords import _SCHEMA, _SCHEMA_LIST, _SCHEMA_MAP, _TYPE_ALIASES, _TYPES, _child


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
        t: str | None
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
