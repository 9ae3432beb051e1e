"""Pass 1 of normalisation: copy a user schema into draft 2020-12 with BFCL/Python/Java type names
mapped; same meaning (what `validate` checks).

The document's draft comes from its ``$schema`` and decides three things here:

- beside ``$ref``, other keywords apply from draft 2019-09 on (and when no draft is declared: 2020-12
  is the default); in drafts 3 to 7 they are ignored (only ``$defs``/``definitions`` are kept, as
  places references may point to);
- which keyword sets a base URI: ``id`` in drafts 3/4, ``$id`` later (in drafts 3-7 not beside
  ``$ref``); ``$anchor`` (2019-09 on) and fragment-only ids (``"$id": "#foo"``, before) name anchors;
- a validation keyword the declared draft does not have (``const`` in draft 4, ``dependentRequired``
  in draft 7...; jsonschema's own table) is an annotation there, and in drafts 3/4
  ``exclusiveMinimum``/``exclusiveMaximum`` only make ``minimum``/``maximum`` exclusive. Without a
  declared draft every form is read (draft-4 tuple ``items``, ``dependencies``, ``divisibleBy``...).

Every ``$ref`` is resolved as JSON Schema (and the ``referencing`` library) resolve it: against
the base URI of the subschema it is in, so a nested ``$id`` changes what ``#/definitions/x`` means;
anchors (``#foo``) and relative references to embedded resources included. Nothing outside the
document is fetched. The canonical copy has no ``$id``/``$anchor``/``$schema`` left and every
reference is a JSON pointer from its root (``#/properties/a``), so that the grammar builder and
jsonschema after decoding resolve it alike. A target that is not itself copied (inside an unknown
keyword, a boolean, a keyword ignored beside ``$ref``) is copied under ``$defs`` with a generated
name. A reference that cannot be resolved raises `UnsupportedSchemaError` naming the ``$ref`` and
its path.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any
from urllib.parse import quote, unquote, urldefrag, urljoin

from ..errors import UnsupportedSchemaError
from .keywords import _SCHEMA, _SCHEMA_LIST, _SCHEMA_MAP, _TYPE_ALIASES, _TYPES, _child

# Keywords that identify rather than constrain: gone from the canonical copy.
_IDENTIFIERS = ("$id", "$schema", "$anchor", "$dynamicAnchor", "$recursiveAnchor")
# Beside ``$ref`` in drafts 3-7 everything is ignored; these are kept as places refs point to.
_KEPT_BESIDE_OLD_REF = ("$ref", "$defs", "definitions")
_HOISTED = "constrained:ref"  # names of targets copied under $defs: f"{_HOISTED}{n}"
_DRAFT_URI = re.compile(r"json-schema\.org/(?:draft-0?([3467])|draft/(2019-09|2020-12))/schema#?$")


def declared_draft(schema: Any) -> int | None:
    """3, 4, 6, 7, 2019 or 2020: the draft ``schema`` declares with ``$schema`` (http or https, with
    or without the final ``#``); None when it declares none or one we do not know."""
    dialect = schema.get("$schema") if isinstance(schema, dict) else None
    m = _DRAFT_URI.search(dialect.strip()) if isinstance(dialect, str) else None
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else int(m.group(2)[:4])


def draft_of(schema: Any, default: int = 2020) -> int:
    """The draft ``schema`` declares; ``default`` when none."""
    draft = declared_draft(schema)
    return default if draft is None else draft


# Read by our own rules whatever the draft (tuple items, draft-4 exclusive flags, refs).
_OWN_FORMS = frozenset({"items", "additionalItems", "exclusiveMinimum", "exclusiveMaximum", "$ref", "required"})


@functools.cache
def _unknown_keywords(draft: int | None) -> frozenset[str]:
    """Validation keywords of some draft that ``draft`` does not have (jsonschema's own tables):
    annotations in a document that declares it. None (no draft declared): every keyword is read."""
    if draft is None:
        return frozenset()
    import jsonschema

    classes = {3: jsonschema.Draft3Validator, 4: jsonschema.Draft4Validator, 6: jsonschema.Draft6Validator,
               7: jsonschema.Draft7Validator, 2019: jsonschema.Draft201909Validator, 2020: jsonschema.Draft202012Validator}
    every = set().union(*(set(c.VALIDATORS) for c in classes.values()))
    unknown = every - set(classes[draft].VALIDATORS) - _OWN_FORMS
    return frozenset(unknown | ({"required"} if draft == 3 else set()))  # draft 3: only the boolean on a property


class _Canonicalizer:
    """Copy the schema into draft 2020-12 with mapped type names and pointer refs; same meaning."""

    def __init__(self) -> None:
        self.pointers: dict[int, list[str]] = {}  # id(user node) -> its canonical JSON pointer
        self.pending: list[tuple[dict, str, str, int | None, str]] = []  # (copy, $ref, base URI, draft, path)
        self.resources: dict[str, Any] = {}  # base URI -> the user's node it identifies
        self.anchors: dict[tuple[str, str], Any] = {}  # (base URI, name) -> node
        self.hoisted: dict[str, Any] = {}
        self.ref_paths: dict[str, str] = {}  # canonical ref of a hoisted target -> the user's path
        self.locations: dict[int, str] = {}
        self.root: Any = None

    def run(self, schema: Any) -> Any:
        self.root = schema
        self.resources[""] = schema
        out = self.node(schema, "$", [], "", declared_draft(schema))
        while self.pending:
            self.resolve(*self.pending.pop())
        if self.hoisted:
            out["$defs"] = {**out.get("$defs", {}), **self.hoisted}
        return out

    def lookup(self, ref: str, base: str, path: str) -> tuple[Any, str]:
        """The user's node ``ref`` names from ``base``, and the base URI there."""
        if ref.startswith("#"):
            uri, fragment = base, ref[1:]
        else:
            uri, fragment = urldefrag(urljoin(base, ref))
        if uri not in self.resources:
            raise UnsupportedSchemaError("$ref", path, f"cannot resolve {ref!r}: {uri!r} is not in this schema (remote references are not fetched)")
        node = self.resources[uri]
        if fragment and not fragment.startswith("/"):
            if (uri, fragment) not in self.anchors:
                raise UnsupportedSchemaError("$ref", path, f"cannot resolve {ref!r}: no anchor {fragment!r} in {uri or 'the schema'!r}")
            return self.anchors[uri, fragment], uri
        for segment in unquote(fragment[1:]).split("/") if fragment else ():
            segment = segment.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and segment in node:
                node = node[segment]
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                where = f"in the subschema with base URI {uri!r} (a nested id changes what '#' means)" if uri else "in the schema"
                raise UnsupportedSchemaError("$ref", path, f"cannot resolve {ref!r}: nothing at {fragment!r} {where}")
        return node, uri

    def resolve(self, holder: dict, ref: str, base: str, draft: int | None, path: str) -> None:
        target, target_base = self.lookup(ref, base, path)
        if isinstance(target, dict) and id(target) in self.pointers:
            holder["$ref"] = _pointer(self.pointers[id(target)])
            return
        if not isinstance(target, (dict, bool)):
            raise UnsupportedSchemaError("$ref", path, f"{ref!r} points to a {type(target).__name__}, not a schema")
        name = f"{_HOISTED}{len(self.hoisted)}"
        pointer = ["$defs", name]
        holder["$ref"] = _pointer(pointer)
        where = self.location(target) or path
        self.ref_paths[holder["$ref"]] = where
        self.hoisted[name] = None  # reserve the name while the target is copied
        self.hoisted[name] = self.node(target, where, pointer, target_base, declared_draft(target) or draft)

    def location(self, target: Any) -> str | None:
        """The user's path of a node of the document (``$.a.b``), for messages."""
        if id(target) not in self.locations:
            stack: list[tuple[Any, str]] = [(self.root, "$")]
            while stack:
                node, where = stack.pop()
                self.locations.setdefault(id(node), where)
                if isinstance(node, dict):
                    stack.extend((v, _child(where, k)) for k, v in node.items() if isinstance(v, (dict, list)))
                elif isinstance(node, list):
                    stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node) if isinstance(v, (dict, list)))
        return self.locations.get(id(target))

    def identify(self, s: dict, base: str, draft: int | None) -> str:
        """Register ``s`` as a resource and/or anchor; return the base URI inside it."""
        old_ref = "$ref" in s and _before(draft, 2019)
        ident = s.get("id" if _before(draft, 6) else "$id")
        if isinstance(ident, str) and not old_ref:
            uri, fragment = urldefrag(urljoin(base, ident)) if not ident.startswith("#") else (base, ident[1:])
            if uri != base or not ident.startswith("#"):
                base = uri
                self.resources.setdefault(base, s)
            if fragment and (draft is None or draft <= 7):  # "$id": "#foo" names an anchor before 2019-09
                self.anchors.setdefault((base, fragment), s)
        for key in ("$anchor", "$dynamicAnchor"):
            if not _before(draft, 2019) and isinstance(s.get(key), str):
                self.anchors.setdefault((base, s[key]), s)
        return base

    def node(self, s: Any, path: str, ptr: list[str], base: str, draft: int | None) -> Any:
        if isinstance(s, bool):
            return s
        if not isinstance(s, dict):
            raise UnsupportedSchemaError("schema", path, f"a schema must be an object or a boolean, got {type(s).__name__}")
        self.pointers[id(s)] = ptr
        self.locations.setdefault(id(s), path)
        draft = declared_draft(s) or draft
        base = self.identify(s, base, draft)
        old_ref = "$ref" in s and _before(draft, 2019)
        unknown = _unknown_keywords(draft)
        out: dict = {}
        lifted: list[str] = []
        for key, value in s.items():
            if (old_ref and key not in _KEPT_BESIDE_OLD_REF) or key in unknown:
                continue  # drafts 3-7: keywords beside $ref are ignored; a keyword of a later draft is an annotation
            p = _child(path, key)
            if key == "type":
                out["type"] = _map_type(value, p)
                if out["type"] is None:
                    del out["type"]
            elif key == "properties" and isinstance(value, dict):
                props = {}
                for name, sub in value.items():
                    # draft 3: ``required: true`` on the property itself
                    if isinstance(sub, dict) and isinstance(sub.get("required"), bool) and not ("$ref" in sub and _before(draft, 2019)):
                        if sub["required"]:
                            lifted.append(name)
                        sub = {k: v for k, v in sub.items() if k != "required"}
                    props[name] = self.node(sub, _child(p, name), [*ptr, key, name], base, draft)
                    if isinstance(value[name], dict):  # the user's node, when sub is a copy
                        self.pointers[id(value[name])] = [*ptr, key, name]
                out[key] = props
            elif key in _SCHEMA_MAP and isinstance(value, dict):
                out[key] = {name: self.node(sub, _child(p, name), [*ptr, key, name], base, draft)
                            for name, sub in value.items()}
            elif key == "items" and isinstance(value, list):  # draft 4 tuple form
                out["prefixItems"] = [self.node(sub, f"{path}.prefixItems[{i}]", [*ptr, "prefixItems", str(i)], base, draft)
                                      for i, sub in enumerate(value)]
                if "additionalItems" in s:
                    out["items"] = self.node(s["additionalItems"], _child(path, "additionalItems"), [*ptr, "items"], base, draft)
            elif key == "additionalItems":
                if not isinstance(s.get("items"), list):
                    continue  # meaningless without tuple-form items (JSON Schema ignores it)
            elif key in _SCHEMA:
                out[key] = self.node(value, p, [*ptr, key], base, draft)
            elif key in _SCHEMA_LIST and isinstance(value, list):
                out[key] = [self.node(sub, f"{p}[{i}]", [*ptr, key, str(i)], base, draft) for i, sub in enumerate(value)]
            elif key == "dependencies" and isinstance(value, dict):
                for name, dep in value.items():
                    if isinstance(dep, list):
                        out.setdefault("dependentRequired", {})[name] = dep
                    else:
                        out.setdefault("dependentSchemas", {})[name] = self.node(
                            dep, _child(p, name), [*ptr, "dependentSchemas", name], base, draft)
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and (isinstance(value, bool) or _before(draft, 6)):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"  # draft 4: a flag on the bound
                if value and bound in s:
                    out[key] = s[bound]
            elif key in ("minimum", "maximum") and _exclusive_flag(s.get("exclusiveM" + key[1:]), draft):
                continue  # became exclusiveMinimum/Maximum above or below
            elif key == "divisibleBy":
                out["multipleOf"] = value
            elif key == "nullable":
                continue  # applied after the loop
            elif key in ("disallow", "extends"):
                raise UnsupportedSchemaError(key, p, "draft-3 keyword")
            elif key in ("$dynamicRef", "$recursiveRef"):
                raise UnsupportedSchemaError(key, p, "dynamic references are not supported")
            elif key == "$ref":
                if not isinstance(value, str):
                    raise UnsupportedSchemaError("$ref", p, f"a reference must be a string, got {value!r}")
                out[key] = value  # replaced by a pointer from the root once every node is copied
                self.pending.append((out, value, base, draft, p))
            elif key in _IDENTIFIERS or (key == "id" and _before(draft, 6) and isinstance(value, str)):
                continue  # resolved here: the copy is one resource with pointer refs
            else:
                out[key] = value if isinstance(value, (str, int, float, type(None))) else copy.deepcopy(value)  # other keywords, unchanged
        if lifted:
            required = list(out.get("required") or [])
            out["required"] = required + [n for n in lifted if n not in required]
        if s.get("nullable") is True and not old_ref:
            _add_null(out)
        return out


def _before(draft: int | None, version: int) -> bool:
    """Does the document declare a draft older than ``version``? (None: 2020-12, the default)"""
    return draft is not None and draft < version


def _exclusive_flag(value: Any, draft: int | None) -> bool:
    return value is True or (_before(draft, 6) and bool(value) and not isinstance(value, bool))


def _pointer(tokens: list[str]) -> str:
    return "#" + "".join("/" + quote(t.replace("~", "~0").replace("/", "~1"), safe="") for t in tokens)


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
