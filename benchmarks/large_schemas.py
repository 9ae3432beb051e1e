"""Large real-world-shaped JSON schemas, generated (deterministic per seed), for the compile tail.

The shared corpus (MaskBench) holds tool-parameter-sized schemas; the tail lives in large ones.
Each family copies the shape of a kind of schema met in the wild:

- ``articles``: a content API (news-article formats): ~80-120 small "trait" definitions, 10-20
  content types of 40-60 optional properties that refer to the traits, some types open
  (``additionalProperties: {}``), related content as ``anyOf`` of types (recursion);
- ``wide``: one form or settings object of 200-400 properties, nested objects and arrays;
- ``enums``: long enumerations (countries, time zones, currencies: 300-2,000 values);
- ``unions``: events as ``anyOf`` of 20-60 object branches told apart by a ``const`` kind;
- ``configs``: deep configuration files (CI, deployment): nesting 6-8 levels, arrays of objects,
  ``patternProperties`` maps and ``additionalProperties`` schemas.

    python -m benchmarks.compile_times --large 20     # compile them, side by side with llguidance
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

FORMATS = ("date-time", "uri", "email", "date")


def _word(r: random.Random) -> str:
    return "".join(r.choice(string.ascii_lowercase) for _ in range(r.randint(3, 10)))


def _leaf(r: random.Random) -> dict:
    k = r.random()
    if k < 0.3:
        return {"type": "string", "description": "text"}
    if k < 0.4:
        return {"type": "string", "format": r.choice(FORMATS)}
    if k < 0.5:
        return {"type": "integer", "minimum": 0, "maximum": r.choice([10, 100, 1000])}
    if k < 0.6:
        return {"type": "number"}
    if k < 0.7:
        return {"type": "boolean"}
    if k < 0.8:
        return {"type": "string", "enum": [_word(r) for _ in range(r.randint(3, 40))]}
    if k < 0.9:
        return {"type": ["string", "null"]}
    return {"type": "array", "items": {"type": "string"}}


def _object(r: random.Random, n: int, depth: int) -> dict:
    props: dict = {}
    for i in range(n):
        name = f"{_word(r)}_{i}"
        if depth > 0 and r.random() < 0.1:
            props[name] = _object(r, r.randint(3, 12), depth - 1)
        elif depth > 0 and r.random() < 0.05:
            props[name] = {"type": "array", "items": _object(r, r.randint(2, 8), depth - 1)}
        else:
            props[name] = _leaf(r)
    return {"type": "object", "properties": props, "required": r.sample(list(props), k=min(len(props), r.randint(0, 5)))}


def articles(seed: int) -> dict:
    r = random.Random(seed)
    defs: dict = {}
    traits = [f"trait_{_word(r)}_{i}" for i in range(r.randint(80, 120))]
    for t in traits:
        k = r.random()
        if k < 0.4:
            defs[t] = _leaf(r)
        elif k < 0.7:
            defs[t] = {"type": "object", "additionalProperties": False, "properties": {_word(r): _leaf(r) for _ in range(r.randint(2, 8))}}
        elif k < 0.85:
            defs[t] = {"type": "array", "items": {"type": "object", "properties": {_word(r): _leaf(r) for _ in range(r.randint(2, 6))}}}
        else:
            defs[t] = {"type": "object", "additionalProperties": {"type": "string"}}
    types = [f"type_{i}" for i in range(r.randint(10, 20))]
    for name in types:
        props: dict = {t: {"$ref": f"#/definitions/{t}"} for t in r.sample(traits, r.randint(40, 60))}
        props["type"] = {"enum": [name]}
        if r.random() < 0.5:
            props["related"] = {"type": "array", "items": {"anyOf": [{"$ref": f"#/definitions/{x}"} for x in r.sample(types, 4)]}}
        defs[name] = {"type": "object", "additionalProperties": r.choice([False, {}]), "properties": props, "required": ["type"]}
    return {"definitions": defs, "type": "object", "additionalProperties": False, "required": ["content"],
            "properties": {"content": {"anyOf": [{"$ref": f"#/definitions/{t}"} for t in types]}}}


def wide(seed: int) -> dict:
    r = random.Random(seed)
    return _object(r, r.randint(200, 400), 2)


def enums(seed: int) -> dict:
    r = random.Random(seed)
    n = r.randint(300, 2000)
    return {"type": "object", "required": ["country"], "properties": {
        "country": {"enum": sorted({_word(r).title() for _ in range(n)})},
        "time_zone": {"type": "string", "enum": sorted({f"{_word(r).title()}/{_word(r).title()}" for _ in range(n // 2)})},
        "currency": {"type": "string", "enum": sorted({"".join(r.choice(string.ascii_uppercase) for _ in range(3)) for _ in range(300)})},
    }}


def unions(seed: int) -> dict:
    r = random.Random(seed)
    branches = []
    for i in range(r.randint(20, 60)):
        b = _object(r, r.randint(3, 10), 1)
        b["properties"]["kind"] = {"const": f"event_{i}"}
        b["required"] = ["kind", *b["required"]]
        branches.append(b)
    return {"type": "object", "properties": {"event": {"anyOf": branches}}, "required": ["event"]}


def configs(seed: int) -> dict:
    r = random.Random(seed)

    def level(depth: int) -> dict:
        props: dict = {_word(r): _leaf(r) for _ in range(r.randint(3, 8))}
        if depth > 0:
            props["steps"] = {"type": "array", "items": level(depth - 1)}
            props["env"] = {"type": "object", "patternProperties": {"^[A-Z_][A-Z0-9_]*$": {"type": "string"}}, "additionalProperties": False}
            props["with"] = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
            props[_word(r)] = level(depth - 1)
        return {"type": "object", "properties": props, "additionalProperties": False, "required": r.sample(list(props), k=1)}

    return level(r.randint(6, 8))


FAMILIES: dict[str, Callable[[int], dict]] = {"articles": articles, "wide": wide, "enums": enums, "unions": unions, "configs": configs}


def generate(n: int, seed: int = 0) -> list[tuple[str, dict]]:
    """``n`` schemas, the families in turn: ``[(name, schema), ...]``."""
    names = list(FAMILIES)
    out = []
    for i in range(n):
        family = names[i % len(names)]
        out.append((f"{family}_{seed + i // len(names)}", FAMILIES[family](seed + i // len(names))))
    return out
