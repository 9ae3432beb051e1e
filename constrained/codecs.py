"""Argument codecs: how a dialect writes a call's arguments (JSON object, Python keyword arguments).

A codec knows four things about its encoding, and nothing about markers:
- `encode(arguments)`: the text a model writes for these arguments (renderer),
- `scan(text, pos)`: where the arguments that start at `pos` end (parser; None while incomplete),
- `decode(source)`: the arguments as a dict (parser; `json` / `ast.literal_eval`, never `eval`),
- `ebnf(schema, prefix)`: the grammar rules for arguments matching a normalised schema.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from functools import lru_cache
from typing import Any

from . import ebnf as E
from .errors import ToolSpecError


def skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


class ArgumentCodec:
    name: str

    def encode(self, arguments: dict) -> str:
        raise NotImplementedError

    def scan(self, text: str, pos: int) -> int | None:
        raise NotImplementedError

    def decode(self, source: str) -> dict:
        raise NotImplementedError

    def partial_json(self, source: str) -> str:
        """A prefix of the final JSON arguments, from the source written so far (streaming)."""
        raise NotImplementedError

    def ebnf(self, schema: dict, prefix: str) -> E.Rules:
        raise NotImplementedError

    def check_name(self, name: str, param: str) -> None:
        """Raise ToolSpecError when a tool name cannot be written in this encoding."""


class JsonArguments(ArgumentCodec):
    """`{"city": "Paris"}` exactly as `json.dumps` writes it: one line, default separators."""

    name = "json"

    def encode(self, arguments: dict) -> str:
        return json.dumps(arguments, ensure_ascii=False)

    def scan(self, text: str, pos: int) -> int | None:
        i = skip_ws(text, pos)
        if i >= len(text):
            return None
        if text[i] != "{":
            raise ValueError("arguments must be a JSON object")
        depth, in_str, esc = 0, False, False
        for j in range(i, len(text)):
            c = text[j]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return j + 1
        return None

    def decode(self, source: str) -> dict:
        value = json.loads(source)
        if not isinstance(value, dict):
            raise ValueError("arguments must be a JSON object")
        return value

    def arguments_text(self, source: str) -> str:
        return source.strip()

    def partial_json(self, source: str) -> str:
        return source.lstrip()

    def ebnf(self, schema: dict, prefix: str) -> E.Rules:
        return E.json_schema_rules(schema, prefix)


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


_DOTTED_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _split_top_level(source: str) -> tuple[list[str], bool]:
    """Split `a=1, b=[1, 2]` on top-level commas; the bool says the last item is closed by a comma."""
    items, depth, quote, esc, start = [], 0, "", False, 0
    for j, c in enumerate(source):
        if quote:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(source[start:j])
            start = j + 1
    tail = source[start:]
    return items + ([tail] if tail.strip() else []), not tail.strip()


class PythonArguments(ArgumentCodec):
    """`city="Paris", days=3`: Python keyword arguments with literal values typed by the schema."""

    name = "python"

    def encode(self, arguments: dict) -> str:
        return ", ".join(f"{k}={python_literal(v)}" for k, v in arguments.items())

    def scan(self, text: str, pos: int) -> int | None:
        depth, quote, esc = 0, "", False
        for j in range(pos, len(text)):
            c = text[j]
            if quote:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    return j  # the closing parenthesis belongs to the call, not the arguments
                depth -= 1
        return None

    def _pair(self, item: str) -> tuple[str, Any]:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier() or keyword.iskeyword(key):
            raise ValueError(f"not a keyword argument: {item.strip()!r}")
        return key, ast.literal_eval(value.strip())

    def decode(self, source: str) -> dict:
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

    def arguments_text(self, source: str) -> str:
        return json.dumps(self.decode(source), ensure_ascii=False)

    def partial_json(self, source: str) -> str:
        items, last_closed = _split_top_level(source)
        done = items if last_closed else items[:-1]
        pairs = []
        for item in done:
            try:
                key, value = self._pair(item)
                pairs.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
            except (ValueError, SyntaxError):
                break
        return "{" + ", ".join(pairs)

    def ebnf(self, schema: dict, prefix: str) -> E.Rules:
        return E.python_kwargs_rules(schema, prefix)

    def check_name(self, name: str, param: str) -> None:
        if not _DOTTED_IDENT.match(name) or any(keyword.iskeyword(p) for p in name.split(".")):
            raise ToolSpecError(f"tool name {name!r} is not a Python identifier, so the pythonic dialect cannot write it", param)


_CODECS: dict[str, ArgumentCodec] = {c.name: c for c in (JsonArguments(), PythonArguments())}


@lru_cache(maxsize=None)
def get_codec(name: str) -> ArgumentCodec:
    try:
        return _CODECS[name]
    except KeyError:
        raise ValueError(f"unknown argument codec {name!r}; known: {sorted(_CODECS)}") from None
