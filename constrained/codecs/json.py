"""`{"city": "Paris"}` exactly as `json.dumps` writes it: one line, default separators."""

from __future__ import annotations

import json

from .. import ebnf as E
from . import ArgumentCodec, ArgumentScan, Structure, register_codec, skip_ws, structure


class JsonArguments(ArgumentCodec):
    name = "json"

    def encode(self, arguments: dict, schema: dict | None = None) -> str:
        return json.dumps(arguments, ensure_ascii=False)

    def scan(self, text: str, pos: int) -> int | None:
        i = skip_ws(text, pos)
        if i >= len(text):
            return None
        if text[i] != "{":
            raise ValueError("arguments must be a JSON object")
        for j, c, depth in structure(text, i, '"'):
            if c in "}]" and depth == 1:
                return j + 1
        return None

    def decode(self, source: str, schema: dict | None = None) -> dict:
        value = json.loads(source)
        if not isinstance(value, dict):
            raise ValueError("arguments must be a JSON object")
        return value

    def arguments_text(self, source: str, schema: dict | None = None) -> str:
        return source.strip()

    def partial_json(self, source: str, schema: dict | None = None) -> str:
        return source.lstrip()

    def ebnf(self, schema: dict, prefix: str, literal=None) -> E.Fragment:
        return E.json_schema_rules(schema, prefix)

    def scanner(self, pos: int) -> ArgumentScan:
        return _JsonScan(self, pos)


class _JsonScan(ArgumentScan):
    """`JsonArguments.scan`, resumed where it stopped as the text grows."""

    def __init__(self, codec: ArgumentCodec, pos: int):
        super().__init__(codec, pos)
        self.walk: Structure | None = None
        self.found: int | None = None

    def end(self, text: str) -> int | None:
        if self.found is not None:
            return self.found
        if self.walk is None:
            i = skip_ws(text, self.pos)
            if i >= len(text):
                return None
            if text[i] != "{":
                raise ValueError("arguments must be a JSON object")
            self.walk = Structure(i, '"')
        for j, c, depth in self.walk.advance(text):
            if c in "}]" and depth == 1:
                self.found = j + 1
                return self.found
        return None


JSON = register_codec(JsonArguments())
