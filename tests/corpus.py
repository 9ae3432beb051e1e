"""Tool schemas the tests sample under: strict shapes, nesting, enums, $ref, odd names, unicode.

Each entry is (OpenAI tool, a valid example of its arguments).
"""

from __future__ import annotations


def tool(name: str, parameters: dict | None, strict: bool = False) -> dict:
    fn: dict = {"name": name, "description": f"test tool {name}"}
    if parameters is not None:
        fn["parameters"] = parameters
    if strict:
        fn["strict"] = True
    return {"type": "function", "function": fn}


def obj(props: dict, required=None, **extra) -> dict:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required, **extra}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}

CORPUS: list[tuple[dict, dict]] = [
    (tool("get_weather", obj({"city": STR, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"])), {"city": "Paris", "unit": "celsius"}),
    (tool("search_web", obj({"query_list": {"type": "array", "items": STR}, "query_tag": {"type": "array", "items": STR}})), {"query_list": ["a"], "query_tag": ["t"]}),
    (tool("no_params", None), {}),
    (tool("empty_params", {"type": "object", "properties": {}}), {}),
    (tool("strict_user", obj({"name": STR, "age": {"anyOf": [INT, {"type": "null"}]}}, additionalProperties=False), strict=True), {"name": "Ann", "age": None}),
    (tool("strict_nullable_type_array", obj({"note": {"type": ["string", "null"]}, "n": {"type": ["integer", "null"]}}, additionalProperties=False), strict=True), {"note": "x", "n": None}),
    (tool("nested_order", obj({"customer": obj({"id": INT, "address": obj({"street": STR, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}})}), "items": {"type": "array", "items": obj({"sku": STR, "qty": {"type": "integer", "minimum": 1, "maximum": 99}}), "minItems": 1, "maxItems": 3}})),
     {"customer": {"id": 7, "address": {"street": "Main", "zip": "12345"}}, "items": [{"sku": "A1", "qty": 2}]}),
    (tool("enum_mixed", obj({"level": {"enum": ["low", "mid", "high", 3, None]}})), {"level": 3}),
    (tool("const_field", obj({"version": {"const": "v2"}, "flag": {"const": True}})), {"version": "v2", "flag": True}),
    (tool("ref_defs", {"type": "object", "properties": {"point": {"$ref": "#/$defs/Point"}, "points": {"type": "array", "items": {"$ref": "#/$defs/Point"}, "maxItems": 2}}, "required": ["point"],
                       "$defs": {"Point": obj({"x": NUM, "y": NUM})}}), {"point": {"x": 1.5, "y": -2}}),
    (tool("recursive_tree", {"type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}, "required": ["root"],
                             "$defs": {"Node": {"type": "object", "properties": {"label": STR, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}, "maxItems": 2}}, "required": ["label"]}}}),
     {"root": {"label": "a", "children": [{"label": "b"}]}}),
    (tool("github.create-issue", obj({"repo": STR, "title": {"type": "string", "minLength": 1, "maxLength": 120}, "labels": {"type": "array", "items": STR}}, ["repo", "title"])), {"repo": "o/r", "title": "bug"}),
    (tool("fs.read-file", obj({"path": STR, "encoding": {"type": "string", "enum": ["utf-8", "latin-1"]}}, ["path"])), {"path": "/tmp/a"}),
    (tool("unicode_args", obj({"ville": {"type": "string", "enum": ["Zürich", "São Paulo", "東京"]}, "emoji": STR})), {"ville": "東京", "emoji": "☀️"}),
    (tool("numeric_bounds", obj({"ratio": {"type": "number", "minimum": 0, "maximum": 1}, "count": {"type": "integer", "exclusiveMinimum": 0, "maximum": 1000}})), {"ratio": 0.5, "count": 10}),
    (tool("string_lengths", obj({"code": {"type": "string", "minLength": 2, "maxLength": 4}, "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2}})), {"code": "ab", "tags": ["x"]}),
    (tool("formats", obj({"when": {"type": "string", "format": "date"}, "email": {"type": "string", "format": "email"}, "id": {"type": "string", "format": "uuid"}}, ["when"])), {"when": "2024-01-31"}),
    (tool("any_of_shapes", obj({"target": {"anyOf": [obj({"user_id": INT}), obj({"email": STR})]}})), {"target": {"email": "a@b.c"}}),
    (tool("one_of_types", obj({"value": {"oneOf": [STR, BOOL]}})), {"value": False}),
    (tool("additional_props", {"type": "object", "properties": {"name": STR}, "required": ["name"], "additionalProperties": INT}), {"name": "x", "extra": 3}),
    (tool("free_dict", obj({"metadata": {"type": "object"}})), {"metadata": {"k": [1, "v"]}}),
    (tool("bfcl_python_types", {"type": "dict", "properties": {"x": {"type": "float"}, "pair": {"type": "tuple", "items": {"type": "integer"}}, "anything": {"type": "any"}}, "required": ["x"]}), {"x": 2.5, "pair": [1, 2]}),
    (tool("calculate_area", obj({"base": INT, "height": INT, "unit": STR}, ["base", "height"])), {"base": 3, "height": 4}),
    (tool("set_alarm", obj({"time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}, "repeat": BOOL}, ["time"])), {"time": "07:30", "repeat": False}),
    (tool("book_flight", obj({"from_city": STR, "to_city": STR, "passengers": {"type": "integer", "minimum": 1, "maximum": 9}, "class": {"type": "string", "enum": ["economy", "business"]}}, ["from_city", "to_city"])),
     {"from_city": "A", "to_city": "B", "passengers": 2}),
    (tool("send_email", obj({"to": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1}, "subject": STR, "body": STR, "cc": {"type": ["array", "null"], "items": STR}}, ["to", "subject", "body"])),
     {"to": ["a@b.co"], "subject": "s", "body": "b", "cc": None}),
    (tool("matrix", obj({"rows": {"type": "array", "items": {"type": "array", "items": NUM, "maxItems": 3}, "maxItems": 3}})), {"rows": [[1, 2], [3.5]]}),
    (tool("optional_only", obj({"a": STR, "b": INT, "c": BOOL}, [])), {"b": 1}),
    (tool("deep_nesting", obj({"l1": obj({"l2": obj({"l3": obj({"l4": {"type": "string", "enum": ["deep"]}})})})})), {"l1": {"l2": {"l3": {"l4": "deep"}}}}),
    (tool("strict_agents_sdk", obj({"query": STR, "filters": obj({"lang": {"anyOf": [STR, {"type": "null"}]}, "limit": {"anyOf": [INT, {"type": "null"}]}}, additionalProperties=False)}, additionalProperties=False), strict=True),
     {"query": "q", "filters": {"lang": None, "limit": 5}}),
    (tool("math.factorial", obj({"number": {"type": "integer", "minimum": 0, "maximum": 20}})), {"number": 5}),
    (tool("get_stock_price", obj({"symbol": {"type": "string", "pattern": "^[A-Z]{1,5}$"}, "exchange": {"type": "string", "enum": ["NYSE", "NASDAQ"]}}, ["symbol"])), {"symbol": "AAPL"}),
    (tool("translate", obj({"text": STR, "target": {"type": "string", "enum": ["fr", "de", "ja"]}, "formal": {"type": "boolean", "default": False}}, ["text", "target"])), {"text": "hi", "target": "ja"}),
]

TOOLS = [t for t, _ in CORPUS]
EXAMPLES = {t["function"]["name"]: ex for t, ex in CORPUS}


def pythonic_ok(t: dict) -> bool:
    """Tools the pythonic dialect can write: names and argument names are Python identifiers."""
    import keyword

    name = t["function"]["name"]
    props = (t["function"].get("parameters") or {}).get("properties", {})
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in [*name.split("."), *props])


def tools_for(dialect: str) -> list[dict]:
    """The corpus tools a dialect can write (Python call syntax needs identifiers)."""
    from constrained import dialect as registry

    python = registry.get(dialect).codec.name == "python"
    return [t for t in TOOLS if not python or pythonic_ok(t)]
