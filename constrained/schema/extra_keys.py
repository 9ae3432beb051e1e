"""Open objects with many declared names: their extra keys written as one guarded rule.

xgrammar excludes an open object's declared names from its extra keys with a trie of the names, a
rule per node, each costing its own precomputed token masks (`constrained.keys` has the figures).
Above `KEY_TRIE_LIMIT` nodes the schema handed to xgrammar says the same thing in a form it writes
cheaply, and the printed grammar is then rewritten:

1. `mark_extra_keys`: the object's ``additionalProperties`` becomes one ``patternProperties``
   entry whose pattern is a marker carrying the names (xgrammar's pattern keys exclude nothing, and
   it writes them in the same place as extra keys: after the declared properties);
2. `guarded_key_rules`: the marker's ``Regex(...)`` rule becomes the guarded key rule
   ``basic_keyx_{hex}`` (any string content), which `constrained.keys.KeyGuard` checks at run time,
   and an extra key's colon is written compact, ``"other":1`` where a declared name has
   ``"name": 1``. After a key that spells a declared name, xgrammar keeps two parses alive (the
   declared property and the extra key) and a guard cannot end one of them; the separator can: the
   guard requires the declared form's ``": "`` after such a key, which the extra-key parse cannot
   take.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable
from typing import Any

from .strings import any_content_rule

# An object's extra keys are guarded when the trie of its declared names has more nodes than this
# (one rule each in xgrammar's form); a handful of short names stay exact in the grammar.
KEY_TRIE_LIMIT = 24
MARKER = "constrainedkeyx"
GUARDED_KEY_RULE = "keyx_"  # in a rule's name: the names its key guard (constrained.keys) reads
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMAS = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
            "additionalItems", "unevaluatedProperties", "unevaluatedItems")
# what xgrammar does with other keywords of the object is left to it: only plain open objects
_BESIDES = ("patternProperties", "propertyNames", "minProperties", "maxProperties", "unevaluatedProperties")


def encode_names(names: Iterable[str]) -> str:
    """The names as a rule-name suffix: hex of their zlib-compressed JSON (sorted)."""
    return zlib.compress(json.dumps(sorted(set(names))).encode(), 9).hex()


def decode_names(hex_text: str) -> frozenset[str]:
    return frozenset(json.loads(zlib.decompress(bytes.fromhex(hex_text))))


def trie_nodes(names: Iterable[str]) -> int:
    """Nodes of the trie of ``names`` (distinct non-empty prefixes): xgrammar's rules for them."""
    return len({n[:i] for n in names for i in range(1, len(n) + 1)})


def mark_extra_keys(schema: Any) -> Any:
    """``schema`` (a normalised one) with every open object whose declared names make a large trie
    rewritten as in step 1; the same object where nothing is (copies only along changed paths)."""
    if isinstance(schema, list):
        out_list = [mark_extra_keys(s) for s in schema]
        return schema if all(a is b for a, b in zip(out_list, schema)) else out_list
    if not isinstance(schema, dict):
        return schema
    changed: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            subs = {k: mark_extra_keys(v) for k, v in value.items()}
            if any(subs[k] is not v for k, v in value.items()):
                changed[key] = subs
        elif key in _SCHEMA_LISTS and isinstance(value, list) or key in _SCHEMAS:
            sub = mark_extra_keys(value)
            if sub is not value:
                changed[key] = sub
    out = {**schema, **changed} if changed else schema
    if guards_extra_keys(out):
        extra = out["additionalProperties"]
        out = {**out, "patternProperties": {MARKER + encode_names(out["properties"]): {} if extra is True else extra},
               "additionalProperties": False}
    return out


def guards_extra_keys(node: Any) -> bool:
    """Is ``node`` (of a normalised schema) an open object whose extra keys are guarded: written
    compact, ``"other":1``, where its declared names take ``"name": 1``?"""
    if not isinstance(node, dict):
        return False
    extra = node.get("additionalProperties")
    names = list(node.get("properties") or ())
    return bool(names) and extra is not None and extra is not False and not any(k in node for k in _BESIDES) \
        and trie_nodes(names) > KEY_TRIE_LIMIT


_MARKED = re.compile(r'^(\w+) ::= Regex\("' + MARKER + r'([0-9a-f]+)", json_string=true\)\n', re.M)


def guarded_key_rules(ebnf: str) -> str:
    """xgrammar's printed grammar with each marker rule of step 1 made the guarded key rule."""
    if MARKER not in ebnf:
        return ebnf
    added: dict[str, str] = {}
    for rule, names in _MARKED.findall(ebnf):
        key = re.compile(r'^(\w+) ::= \(\("\\"" ' + rule + r' "\\""\)\)$', re.M)
        found = key.findall(ebnf)
        if len(found) != 1:
            raise RuntimeError(f"constrained: xgrammar wrote the pattern key {rule} in an unknown form")
        key_rule, guarded = found[0], f"basic_{GUARDED_KEY_RULE}{names}"
        added[guarded] = any_content_rule()
        ebnf = key.sub(f'{key_rule} ::= (("\\"" {guarded}))', ebnf)
        # the extra key's separator, compact (see above)
        ebnf, uses = re.subn(rf'\b{key_rule} ": "', f'{key_rule} ":"', ebnf)
        if not uses:
            raise RuntimeError(f"constrained: xgrammar wrote no separator after the pattern key {key_rule}")
    ebnf = _MARKED.sub("", ebnf)
    return ebnf.rstrip("\n") + "\n" + "".join(f"{name} ::= {body}\n" for name, body in added.items())
