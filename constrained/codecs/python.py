"""`city="Paris", days=3`: Python keyword arguments with literal values typed by the schema
(pythonic dialects: Llama-3.2/4, ToolACE, OLMo, LFM2).

Values are written as Python literals (`True`/`False`/`None`, strings in JSON quoting) and read
back with `ast` and `ast.literal_eval`, never `eval`. The grammar fragments come from xgrammar's
JSON-schema converter with JSON's literals rewritten into Python's.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from typing import Any

from .. import ebnf as E
from ..errors import ToolSpecError
from . import ArgumentCodec, ArgumentScan, Structure, register_codec, structure

_DOTTED_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def is_keyword_argument(name: str) -> bool:
    """Can `name` be written as `name=...` in a call Python parses?"""
    return name.isidentifier() and not keyword.iskeyword(name)


def python_literal(value: Any) -> str:
    """A Python literal that `ast.literal_eval` reads back as `value` (strings in JSON quoting)."""
    if value is True:
        return "True"
    if value is False:
        return "False"
    if value is None:
        return "None"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {python_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    return json.dumps(value)


def _split_top_level(source: str) -> tuple[list[str], bool]:
    """Split `a=1, b=[1, 2]` on top-level commas; the bool says the last item is closed by a comma."""
    items, start = [], 0
    for j, c, depth in structure(source, 0, "'\""):
        if c == "," and depth == 0:
            items.append(source[start:j])
            start = j + 1
    tail = source[start:]
    return items + ([tail] if tail.strip() else []), not tail.strip()


class PythonArguments(ArgumentCodec):
    name = "python"

    def encode(self, arguments: dict, schema: dict | None = None) -> str:
        return ", ".join(f"{k}={python_literal(v)}" for k, v in arguments.items())

    def jinja(self, arguments: str) -> str:
        # top-level literals typed as Python writes them; nested values as JSON (a prompt, not a grammar)
        value = "('True' if v is sameas true else 'False' if v is sameas false else 'None' if v is none else v | tojson)"
        return self.jinja_pairs(arguments, f"{{{{ k }}}}={{{{ {value} }}}}", ", ")

    def scan(self, text: str, pos: int) -> int | None:
        for j, c, depth in structure(text, pos, "'\""):
            if c in ")]}" and depth == 0:
                return j  # the closing parenthesis belongs to the call, not the arguments
        return None

    def _pair(self, item: str) -> tuple[str, Any]:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not is_keyword_argument(key):
            raise ValueError(f"not a keyword argument: {item.strip()!r}")
        return key, ast.literal_eval(value.strip())

    def decode(self, source: str, schema: dict | None = None) -> dict:
        # ast checks the whole thing is a call with keyword arguments only; literal_eval reads values.
        tree = ast.parse(f"f({source})", mode="eval")
        call = tree.body
        if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
            raise ValueError("pythonic arguments must be keyword arguments")
        out = {}
        for kw in call.keywords:
            out[kw.arg] = ast.literal_eval(kw.value)
        json.dumps(out, allow_nan=False)  # sets, bytes, inf: not JSON, so not valid arguments
        return out

    def arguments_text(self, source: str, schema: dict | None = None) -> str:
        return json.dumps(self.decode(source), ensure_ascii=False)

    def partial_json(self, source: str, schema: dict | None = None) -> str:
        items, last_closed = _split_top_level(source)
        done = items if last_closed else items[:-1]
        return "{" + ", ".join(self._json_pairs(done))

    def _json_pairs(self, items: list[str]) -> list[str]:
        """`"key": value` for each complete `key=value` item, up to the first that is not one."""
        pairs = []
        for item in items:
            try:
                key, value = self._pair(item)
                pairs.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
            except (ValueError, SyntaxError):
                break
        return pairs

    def scanner(self, pos: int) -> ArgumentScan:
        return _PythonScan(self, pos)

    def ebnf(self, schema: dict, prefix: str, literal=None) -> E.Fragment:
        return python_kwargs_rules(schema, prefix)

    def name_problems(self, name: str, argument_names: list[str]) -> list[str]:
        problems = []
        # a call `name(arg=...)`; dotted names (`math.factorial`) are attribute calls
        if not _DOTTED_IDENT.match(name) or any(keyword.iskeyword(p) for p in name.split(".")):
            problems.append(f"tool name {name!r} is not a Python identifier (or is a keyword)")
        bad = [a for a in argument_names if not is_keyword_argument(a)]
        if bad:
            problems.append(f"argument names {bad} are not Python identifiers (or are keywords)")
        return problems


class _PythonScan(ArgumentScan):
    """`PythonArguments.scan` and `partial_json`, resumed as the text grows: the top-level commas
    found so far split the complete `key=value` items, each converted once."""

    def __init__(self, codec: PythonArguments, pos: int):
        super().__init__(codec, pos)
        self.python = codec
        self.walk = Structure(pos, "'\"")
        self.commas: list[int] = []  # top-level commas, relative to pos
        self.found: int | None = None
        self.pairs: list[str] = []  # JSON of the items before commas[len(pairs)]
        self.json = "{"  # "{" + ", ".join(pairs)
        self.broken = False  # an item that is no `key=value`: the JSON stops before it

    def end(self, text: str) -> int | None:
        if self.found is not None:
            return self.found
        for j, c, depth in self.walk.advance(text):
            if depth == 0 and c == ",":
                self.commas.append(j - self.pos)
            elif depth == 0 and c in ")]}":
                self.found = j  # the closing parenthesis belongs to the call, not the arguments
                return j
        return None

    def partial_json(self, source: str, schema: dict | None = None) -> str:
        while not self.broken and len(self.pairs) < len(self.commas):
            k = len(self.pairs)
            start = self.commas[k - 1] + 1 if k else 0
            pair = self.python._json_pairs([source[start : self.commas[k]]])
            if pair:
                self.pairs += pair
                self.json = self.json + (", " if k else "") + pair[0]
            else:
                self.broken = True
        return self.json


# -- grammar fragments -------------------------------------------------------------------------
# JSON text is a Python literal except for true/false/null and the `\/` escape, and a Python
# keyword argument may be followed by `)`, which xgrammar's string lookahead does not expect.
_PY_KEYWORDS = {"true": "True", "false": "False", "null": "None"}


def _python_literal_map(tok: str) -> str:
    try:
        text = json.loads(tok)
    except ValueError:
        return tok
    if text in _PY_KEYWORDS:
        return E.literal(_PY_KEYWORDS[text])
    if any(k in text for k in _PY_KEYWORDS):
        try:
            value = json.loads(text)
        except ValueError:
            return tok  # a fragment of JSON text; keywords inside strings stay as they are
        if not isinstance(value, str):
            return E.literal(python_literal(value))
    return tok


def _python_transform(body: str) -> str:
    return body.replace('[\\"\\\\/bfnrt]', '[\\"\\\\bfnrt]').replace("[,}\\]:]", "[,}\\]:)]")


def python_value_rules(schema: dict, prefix: str) -> E.Fragment:
    return E.json_schema_rules(schema, prefix, basic_prefix="py_", transform=_python_transform, literal_map=_python_literal_map)


def python_kwargs_rules(schema: dict, prefix: str) -> E.Fragment:
    """`a=1, b="x"` for an object schema: properties in declared order, required ones mandatory.

    Declared properties only, whatever ``additionalProperties`` says: Python rejects a repeated
    keyword argument (``f(x=1, x=2)`` is a SyntaxError), and a grammar cannot keep an open set of
    extra names distinct, so extra keyword arguments could make a call that does not parse."""
    if schema.get("type") != "object" or any(k in schema for k in ("anyOf", "oneOf", "allOf")):
        raise ToolSpecError("the pythonic dialect needs an object schema with properties at the top level")
    props = list(schema.get("properties", {}).items())
    required = set(schema.get("required", []))
    defs = {k: schema[k] for k in ("$defs", "definitions") if k in schema}
    rules: dict[str, str] = {}
    pairs = []
    for i, (key, sub) in enumerate(props):
        if not is_keyword_argument(key):
            raise ToolSpecError(f"property {key!r} is not a Python identifier (or is a keyword), so it cannot be a keyword argument")
        value = python_value_rules({**sub, **defs} if isinstance(sub, dict) else sub, f"{prefix}p{i}_")
        rules.update(value.rules)
        pairs.append(f"{E.literal(key + '=')} {value.root}")
    # first_i: properties i.. with no leading comma; rest_i: properties i.. each after ", ".
    n = len(props)
    first, rest = f"{prefix}first_", f"{prefix}rest_"
    rules[f"{first}{n}"] = '""'
    rules[f"{rest}{n}"] = '""'
    for i in range(n - 1, -1, -1):
        key = props[i][0]
        rules[f"{rest}{i}"] = f'(", " {pairs[i]} {rest}{i + 1})' + ("" if key in required else f" | {rest}{i + 1}")
        rules[f"{first}{i}"] = f"({pairs[i]} {rest}{i + 1})" + ("" if key in required else f" | {first}{i + 1}")
    return E.Fragment(f"{first}0", rules)


PYTHON = register_codec(PythonArguments())
