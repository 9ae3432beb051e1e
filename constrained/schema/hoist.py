"""Deep objects hoisted into `$defs` before xgrammar's JSON-schema conversion, for short rule names.

xgrammar names each rule by its path from the root or from a `$defs` entry
(`root_prop_5_additional_prop_4_additional_prop_7_...`), so a deep schema's grammar is mostly rule
names, and every pass over it (xgrammar's conversion, our renaming and merging, the translation
for llguidance) reads them all. The generated 309 KB `configs_6` (8 levels) became 2.9 MB of
grammar text in 0.44 s of conversion; hoisted, 1.15 MB in 0.11 s. An object schema that declares
properties, at depth `HOIST_FROM_DEPTH` or more, becomes a `$defs` entry (equal ones one entry)
referred to where it was: the same language. The normalised schema's own references are only `#`
and `#/$defs/NAME` (`constrained.schema.build`), which hoisting leaves valid.
"""

from __future__ import annotations

import json
from typing import Any

from .keywords import _SCHEMA, _SCHEMA_LIST, _SCHEMA_MAP

# schema positions under the root (or under one of its `$defs`) from which objects are hoisted:
# shallower ones already have short names
HOIST_FROM_DEPTH = 3
HOISTED = "constrained_h"  # prefix of the hoisted definitions' names (the normaliser's differ)
_DEFINITIONS = ("$defs", "definitions")


def hoist_nested_objects(schema: Any) -> Any:
    """``schema`` (a normalised one) with its deep object schemas moved into ``$defs``; ``schema``
    itself where there is none."""
    if not isinstance(schema, dict):
        return schema
    hoisted: dict[str, Any] = {}  # name -> object schema
    names: dict[str, str] = {}  # an object schema's JSON -> its name

    def walk(node: Any, depth: int) -> Any:
        if isinstance(node, list):
            return [walk(n, depth) for n in node]
        if not isinstance(node, dict):
            return node
        out = dict(node)
        for key, value in node.items():
            if key in _SCHEMA_MAP and key not in _DEFINITIONS and isinstance(value, dict):
                out[key] = {k: walk(v, depth + 1) for k, v in value.items()}
            elif key in _SCHEMA_LIST and isinstance(value, list) or key in _SCHEMA:
                out[key] = walk(value, depth + 1)
        if depth < HOIST_FROM_DEPTH or not isinstance(out.get("properties"), dict):
            return out
        # equal JSON, keys in the same order: the same grammar (property order is the order written)
        text = json.dumps(out)  # its nested objects are references already: short
        if text not in names:
            names[text] = f"{HOISTED}{len(names)}"
            hoisted[names[text]] = out
        return {"$ref": f"#/$defs/{names[text]}"}

    out = walk(schema, 0)
    own = schema.get("$defs")
    if isinstance(own, dict):  # the normaliser's definitions: xgrammar names their rules from them
        out["$defs"] = {name: walk(body, 0) for name, body in own.items()}
    if not hoisted:
        return schema
    out["$defs"] = {**out.get("$defs", {}), **hoisted}
    return out
